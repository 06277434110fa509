#include "controller/config/config_watcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace eventbuffer::controller {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A directory laid out like a Kubernetes ConfigMap volume:
//   config.yaml -> ..data/config.yaml,  ..data -> ..<version>/,  ..<version>/config.yaml
// Update() writes a new version directory and swaps ..data with an atomic rename, as the
// kubelet's AtomicWriter does; the file's inode changes, its path does not.
class ConfigMapDir {
 public:
  ConfigMapDir() {
    root_ = fs::temp_directory_path() /
            ("keb-configmap-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~ConfigMapDir() { fs::remove_all(root_); }
  std::string path() const { return (root_ / "config.yaml").string(); }

  void Update(const std::string& text) {
    const std::string version = "..v" + std::to_string(version_++);
    fs::create_directories(root_ / version);
    std::ofstream(root_ / version / "config.yaml") << text;
    fs::create_directory_symlink(version, root_ / "..data_tmp");
    fs::rename(root_ / "..data_tmp", root_ / "..data");  // atomic swap
    if (!fs::is_symlink(root_ / "config.yaml")) {
      fs::create_symlink("..data/config.yaml", root_ / "config.yaml");
    }
  }
  void RemoveData() { fs::remove(root_ / "..data"); }

 private:
  static inline int counter_ = 0;
  fs::path root_;
  int version_ = 0;
};

// Records what the watcher applied and reported.
struct Recorder {
  std::mutex mu;
  std::vector<BufferConfig> applied;
  std::vector<std::pair<bool, std::string>> results;

  ConfigWatcher::ApplyFn Apply() {
    return [this](const BufferConfig& c) {
      std::lock_guard<std::mutex> lock(mu);
      applied.push_back(c);
    };
  }
  ConfigWatcher::ResultFn Result() {
    return [this](bool ok, const std::string& e) {
      std::lock_guard<std::mutex> lock(mu);
      results.emplace_back(ok, e);
    };
  }
  std::size_t Results() {
    std::lock_guard<std::mutex> lock(mu);
    return results.size();
  }
};

// Waits (bounded) until pred holds; the bound only keeps a broken build from hanging.
bool WaitFor(const std::function<bool()>& pred) {
  for (int i = 0; i < 1000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

const char* kShadow = "eventBuffer:\n  mode: shadow\n";
const char* kCanary = "eventBuffer:\n  mode: canary\n  rolloutPercent: 10\n";
const char* kBad = "eventBuffer:\n  mode: canary\n  rolloutPercent: 300\n";

ConfigWatcher::Options Fast(std::optional<std::string> initial = std::nullopt) {
  ConfigWatcher::Options o;
  o.poll_interval = 20ms;
  o.initial_content = std::move(initial);
  return o;
}

TEST(ConfigWatcherTest, ReloadsWhenTheConfigMapSwapsItsDataSymlink) {
  ConfigMapDir dir;
  dir.Update(kShadow);
  Recorder rec;
  ConfigWatcher watcher(dir.path(), rec.Apply(), rec.Result(), Fast(kShadow));
  watcher.Start();
  dir.Update(kCanary);
  ASSERT_TRUE(WaitFor([&] { return rec.Results() >= 1; }));
  watcher.Stop();
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.applied.size(), 1u) << "the unchanged initial content is not re-applied";
  EXPECT_EQ(rec.applied[0].mode, GrayMode::kCanary);
  EXPECT_EQ(rec.applied[0].rollout_percent, 10);
  EXPECT_TRUE(rec.results[0].first);
}

TEST(ConfigWatcherTest, InvalidFileKeepsTheLastGoodConfigAndIsReportedOnce) {
  ConfigMapDir dir;
  dir.Update(kShadow);
  Recorder rec;
  ConfigWatcher watcher(dir.path(), rec.Apply(), rec.Result(), Fast(kShadow));
  watcher.Start();
  dir.Update(kBad);
  ASSERT_TRUE(WaitFor([&] { return rec.Results() >= 1; }));
  // Many more polls of the same bad content: still one report.
  const auto polls_before = watcher.reloads();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(watcher.reloads(), polls_before);
  dir.Update(kCanary);
  ASSERT_TRUE(WaitFor([&] { return rec.Results() >= 2; }));
  watcher.Stop();
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.results.size(), 2u);
  EXPECT_FALSE(rec.results[0].first);
  const std::string& err = rec.results[0].second;
  EXPECT_NE(err.find("eventBuffer.rolloutPercent"), std::string::npos) << err;
  EXPECT_NE(err.find(dir.path() + ":3:"), std::string::npos) << err;
  EXPECT_NE(err.find("keeping the last good configuration"), std::string::npos) << err;
  ASSERT_EQ(rec.applied.size(), 1u) << "the invalid file was not applied";
  EXPECT_EQ(rec.applied[0].mode, GrayMode::kCanary);
  EXPECT_TRUE(rec.results[1].first);
}

TEST(ConfigWatcherTest, VanishedFileIsAFailureNotAReset) {
  ConfigMapDir dir;
  dir.Update(kShadow);
  Recorder rec;
  ConfigWatcher watcher(dir.path(), rec.Apply(), rec.Result(), Fast(kShadow));
  watcher.Start();
  dir.RemoveData();
  ASSERT_TRUE(WaitFor([&] { return rec.Results() >= 1; }));
  watcher.Stop();
  std::lock_guard<std::mutex> lock(rec.mu);
  EXPECT_FALSE(rec.results[0].first);
  EXPECT_NE(rec.results[0].second.find("cannot read"), std::string::npos);
  EXPECT_TRUE(rec.applied.empty());
}

TEST(ConfigWatcherTest, WithoutInitialContentTheFirstPollApplies) {
  ConfigMapDir dir;
  dir.Update(kCanary);
  Recorder rec;
  ConfigWatcher watcher(dir.path(), rec.Apply(), rec.Result(), Fast());
  watcher.Start();
  ASSERT_TRUE(WaitFor([&] { return rec.Results() >= 1; }));
  watcher.Stop();
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.applied.size(), 1u);
  EXPECT_EQ(rec.applied[0].mode, GrayMode::kCanary);
}

TEST(ConfigWatcherTest, ReloadNowReloadsAnUnchangedFileWhileThePollerRuns) {
  ConfigMapDir dir;
  dir.Update(kCanary);
  Recorder rec;
  ConfigWatcher::Options slow;
  slow.poll_interval = 1h;  // polling alone would never reload during this test
  slow.initial_content = kCanary;
  ConfigWatcher watcher(dir.path(), rec.Apply(), rec.Result(), slow);
  watcher.Start();
  std::thread([&watcher] { EXPECT_TRUE(watcher.ReloadNow()); }).join();
  ASSERT_TRUE(WaitFor([&] { return rec.Results() >= 1; }));
  watcher.Stop();
  std::lock_guard<std::mutex> lock(rec.mu);
  ASSERT_EQ(rec.applied.size(), 1u);
  EXPECT_EQ(rec.applied[0].mode, GrayMode::kCanary);
}

TEST(ConfigWatcherTest, ReloadNowReportsTheResult) {
  ConfigMapDir dir;
  dir.Update(kBad);
  Recorder rec;
  ConfigWatcher watcher(dir.path(), rec.Apply(), rec.Result());
  EXPECT_FALSE(watcher.ReloadNow());
  dir.Update(kShadow);
  EXPECT_TRUE(watcher.ReloadNow());
  EXPECT_TRUE(watcher.ReloadNow()) << "forced even when unchanged";
  std::lock_guard<std::mutex> lock(rec.mu);
  EXPECT_EQ(rec.results.size(), 3u);
  EXPECT_EQ(rec.applied.size(), 2u);
}

}  // namespace
}  // namespace eventbuffer::controller
