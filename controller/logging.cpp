#include "controller/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>

#include "controller/json_text.h"

namespace eventbuffer::controller {

void JsonLineFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  std::string line;
  line.reserve(96 + msg.payload.size());
  const auto since_epoch = msg.time.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - secs).count();
  const std::time_t t = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[40];
  const std::size_t n = std::strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(ts + n, sizeof(ts) - n, ".%03dZ", static_cast<int>(millis));
  line += "{\"ts\":\"";
  line += ts;
  line += "\",\"level\":";
  const auto level = spdlog::level::to_string_view(msg.level);
  AppendJsonString(&line, std::string_view(level.data(), level.size()));
  if (msg.logger_name.size() > 0) {
    line += ",\"logger\":";
    AppendJsonString(&line, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
  }
  line += ",\"msg\":";
  AppendJsonString(&line, std::string_view(msg.payload.data(), msg.payload.size()));
  line += "}\n";
  dest.append(line.data(), line.data() + line.size());
}

std::unique_ptr<spdlog::formatter> JsonLineFormatter::clone() const {
  return std::make_unique<JsonLineFormatter>();
}

bool SetupLogging(const std::string& format, const std::string& level) {
  const auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") return false;
  auto logger =
      std::make_shared<spdlog::logger>("", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (format == "json") {
    logger->set_formatter(std::make_unique<JsonLineFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  return true;
}

}  // namespace eventbuffer::controller
