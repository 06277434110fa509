// The flags that bound reads from the Kubernetes API.
#include <gtest/gtest.h>

#include "controller/config/options.h"

namespace eventbuffer::controller {
namespace {

TEST(ApiLimitOptionsTest, DefaultsPassAOneMebibyteEventAndBoundAPage) {
  Options o;
  std::string error;
  ASSERT_TRUE(ParseOptions({}, &o, &error)) << error;
  EXPECT_EQ(o.list_limit, 500);
  EXPECT_EQ(o.max_watch_event_bytes, std::uint64_t{4} << 20);
  EXPECT_EQ(o.max_list_page_bytes, std::uint64_t{16} << 20);
}

TEST(ApiLimitOptionsTest, ParsesAndRejects) {
  Options o;
  std::string error;
  ASSERT_TRUE(ParseOptions(
      {"--list-limit=50", "--max-watch-event-bytes", "8Mi", "--max-list-page-bytes=16Mi"}, &o,
      &error))
      << error;
  EXPECT_EQ(o.list_limit, 50);
  EXPECT_EQ(o.max_watch_event_bytes, std::uint64_t{8} << 20);
  EXPECT_EQ(o.max_list_page_bytes, std::uint64_t{16} << 20);
  for (const char* bad :
       {"--list-limit=0", "--list-limit=x", "--max-watch-event-bytes=100",
        "--max-watch-event-bytes=2Gi", "--max-list-page-bytes=12XB", "--max-list-page-bytes=0"}) {
    Options fresh;
    EXPECT_FALSE(ParseOptions({bad}, &fresh, &error)) << bad;
    EXPECT_NE(error.find(std::string(bad).substr(2, std::string(bad).find('=') - 2)),
              std::string::npos)
        << error;
  }
}

}  // namespace
}  // namespace eventbuffer::controller
