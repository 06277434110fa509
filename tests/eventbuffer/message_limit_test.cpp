#include "eventbuffer/message_limit.h"

#include <gtest/gtest.h>

#include <string>

#include "eventbuffer/event_buffer.h"
#include "tests/eventbuffer/buffer_test_util.h"

namespace eventbuffer {
namespace {

using testing::CountingObserver;
using testing::MakeEvent;

constexpr std::int64_t kBase = 1'700'000'000'000;

// True when s is well-formed UTF-8 (no truncated or stray sequences).
bool ValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

TEST(MessageLimitTest, ShortMessagesAreKeptAsTheyAre) {
  EXPECT_EQ(LimitMessage("hello", 128), "hello");
  const std::string exact(128, 'x');
  EXPECT_EQ(LimitMessage(exact, 128), exact);
}

TEST(MessageLimitTest, LongMessagesGetAMarkerWithTheOriginalLength) {
  const std::string message(1000, 'a');
  const std::string out = LimitMessage(message, 200);
  EXPECT_LE(out.size(), 200u);
  const std::string::size_type mark = out.find("\u2026 [truncated ");
  ASSERT_NE(mark, std::string::npos) << out;
  EXPECT_EQ(out.substr(0, mark), std::string(mark, 'a'));
  EXPECT_EQ(out.substr(mark), "\u2026 [truncated " + std::to_string(1000 - mark) + " of 1000 bytes]");
}

TEST(MessageLimitTest, NeverCutsInsideAUtf8Character) {
  // Two-, three- and four-byte characters at every alignment against the cut.
  for (const std::string ch : {"\u00e9", "\u20ac", "\U0001F600"}) {
    for (std::size_t pad = 0; pad < 4; ++pad) {
      std::string message(pad, 'x');
      while (message.size() < 5000) message += ch;
      for (std::size_t limit = 128; limit < 140; ++limit) {
        const std::string out = LimitMessage(message, limit);
        EXPECT_LE(out.size(), limit);
        EXPECT_TRUE(ValidUtf8(out)) << "char " << ch << " pad " << pad << " limit " << limit;
        EXPECT_NE(out.find("of 5"), std::string::npos);
      }
    }
  }
}

TEST(MessageLimitTest, Utf8PrefixLengthBacksUpToALeadByte) {
  const std::string s = "ab\u20ac";  // 'a' 'b' E2 82 AC
  EXPECT_EQ(Utf8PrefixLength(s, 5), 5u);
  EXPECT_EQ(Utf8PrefixLength(s, 4), 2u);
  EXPECT_EQ(Utf8PrefixLength(s, 3), 2u);
  EXPECT_EQ(Utf8PrefixLength(s, 2), 2u);
  EXPECT_EQ(Utf8PrefixLength(s, 0), 0u);
}

TEST(MessageLimitTest, RecordKeepsEveryOtherFieldAndNumber) {
  const EventRef big = MakeEvent("ns", "Pod", "p", "u", "1", kBase, std::string(100'000, 'm'));
  const EventRef small = WithMessageLimit(big, 1024);
  ASSERT_NE(small.get(), big.get());
  EXPECT_LE(small->message().size(), 1024u);
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
    const auto f = static_cast<EventRecord::Field>(i);
    if (f != EventRecord::Field::kMessage) {
      EXPECT_EQ(small->Get(f), big->Get(f));
    }
  }
  EXPECT_EQ(small->numbers().last_seen_unix_ms, big->numbers().last_seen_unix_ms);
  EXPECT_EQ(small->numbers().receive_unix_ns, big->numbers().receive_unix_ns);
  const EventRef same = MakeEvent("ns", "Pod", "p", "u", "2", kBase, "short");
  EXPECT_EQ(WithMessageLimit(same, 1024).get(), same.get());
}

TEST(MessageLimitTest, BufferStoresTruncatedMessagesAndCountsThem) {
  CountingObserver observer;
  BufferConfig cfg;
  cfg.verify.sample_rate = 1;  // every append is verified: both backends hold the same record
  cfg.retention.max_message_bytes = 4096;
  EventBuffer buffer(cfg, &observer);
  const std::string huge(1536 * 1024, 'z');
  ASSERT_EQ(buffer.Append(MakeEvent("ns", "Pod", "p", "u", "1", kBase, huge)),
            EventBuffer::AppendResult::kStored);
  ASSERT_EQ(buffer.Append(MakeEvent("ns", "Pod", "p", "u", "2", kBase + 1, "fine")),
            EventBuffer::AppendResult::kStored);
  const auto held = buffer.Read("ns/Pod/p");
  ASSERT_EQ(held.size(), 2u);
  EXPECT_LE(held[0]->message().size(), 4096u);
  EXPECT_NE(held[0]->message().find("of 1572864 bytes]"), std::string::npos);
  EXPECT_EQ(held[1]->message(), "fine");
  const BufferStats st = buffer.Stats();
  EXPECT_EQ(st.truncated_messages, 1u);
  EXPECT_EQ(observer.truncated.load(), 1u);
  EXPECT_EQ(st.mismatches[0] + st.mismatches[1] + st.mismatches[2] + st.mismatches[3] +
                st.mismatches[4],
            0u);
  EXPECT_LT(st.record_bytes, 2 * 4096u + 2 * 1024u);
  // The listed and found occurrence is the truncated one too.
  EXPECT_EQ(buffer.List({}).items.front()->message(), held[0]->message());
  // Same identity again: a duplicate, whatever the message length.
  EXPECT_EQ(buffer.Append(MakeEvent("ns", "Pod", "p", "u", "1", kBase, huge)),
            EventBuffer::AppendResult::kDuplicate);
}

TEST(MessageLimitTest, ConfigRejectsATooSmallLimit) {
  BufferConfig cfg;
  cfg.retention.max_message_bytes = kMinMessageBytes - 1;
  EXPECT_NE(ValidateBufferConfig(cfg).find("eventBuffer.retention.maxMessageBytes"),
            std::string::npos);
  cfg.retention.max_message_bytes = kMinMessageBytes;
  EXPECT_EQ(ValidateBufferConfig(cfg), "");
}

}  // namespace
}  // namespace eventbuffer
