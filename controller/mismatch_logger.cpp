#include "controller/mismatch_logger.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace eventbuffer::controller {

namespace {

constexpr std::int64_t kSecondNs = 1'000'000'000;

std::int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A logfmt value in double quotes: backslash, quote and control characters escaped, so one
// report is always one line that a log pipeline can split into fields.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += '?';
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace

MismatchLogger::MismatchLogger(std::shared_ptr<spdlog::logger> logger, std::uint32_t max_per_second,
                               NowFn now)
    : logger_(logger ? std::move(logger) : spdlog::default_logger()),
      now_(now ? std::move(now) : NowFn(SteadyNowNs)),
      limiter_(max_per_second, kSecondNs) {}

std::string MismatchLogger::Format(const eventbuffer::MismatchReport& r) {
  std::string line = "gray-release mismatch key=" + Quote(r.key);
  line.append(" mode=").append(eventbuffer::GrayModeName(r.mode));
  line.append(" kind=").append(eventbuffer::MismatchKindName(r.kind));
  line.append(" legacy_count=").append(std::to_string(r.legacy_count));
  line.append(" atomic_count=").append(std::to_string(r.atomic_count));
  line.append(" first_difference=").append(Quote(r.first_difference));
  return line;
}

void MismatchLogger::ReportSuppressed(std::uint64_t n) {
  logger_->warn("gray-release mismatch log rate-limited: suppressed={} lines in the last 1s window",
                n);
}

void MismatchLogger::Log(const eventbuffer::MismatchReport& report) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto d = limiter_.Admit(now_());
  if (d.suppressed_before > 0) ReportSuppressed(d.suppressed_before);
  if (d.admitted) {
    ++logged_;
    logger_->warn("{}", Format(report));
  } else {
    ++suppressed_;
  }
}

void MismatchLogger::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  if (const std::uint64_t n = limiter_.Poll(now_()); n > 0) ReportSuppressed(n);
}

std::uint64_t MismatchLogger::logged() const {
  std::lock_guard<std::mutex> lock(mu_);
  return logged_;
}

std::uint64_t MismatchLogger::suppressed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return suppressed_;
}

}  // namespace eventbuffer::controller
