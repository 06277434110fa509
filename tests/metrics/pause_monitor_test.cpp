#include "metrics/pause_monitor.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace eventbuffer::metrics {
namespace {

// Waits (bounded by `limit`) until `pred` holds. Not a timing assertion: the limit only
// keeps a broken monitor from hanging the suite.
template <typename Pred>
bool WaitFor(Pred pred, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(PauseMonitorTest, RecordsIntervalsWhileRunningAndStopsCleanly) {
  PauseMonitor monitor;
  EXPECT_FALSE(monitor.running());
  monitor.Start();
  monitor.Start();  // second Start is a no-op
  EXPECT_TRUE(monitor.running());
  ASSERT_TRUE(WaitFor([&] { return monitor.Samples() >= 20; }));
  monitor.Stop();
  EXPECT_FALSE(monitor.running());
  const auto after_stop = monitor.Samples();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(monitor.Samples(), after_stop);  // nothing recorded once stopped
  monitor.Stop();                            // second Stop is a no-op
  monitor.Start();                           // and it can run again
  ASSERT_TRUE(WaitFor([&] { return monitor.Samples() > after_stop; }));
}

TEST(PauseMonitorTest, RecordedPausesReachHistogramAndWindowMax) {
  // What the thread records for an oversleep lands in the histogram and the window maximum.
  PauseMonitor monitor;
  monitor.Record(40'000'000);
  monitor.Record(2'000'000);
  EXPECT_EQ(monitor.WindowMaxNs(), 40'000'000);
  const auto families = monitor.Collect();
  ASSERT_EQ(families.size(), 2u);
  EXPECT_EQ(families[0].name, "eventbuffer_process_pause_seconds");
  const auto& h = families[0].metric.at(0).histogram;
  EXPECT_EQ(h.sample_count, 2u);
  EXPECT_DOUBLE_EQ(h.sample_sum, 0.042);
  EXPECT_EQ(families[1].name, "eventbuffer_process_pause_max_seconds");
  EXPECT_DOUBLE_EQ(families[1].metric.at(0).gauge.value, 0.04);
}

TEST(PauseMonitorTest, DestructorStopsARunningMonitor) {
  auto monitor = std::make_unique<PauseMonitor>(std::chrono::microseconds(200));
  monitor->Start();
  ASSERT_TRUE(WaitFor([&] { return monitor->Samples() >= 5; }));
  monitor.reset();  // must join, not hang or crash
  SUCCEED();
}

// Runs only as the child of StoppedProcessShowsAsAPause (disabled, and KEB_PAUSE_CHILD set):
// starts a monitor, says "ready", waits for a line on stdin, prints the window max in ns.
TEST(PauseMonitorTest, DISABLED_ChildOfStoppedProcess) {
  if (std::getenv("KEB_PAUSE_CHILD") == nullptr) GTEST_SKIP() << "helper of another test";
  PauseMonitor monitor;
  monitor.Start();
  std::printf("ready\n");
  std::fflush(stdout);
  char line[16];
  if (std::fgets(line, sizeof line, stdin) == nullptr) return;
  monitor.Stop();
  std::printf("max %lld\n", static_cast<long long>(monitor.WindowMaxNs()));
  std::fflush(stdout);
}

// The meter's reason to exist: when the whole process is stopped (as by CPU throttling, but
// longer), its sleeping thread wakes up late by about as long. The child process is stopped
// with SIGSTOP for 300 ms; its monitor must record a pause of at least 200 ms. (A lower
// bound only: a stopped process cannot wake early, and load only lengthens the pause.)
TEST(PauseMonitorTest, StoppedProcessShowsAsAPause) {
  int to_child[2], from_child[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(from_child), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
  posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
  posix_spawn_file_actions_addclose(&actions, to_child[1]);
  posix_spawn_file_actions_addclose(&actions, from_child[0]);
  std::string self = "/proc/self/exe";
  std::string filter = "--gtest_filter=PauseMonitorTest.DISABLED_ChildOfStoppedProcess";
  std::string also = "--gtest_also_run_disabled_tests";
  char* argv[] = {self.data(), filter.data(), also.data(), nullptr};
  std::vector<std::string> env_strings = {"KEB_PAUSE_CHILD=1"};
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, self.c_str(), &actions, nullptr, argv, envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(to_child[0]);
  close(from_child[1]);
  FILE* in = fdopen(from_child[0], "r");
  ASSERT_NE(in, nullptr);

  // Wait for "ready" (gtest prints its own lines around it).
  char line[256];
  bool ready = false;
  while (!ready && std::fgets(line, sizeof line, in) != nullptr) {
    ready = std::string(line) == "ready\n";
  }
  ASSERT_TRUE(ready);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(kill(pid, SIGCONT), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(write(to_child[1], "go\n", 3), 3);
  close(to_child[1]);
  long long max_ns = -1;
  // Read to EOF: closing early would kill the child with SIGPIPE on its last lines.
  while (std::fgets(line, sizeof line, in) != nullptr) {
    std::sscanf(line, "max %lld", &max_ns);
  }
  std::fclose(in);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_GE(max_ns, 200'000'000) << "the monitor did not see the 300 ms stop";
}

}  // namespace
}  // namespace eventbuffer::metrics
