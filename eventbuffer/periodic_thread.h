// PeriodicThread: one background thread that runs a task once per interval until stopped.
// The controller's background loops use it: the buffer's maintenance (retention and the
// verification sweep), the configuration file's hot reload and the process pause meter.
//
//   PeriodicThread t;
//   t.Start(std::chrono::seconds(5), [&](auto) { buffer.EnforceRetention(NowUnixMs()); });
//   ...
//   t.Stop();  // wakes the thread at once and joins it
//
// Timing. Each round waits until a deadline = (end of the previous task, or Start) +
// interval, then calls task(deadline). A task that wants to know how late it was woken (the
// pause meter) compares the deadline with the clock. Spurious wake-ups never run the task
// early. The task runs without any lock of this class held.
//
// Thread safety: Start, Stop, running() and the destructor belong to one owner thread. The
// task runs on the periodic thread only, one call at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace eventbuffer {

class PeriodicThread {
 public:
  using Clock = std::chrono::steady_clock;
  using Task = std::function<void(Clock::time_point deadline)>;

  PeriodicThread() = default;
  ~PeriodicThread() { Stop(); }
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

  // Starts the thread: on_start (if any) runs first on it, then task once per interval.
  // No effect when already running. REQUIRES: interval > 0.
  void Start(Clock::duration interval, Task task, std::function<void()> on_start = {}) {
    if (thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = false;
    }
    thread_ = std::thread([this, interval, task = std::move(task), on_start = std::move(on_start)] {
      if (on_start) on_start();
      std::unique_lock<std::mutex> lock(mu_);
      while (!stop_) {
        const Clock::time_point deadline = Clock::now() + interval;
        if (cv_.wait_until(lock, deadline, [this] { return stop_; })) break;
        lock.unlock();
        task(deadline);
        lock.lock();
      }
    });
  }

  // Stops and joins the thread: returns once a task in progress has finished. No effect
  // when not running.
  void Stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  bool running() const { return thread_.joinable(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;   // guarded by mu_
  std::thread thread_;  // touched only by the owner (Start, Stop, destructor)
};

}  // namespace eventbuffer
