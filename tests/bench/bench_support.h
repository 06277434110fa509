// Pieces the benchmark programs share. Standard library only, so that storage-only builds
// (-DKEB_WITH_CONTROLLER=OFF) can use it; FromStreamStart is in from_stream_start.h.
#pragma once

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

namespace eventbuffer::bench {

// Milliseconds since the Unix epoch as an RFC 3339 timestamp with second resolution, as
// the API server writes lastTimestamp ("2024-05-01T10:00:00Z").
inline std::string Rfc3339(std::int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

}  // namespace eventbuffer::bench
