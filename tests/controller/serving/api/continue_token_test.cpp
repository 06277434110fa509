#include "controller/serving/api/continue_token.h"

#include <gtest/gtest.h>

namespace eventbuffer::controller {
namespace {

TEST(ContinueTokenTest, RoundTripsAPositionIncludingHostileBytes) {
  const std::uint64_t q = ListQueryHash(std::string("default"), "reason=BackOff");
  for (const OccurrencePosition& pos :
       {OccurrencePosition{1714557600123, "6f1c5b0e-0000-4000-8000-000000000001", "1001"},
        OccurrencePosition{-5, "", ""},
        OccurrencePosition{0, std::string("a\0\"\xff/+=", 8), "\n12"}}) {
    const std::string token = EncodeContinueToken(pos, q);
    EXPECT_EQ(
        token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        std::string::npos)
        << "base64url without padding: " << token;
    std::string error;
    const auto back = DecodeContinueToken(token, q, &error);
    ASSERT_TRUE(back) << error;
    EXPECT_EQ(back->time_ms, pos.time_ms);
    EXPECT_EQ(back->uid, pos.uid);
    EXPECT_EQ(back->resource_version, pos.resource_version);
  }
}

TEST(ContinueTokenTest, QueryIdentityIsChecked) {
  const OccurrencePosition pos{1, "u", "2"};
  const std::uint64_t ns_a = ListQueryHash(std::string("a"), "");
  const std::string token = EncodeContinueToken(pos, ns_a);
  std::string error;
  EXPECT_FALSE(DecodeContinueToken(token, ListQueryHash(std::string("b"), ""), &error));
  EXPECT_NE(error.find("another namespace or fieldSelector"), std::string::npos) << error;
  EXPECT_FALSE(DecodeContinueToken(token, ListQueryHash(std::nullopt, ""), &error));
  EXPECT_FALSE(DecodeContinueToken(token, ListQueryHash(std::string("a"), "type=Normal"), &error));
  EXPECT_TRUE(DecodeContinueToken(token, ns_a, &error));
  // The parts of the identity do not run into each other.
  EXPECT_NE(ListQueryHash(std::string("a"), "b"), ListQueryHash(std::string("ab"), ""));
  EXPECT_NE(ListQueryHash(std::nullopt, ""), ListQueryHash(std::string(""), ""));
}

TEST(ContinueTokenTest, EveryChangedCharacterIsRejected) {
  const std::uint64_t q = ListQueryHash(std::nullopt, "");
  const std::string token = EncodeContinueToken({1714557600123, "uid-1", "77"}, q);
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::size_t tried = 0;
  for (std::size_t i = 0; i < token.size(); ++i) {
    for (const char c : {'A', 'f', '9', '_'}) {
      if (token[i] == c) continue;
      std::string bad = token;
      bad[i] = c;
      std::string error;
      EXPECT_FALSE(DecodeContinueToken(bad, q, &error)) << "position " << i << " -> " << c;
      EXPECT_EQ(error.rfind("continue key is not valid", 0), 0u) << error;
      ++tried;
    }
  }
  EXPECT_GT(tried, 3 * token.size());
}

TEST(ContinueTokenTest, MalformedTokensAreRejected) {
  const std::uint64_t q = ListQueryHash(std::nullopt, "");
  const std::string token = EncodeContinueToken({1, "u", "2"}, q);
  std::string error;
  for (const std::string& bad :
       {std::string("x"), std::string("!!!!"), token + "=", token + "A", token.substr(1),
        token.substr(0, token.size() - 1), std::string("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"),
        std::string(5000, 'A'), token + "+", std::string()}) {
    EXPECT_FALSE(DecodeContinueToken(bad, q, &error)) << bad;
  }
}

}  // namespace
}  // namespace eventbuffer::controller
