#include "controller/shutdown_delay.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "controller/config/options.h"

namespace eventbuffer::controller {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// SIGUSR1 stands for SIGTERM and SIGUSR2 for SIGHUP: the test process's own SIGTERM stays
// untouched. Each waiter blocks them in its own thread only and is sent them with
// pthread_kill, so no other thread of the test binary can receive them.
sigset_t TestSignals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  sigaddset(&s, SIGUSR2);
  return s;
}

struct Waiter {
  std::atomic<bool> blocked{false};
  std::atomic<pthread_t> thread{};
  std::vector<int> seen;  // read after join
  std::atomic<int> seen_count{0};
  int result = -1;
  Clock::duration took{};
  std::thread t;

  void Start(milliseconds delay) {
    t = std::thread([this, delay] {
      const sigset_t signals = TestSignals();
      pthread_sigmask(SIG_BLOCK, &signals, nullptr);
      thread.store(pthread_self());
      blocked.store(true);
      const auto start = Clock::now();
      result = WaitShutdownDelay(signals, delay, [this](int s) {
        seen.push_back(s);
        seen_count.fetch_add(1);
        return s == SIGUSR1;
      });
      took = Clock::now() - start;
    });
    while (!blocked.load()) std::this_thread::yield();
  }
  void Send(int sig) { ASSERT_EQ(pthread_kill(thread.load(), sig), 0); }
};

TEST(ShutdownDelayTest, WaitsTheWholeDelayWithoutASignal) {
  Waiter w;
  w.Start(milliseconds(200));
  w.t.join();
  EXPECT_EQ(w.result, 0);
  EXPECT_TRUE(w.seen.empty());
  EXPECT_GE(w.took, milliseconds(200)) << "returned before the delay was over";
}

TEST(ShutdownDelayTest, ASecondStopSignalCutsTheDelayShort) {
  Waiter w;
  w.Start(milliseconds(60'000));
  w.Send(SIGUSR1);
  w.t.join();
  EXPECT_EQ(w.result, SIGUSR1);
  EXPECT_EQ(w.seen, std::vector<int>{SIGUSR1});
  // Not a timing assertion of speed: a minute-long delay that ended means the signal ended it.
  EXPECT_LT(w.took, milliseconds(60'000));
}

TEST(ShutdownDelayTest, OtherSignalsAreTakenAndTheWaitGoesOn) {
  Waiter w;
  w.Start(milliseconds(60'000));
  w.Send(SIGUSR2);
  // SIGUSR2 is taken (the callback sees it) and the wait goes on until SIGUSR1. (Sent one
  // after the other they could be pending together, and the lower-numbered goes first.)
  while (w.seen_count.load() == 0) std::this_thread::sleep_for(milliseconds(1));
  w.Send(SIGUSR1);
  w.t.join();
  EXPECT_EQ(w.result, SIGUSR1);
  ASSERT_FALSE(w.seen.empty());
  EXPECT_EQ(w.seen.back(), SIGUSR1);
  EXPECT_EQ(w.seen.size(), 2u);
  EXPECT_EQ(w.seen.front(), SIGUSR2);
}

TEST(ShutdownDelayTest, OnlyNonEndingSignalsWaitTheWholeDelay) {
  Waiter w;
  w.Start(milliseconds(300));
  w.Send(SIGUSR2);
  w.t.join();
  EXPECT_EQ(w.result, 0);
  EXPECT_EQ(w.seen, std::vector<int>{SIGUSR2});
  EXPECT_GE(w.took, milliseconds(300)) << "a non-ending signal ended the delay";
}

TEST(ShutdownDelayTest, ZeroDelayReturnsAtOnceAndLeavesPendingSignals) {
  const sigset_t signals = TestSignals();
  std::promise<std::pair<int, bool>> done;
  std::thread t([&] {
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    pthread_kill(pthread_self(), SIGUSR1);  // pending, blocked
    const int r = WaitShutdownDelay(signals, milliseconds(0), {});
    sigset_t pending;
    sigpending(&pending);
    const bool still_pending = sigismember(&pending, SIGUSR1) == 1;
    // Take it so the thread ends clean.
    int sig = 0;
    if (still_pending) sigwait(&signals, &sig);
    done.set_value({r, still_pending});
  });
  t.join();
  const auto [result, still_pending] = done.get_future().get();
  EXPECT_EQ(result, 0);
  EXPECT_TRUE(still_pending);
}

TEST(ShutdownDelayTest, FlagIsAGoDurationDefaultFiveSecondsZeroAllowed) {
  Options o;
  std::string error;
  ASSERT_TRUE(ParseOptions({}, &o, &error)) << error;
  EXPECT_EQ(o.shutdown_delay, milliseconds(5000));
  ASSERT_TRUE(ParseOptions({"--shutdown-delay=3s"}, &o, &error)) << error;
  EXPECT_EQ(o.shutdown_delay, milliseconds(3000));
  ASSERT_TRUE(ParseOptions({"--shutdown-delay", "1m30s"}, &o, &error)) << error;
  EXPECT_EQ(o.shutdown_delay, milliseconds(90'000));
  ASSERT_TRUE(ParseOptions({"--shutdown-delay=0"}, &o, &error)) << error;
  EXPECT_EQ(o.shutdown_delay, milliseconds(0));
  ASSERT_TRUE(ParseOptions({"--shutdown-delay=0s"}, &o, &error)) << error;
  EXPECT_EQ(o.shutdown_delay, milliseconds(0));
  for (const char* bad : {"--shutdown-delay=5", "--shutdown-delay=-1s", "--shutdown-delay=soon"}) {
    Options b;
    EXPECT_FALSE(ParseOptions({bad}, &b, &error)) << bad;
    EXPECT_NE(error.find("--shutdown-delay"), std::string::npos) << error;
  }
  EXPECT_NE(Usage().find("--shutdown-delay"), std::string::npos);
}

}  // namespace
}  // namespace eventbuffer::controller
