// Reading an Event's identity and a list page's metadata from a prefix cut anywhere.
#include "controller/kube/json_prefix.h"

#include <gtest/gtest.h>

#include <random>

namespace eventbuffer::controller {
namespace {

const std::string kLine =
    R"({"type":"MODIFIED","object":{"kind":"Event","apiVersion":"v1","metadata":{"name":)"
    R"("web.17a","namespace":"pay\u002dments","uid":"u-1","resourceVersion":"42",)"
    R"("creationTimestamp":"2024-05-01T10:00:00Z","labels":{"a":"b"}},"involvedObject":)"
    R"({"kind":"Pod","name":"other","uid":"not-this"},"message":"xxxxxxxx)";

TEST(JsonPrefixTest, ReadsTheIdentityOfACutWatchLine) {
  const OversizedEventIdentity id = IdentityFromWatchLinePrefix(kLine);
  EXPECT_EQ(id.type, "MODIFIED");
  EXPECT_EQ(id.namespace_name, "pay-ments");  // escapes are decoded
  EXPECT_EQ(id.name, "web.17a");
  EXPECT_EQ(id.uid, "u-1");  // not involvedObject.uid
  EXPECT_EQ(id.resource_version, "42");
  EXPECT_EQ(id.ToString(), "MODIFIED pay-ments/web.17a uid u-1 resourceVersion 42");
}

TEST(JsonPrefixTest, EveryCutGivesOnlyCompleteFields) {
  // Cut at every byte: never a crash, and a field is either absent or whole.
  for (std::size_t n = 0; n <= kLine.size(); ++n) {
    const OversizedEventIdentity id = IdentityFromWatchLinePrefix(kLine.substr(0, n));
    EXPECT_TRUE(id.type.empty() || id.type == "MODIFIED") << n;
    EXPECT_TRUE(id.name.empty() || id.name == "web.17a") << n;
    EXPECT_TRUE(id.uid.empty() || id.uid == "u-1") << n;
    EXPECT_TRUE(id.resource_version.empty() || id.resource_version == "42") << n;
  }
  const OversizedEventIdentity cut = IdentityFromWatchLinePrefix(kLine.substr(0, 110));
  EXPECT_EQ(cut.name, "web.17a");
  EXPECT_EQ(cut.resource_version, "");
  EXPECT_EQ(cut.ToString(), "MODIFIED ?/web.17a uid ? resourceVersion ?");
}

TEST(JsonPrefixTest, GarbageGivesNothing) {
  for (const char* text : {"", "not json", "{\"type\":", "[1,2", "{\"type\" \"ADDED\"}", "}}}"}) {
    const OversizedEventIdentity id = IdentityFromWatchLinePrefix(text);
    EXPECT_EQ(id.ToString(), "?/? uid ? resourceVersion ?") << text;
  }
}

TEST(JsonPrefixTest, ReadsListMetadataBeforeItems) {
  const std::string page =
      R"({"kind":"EventList","apiVersion":"v1","metadata":{"resourceVersion":"900",)"
      R"("continue":"eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6OTAwfQ","remainingItemCount":3},)"
      R"("items":[{"metadata":{"name":"e.1","namespace":"ns","uid":"u-9",)"
      R"("resourceVersion":"899"},"message":"yyyyyyyyyy)";
  const ListPagePrefix prefix = ListPageFromPrefix(page);
  EXPECT_TRUE(prefix.metadata_complete);
  EXPECT_EQ(prefix.resource_version, "900");
  EXPECT_EQ(prefix.continue_token, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6OTAwfQ");
  EXPECT_EQ(prefix.first_item.ToString(), "ns/e.1 uid u-9 resourceVersion 899");
  EXPECT_FALSE(prefix.first_item_complete);
  EXPECT_TRUE(ListPageFromPrefix(page + R"("},{"metadata":{)").first_item_complete);

  // The last page: no continue, but complete metadata.
  const ListPagePrefix last =
      ListPageFromPrefix(R"({"metadata":{"resourceVersion":"5"},"items":[{"metadata":{"na)");
  EXPECT_TRUE(last.metadata_complete);
  EXPECT_EQ(last.continue_token, "");
  EXPECT_EQ(last.resource_version, "5");

  // Cut inside the metadata: not complete, so no conclusion about continue.
  const ListPagePrefix cut = ListPageFromPrefix(page.substr(0, 60));
  EXPECT_FALSE(cut.metadata_complete);
  // Items first (not what the API server writes): the metadata is out of reach.
  const ListPagePrefix items_first =
      ListPageFromPrefix(R"({"items":[{"metadata":{"name":"a"},"message":"zzz)");
  EXPECT_FALSE(items_first.metadata_complete);
  EXPECT_EQ(items_first.first_item.name, "a");
}

TEST(JsonPrefixTest, NestedMetadataElsewhereIsNotTheListMetadata) {
  const ListPagePrefix p =
      ListPageFromPrefix(R"({"kind":"EventList","x":{"metadata":{"continue":"no"}},"items":[)");
  EXPECT_FALSE(p.metadata_complete);
  EXPECT_EQ(p.continue_token, "");
}

TEST(JsonPrefixTest, SurvivesRandomDamage) {
  // Inserted, deleted and cut bytes around escapes and nesting: the scan never reads past
  // its input (run it under -DSANITIZE=address) and what it reports is whole or nothing.
  const std::string seed =
      R"({"type":"ADDED","object":{"metadata":{"name":"a\"b","namespace":"n\u00e9",)"
      R"("uid":"u","resourceVersion":"1"},"items":[{"metadata":{"name":"x"}}],)"
      R"("message":"zz\ud83d"}})";
  const std::string alphabet = "{}[]\":,\\ u0aA-9trnfe\n";
  std::mt19937_64 rng(42);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s = seed;
    for (int m = static_cast<int>(rng() % 8); m > 0; --m) {
      const std::size_t pos = rng() % (s.size() + 1);
      switch (rng() % 3) {
        case 0:
          s.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 1:
          if (pos < s.size()) s.erase(pos, 1);
          break;
        default:
          s.resize(pos);
          break;
      }
    }
    const OversizedEventIdentity id = IdentityFromWatchLinePrefix(s);
    const ListPagePrefix page = ListPageFromPrefix(s);
    ASSERT_LE(id.ToString().size(), s.size() + 64) << s;
    ASSERT_LE(page.continue_token.size(), s.size()) << s;
  }
  // The undamaged seed: escapes decoded, a lone surrogate replaced.
  const OversizedEventIdentity id = IdentityFromWatchLinePrefix(seed);
  EXPECT_EQ(id.name, "a\"b");
  EXPECT_EQ(id.namespace_name, "n\xc3\xa9");
}

}  // namespace
}  // namespace eventbuffer::controller
