#include "controller/kube/token_source.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace eventbuffer::controller {
namespace {

class TokenSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("keb_token_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "token").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& text) { std::ofstream(path_, std::ios::trunc) << text; }

  std::filesystem::path dir_;
  std::string path_;
  TokenSource::Clock::time_point now_ = TokenSource::Clock::time_point{} + std::chrono::hours(1);
};

TEST_F(TokenSourceTest, StaticTokenIsTrimmed) {
  auto source = TokenSource::Static("abc\n");
  EXPECT_EQ(source->Token(), "abc");
  EXPECT_FALSE(source->from_file());
}

TEST_F(TokenSourceTest, FileTokenIsCachedUntilTheReloadInterval) {
  Write("first\n");
  auto source = TokenSource::FromFile(path_, std::chrono::seconds(60), [this] { return now_; });
  EXPECT_EQ(source->Token(), "first");
  Write("second\n");
  now_ += std::chrono::seconds(30);
  EXPECT_EQ(source->Token(), "first");  // still cached
  now_ += std::chrono::seconds(31);
  EXPECT_EQ(source->Token(), "second");  // re-read after a minute
  EXPECT_EQ(source->reads(), 2);
}

TEST_F(TokenSourceTest, InvalidateRereadsAtOnce) {
  Write("old");
  auto source = TokenSource::FromFile(path_, std::chrono::seconds(60), [this] { return now_; });
  EXPECT_EQ(source->Token(), "old");
  Write("rotated");
  source->Invalidate();  // the API server said 401
  EXPECT_EQ(source->Token(), "rotated");
}

TEST_F(TokenSourceTest, UnreadableOrEmptyFileKeepsTheLastGoodToken) {
  Write("good");
  auto source = TokenSource::FromFile(path_, std::chrono::seconds(60), [this] { return now_; });
  EXPECT_EQ(source->Token(), "good");
  Write("");
  source->Invalidate();
  EXPECT_EQ(source->Token(), "good");
  std::filesystem::remove(path_);
  source->Invalidate();
  EXPECT_EQ(source->Token(), "good");
}

TEST_F(TokenSourceTest, MissingFileGivesEmptyToken) {
  auto source = TokenSource::FromFile((dir_ / "absent").string());
  EXPECT_EQ(source->Token(), "");
}

}  // namespace
}  // namespace eventbuffer::controller
