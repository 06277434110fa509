#include "controller/serving/api/query_params.h"

#include <gtest/gtest.h>

namespace eventbuffer::controller {
namespace {

TEST(QueryParamsTest, DecodesPercentAndPlusAndKeepsTheFirstValue) {
  const auto params = QueryParams::Parse(
      "fieldSelector=reason%3DBackOff%2Ctype%21%3DNormal&limit=5&x=a+b&"
      "limit=7&&flag&empty=");
  ASSERT_TRUE(params);
  EXPECT_EQ(params->Get("fieldSelector"), "reason=BackOff,type!=Normal");
  EXPECT_EQ(params->Get("limit"), "5");
  EXPECT_EQ(params->Get("x"), "a b");
  EXPECT_EQ(params->Get("flag"), "");
  EXPECT_EQ(params->Get("empty"), "");
  EXPECT_FALSE(params->Get("missing"));
}

TEST(QueryParamsTest, RejectsBadEscapes) {
  EXPECT_FALSE(QueryParams::Parse("a=%"));
  EXPECT_FALSE(QueryParams::Parse("a=%4"));
  EXPECT_FALSE(QueryParams::Parse("a=%zz"));
  EXPECT_FALSE(QueryParams::Parse("%g1=b"));
  EXPECT_TRUE(QueryParams::Parse("a=%41")) << "a complete escape at the very end";
}

TEST(QueryParamsTest, SplitPathDecodesSegmentsButNotPlus) {
  const auto segments = SplitPath("/apis/eventbuffer.dev/v1alpha1/namespaces/a%2Bb/events/x+y");
  ASSERT_TRUE(segments);
  EXPECT_EQ(*segments, (std::vector<std::string>{"apis", "eventbuffer.dev", "v1alpha1",
                                                 "namespaces", "a+b", "events", "x+y"}));
  EXPECT_EQ(*SplitPath("/a//b/"), (std::vector<std::string>{"a", "", "b", ""}));
  EXPECT_FALSE(SplitPath("apis"));
  EXPECT_FALSE(SplitPath(""));
  EXPECT_FALSE(SplitPath("/apis/%zz"));
}

}  // namespace
}  // namespace eventbuffer::controller
