// MismatchLogger: writes the EventBuffer's mismatch reports as structured spdlog warnings,
// at most max_per_second lines a second; what it drops it counts and reports in one line
// once the second is over.
//
//   [warn] gray-release mismatch key="default/Pod/web" mode=shadow kind=missing
//          legacy_count=12 atomic_count=11 first_difference="atomic lacks uid=... (reason=BackOff)"
//   [warn] gray-release mismatch log rate-limited: suppressed=143 lines in the last 1s window
//
// Wire it with buffer.SetMismatchSink([&](const MismatchReport& r) { logger.Log(r); }).
// Call Flush() now and then (e.g. from the maintenance loop) and at shutdown so that a
// suppressed count is not held back until the next mismatch.
//
// Thread safety: Log and Flush may be called from any thread; lines are written under a mutex.
#pragma once

#include <spdlog/logger.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "eventbuffer/event_buffer.h"
#include "controller/rate_limiter.h"

namespace eventbuffer::controller {

class MismatchLogger {
 public:
  // Monotonic nanoseconds; injectable for tests.
  using NowFn = std::function<std::int64_t()>;

  // logger: where lines go (null: spdlog's default logger). REQUIRES: max_per_second >= 1.
  explicit MismatchLogger(std::shared_ptr<spdlog::logger> logger = nullptr,
                          std::uint32_t max_per_second = 10, NowFn now = nullptr);

  // Logs one report, or counts it as suppressed.
  void Log(const eventbuffer::MismatchReport& report);
  // Writes the suppressed-count line if a window with suppressed lines has closed.
  void Flush();

  std::uint64_t logged() const;
  std::uint64_t suppressed() const;

  // The structured line for a report (without the level), for tests and other sinks.
  static std::string Format(const eventbuffer::MismatchReport& report);

 private:
  void ReportSuppressed(std::uint64_t n);

  std::shared_ptr<spdlog::logger> logger_;
  NowFn now_;
  mutable std::mutex mu_;
  WindowRateLimiter limiter_;
  std::uint64_t logged_ = 0, suppressed_ = 0;
};

}  // namespace eventbuffer::controller
