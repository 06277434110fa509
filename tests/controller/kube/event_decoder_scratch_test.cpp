// The decoder gives back the buffers a large list page grew.
#include <gtest/gtest.h>

#include <string>

#include "controller/kube/event_decoder.h"

namespace eventbuffer::controller {
namespace {

std::string Event(const std::string& uid, const std::string& message) {
  return R"({"kind":"Event","apiVersion":"v1","metadata":{"name":"p.)" + uid +
         R"(","namespace":"ns","uid":")" + uid +
         R"(","resourceVersion":"7"},"involvedObject":{"kind":"Pod","namespace":"ns","name":"p"},)"
         R"("reason":"BackOff","message":")" +
         message + R"(","count":1,"type":"Warning"})";
}

TEST(EventDecoderScratchTest, BuffersOfALargePageAreGivenBackAtTheNextSmallDocument) {
  EventDecoder decoder;
  const std::string page = R"({"kind":"EventList","metadata":{"resourceVersion":"9"},"items":[)" +
                           Event("big", std::string(16 << 20, 'm')) + "]}";
  auto listed = decoder.DecodeList(page, 1);
  ASSERT_TRUE(listed.ok()) << listed.error.ToString();
  ASSERT_EQ(listed.value.items.size(), 1u);
  EXPECT_GE(decoder.scratch_capacity(), std::size_t{16} << 20);

  const std::string line = R"({"type":"ADDED","object":)" + Event("small", "m") + "}";
  auto watched = decoder.DecodeWatchLine(line, 2);
  ASSERT_TRUE(watched.ok()) << watched.error.ToString();
  EXPECT_EQ(watched.value.record->uid(), "small");
  EXPECT_LT(decoder.scratch_capacity(), std::size_t{1} << 20);
  // The large page's record is intact: results own their data.
  EXPECT_EQ(listed.value.items[0]->uid(), "big");
}

}  // namespace
}  // namespace eventbuffer::controller
