#include "controller/config/memory_limit.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace eventbuffer::controller {
namespace {

namespace fs = std::filesystem;

class MemoryLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("keb-cgroup-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
             "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "memory");
  }
  void TearDown() override { fs::remove_all(root_); }
  void Write(const std::string& rel, const std::string& text) {
    std::ofstream(root_ / rel) << text;
  }
  fs::path root_;
};

TEST_F(MemoryLimitTest, ReadsCgroupV2) {
  Write("memory.max", "1073741824\n");
  EXPECT_EQ(ContainerMemoryLimit(root_.string()), 1073741824u);
  EXPECT_EQ(DefaultMaxBytes(ContainerMemoryLimit(root_.string())), 536870912u);
}

TEST_F(MemoryLimitTest, V2MaxMeansUnlimited) {
  Write("memory.max", "max\n");
  EXPECT_EQ(ContainerMemoryLimit(root_.string()), 0u);
  EXPECT_EQ(DefaultMaxBytes(0), kUnlimitedMaxBytes);
}

TEST_F(MemoryLimitTest, ReadsCgroupV1AndItsUnlimitedValue) {
  Write("memory/memory.limit_in_bytes", "268435456\n");
  EXPECT_EQ(ContainerMemoryLimit(root_.string()), 268435456u);
  Write("memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(ContainerMemoryLimit(root_.string()), 0u);
}

TEST_F(MemoryLimitTest, MissingOrGarbageIsUnknown) {
  EXPECT_EQ(ContainerMemoryLimit(root_.string()), 0u);
  Write("memory.max", "lots\n");
  EXPECT_EQ(ContainerMemoryLimit(root_.string()), 0u);
  EXPECT_EQ(ContainerMemoryLimit("/nonexistent/keb"), 0u);
}

}  // namespace
}  // namespace eventbuffer::controller
