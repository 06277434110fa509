// Logging setup: spdlog's default logger writing one line per record to stderr, either as
// JSON lines ({"ts":..,"level":..,"logger":..,"msg":..}) or as plain text.
//
// JSON lines are built by JsonLineFormatter: the message is escaped (quotes, backslashes,
// control characters); UTF-8 passes through. Never log secrets (tokens): nothing here
// filters them.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>

namespace eventbuffer::controller {

class JsonLineFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

// Installs the default logger. format is "json" or "text"; level is a spdlog level name
// ("info", "warn", ...). Returns false for an unknown level.
bool SetupLogging(const std::string& format, const std::string& level);

}  // namespace eventbuffer::controller
