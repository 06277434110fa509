// The controller's configuration file (--config PATH): YAML read with yaml-cpp into an
// eventbuffer::BufferConfig.
//
//   eventBuffer:
//     mode: shadow            # legacy | shadow | canary | atomic        (required)
//     rolloutPercent: 10      # 0-100, fractions allowed                 (default 0)
//     verify:
//       sampleRate: 0.1       # 0-1                                      (default 0.1)
//     retention:
//       maxAge: 1h            # integer + unit s|m|h, may chain: 1h30m   (default 1h)
//       maxEvents: 1000000    # positive integer                         (default 1000000)
//       maxEventsPerObject: 1000  # positive integer                     (default 1000)
//
// Strict: an unknown key (a typo such as "rolloutPercnt") is an error, so is a value of the
// wrong type or out of range; mode is required, so an empty or truncated file can never
// silently switch the rollout back to a default. Errors name the file, the 1-based line
// and the field: "config.yaml:4: eventBuffer.rolloutPercent: must be within [0, 100], got 120".
//
// Thread safety: the functions are reentrant.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "eventbuffer/buffer_config.h"

namespace eventbuffer::controller {

struct ConfigResult {
  bool ok() const { return error.empty(); }
  eventbuffer::BufferConfig config;  // valid only when ok()
  std::string content;               // the text parsed (LoadConfigFile: the file's content)
  // On failure: the field as written in YAML ("eventBuffer.retention.maxAge"; "" for a syntax
  // or file error), the 1-based line (0 when unknown), and the full message with both.
  std::string error_field;
  int error_line = 0;
  std::string error;
};

// Parses configuration text; source names it in messages (usually the file path).
ConfigResult ParseConfig(std::string_view yaml, std::string_view source = "config");

// Reads and parses the file at path (following symlinks, as a ConfigMap volume needs).
ConfigResult LoadConfigFile(const std::string& path);

// Parses a duration: one or more <integer><unit> with unit s, m or h ("90s", "5m", "1h30m").
// Returns false for anything else (empty, no unit, negative, overflow).
bool ParseDuration(std::string_view text, std::chrono::milliseconds* out);

}  // namespace eventbuffer::controller
