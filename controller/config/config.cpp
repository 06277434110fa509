#include "controller/config/config.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <sstream>

#include "controller/config/memory_limit.h"
#include "controller/file_text.h"
#include "eventbuffer/gray_flag.h"
#include "eventbuffer/message_limit.h"

namespace eventbuffer::controller {

namespace {

// The smallest eventBuffer.retention.maxBytes accepted.
constexpr std::size_t kMinMaxBytes = std::size_t{1} << 20;

// Thrown inside the parser only, caught in ParseConfig.
struct FieldError {
  std::string field;
  int line;  // 1-based, 0 unknown
  std::string message;
};

int LineOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

[[noreturn]] void Fail(const std::string& field, const YAML::Node& at, std::string message) {
  throw FieldError{field, LineOf(at), std::move(message)};
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "\"" + node.Scalar() + "\"";
    default:
      return "an undefined value";
  }
}

// Requires node to be a map whose keys are all in `known`.
void CheckMap(const std::string& field, const YAML::Node& node,
              std::initializer_list<std::string_view> known) {
  if (!node.IsMap()) Fail(field, node, "expected a map, got " + Describe(node));
  for (const auto& kv : node) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
    bool ok = false;
    for (std::string_view k : known) ok |= key == k;
    if (!ok) {
      std::string list;
      for (std::string_view k : known) list.append(list.empty() ? "" : ", ").append(k);
      Fail(field.empty() ? key : field + "." + key, kv.first,
           "unknown field (known: " + list + ")");
    }
  }
}

std::string ScalarOf(const std::string& field, const YAML::Node& node, const char* what) {
  if (!node.IsScalar())
    Fail(field, node, std::string("expected ") + what + ", got " + Describe(node));
  return node.Scalar();
}

double NumberOf(const std::string& field, const YAML::Node& node) {
  const std::string s = ScalarOf(field, node, "a number");
  const char* begin = s.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(begin, &end);
  if (s.empty() || end != begin + s.size() || errno == ERANGE || !std::isfinite(v)) {
    Fail(field, node, "expected a number, got \"" + s + "\"");
  }
  return v;
}

std::size_t CountOf(const std::string& field, const YAML::Node& node) {
  const std::string s = ScalarOf(field, node, "a positive integer");
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
    Fail(field, node, "expected a positive integer, got \"" + s + "\"");
  }
  if (v == 0) Fail(field, node, "must be positive, got 0");
  return static_cast<std::size_t>(v);
}

// A byte size: a non-negative integer, optionally followed by Ki, Mi, Gi or Ti (powers of
// 1024, as Kubernetes quantities spell them).
bool ParseByteSize(std::string_view text, std::size_t* out) {
  std::uint64_t n = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || ptr == text.data()) return false;
  const std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
  int shift = 0;
  if (unit == "Ki") {
    shift = 10;
  } else if (unit == "Mi") {
    shift = 20;
  } else if (unit == "Gi") {
    shift = 30;
  } else if (unit == "Ti") {
    shift = 40;
  } else if (!unit.empty()) {
    return false;
  }
  if (shift > 0 && n > (UINT64_MAX >> shift)) return false;
  *out = static_cast<std::size_t>(n << shift);
  return true;
}

std::size_t BytesOf(const std::string& field, const YAML::Node& node) {
  const std::string s = ScalarOf(field, node, "a byte size");
  std::size_t v = 0;
  if (!ParseByteSize(s, &v)) {
    Fail(field, node, "expected a byte size such as 16384, 64Ki, 512Mi or 2Gi, got \"" + s + "\"");
  }
  return v;
}

void ParseInto(const YAML::Node& root, BufferConfig* c) {
  if (!root.IsDefined() || root.IsNull()) {
    throw FieldError{"eventBuffer", 1, "missing (the file is empty)"};
  }
  CheckMap("", root, {"eventBuffer"});
  const YAML::Node eb = root["eventBuffer"];
  if (!eb) throw FieldError{"eventBuffer", LineOf(root), "missing"};
  CheckMap("eventBuffer", eb, {"mode", "rolloutPercent", "verify", "retention"});

  const YAML::Node mode = eb["mode"];
  if (!mode) Fail("eventBuffer.mode", eb, "missing (legacy, shadow, canary or atomic)");
  const std::string m = ScalarOf("eventBuffer.mode", mode, "a mode");
  if (!ParseGrayMode(m, &c->mode)) {
    Fail("eventBuffer.mode", mode,
         "unknown mode \"" + m + "\" (want legacy, shadow, canary or atomic)");
  }
  if (const YAML::Node p = eb["rolloutPercent"]) {
    c->rollout_percent = NumberOf("eventBuffer.rolloutPercent", p);
    if (c->rollout_percent < 0 || c->rollout_percent > 100) {
      Fail("eventBuffer.rolloutPercent", p, "must be within [0, 100], got " + p.Scalar());
    }
  }
  if (const YAML::Node v = eb["verify"]) {
    CheckMap("eventBuffer.verify", v, {"sampleRate"});
    if (const YAML::Node s = v["sampleRate"]) {
      c->verify.sample_rate = NumberOf("eventBuffer.verify.sampleRate", s);
      if (c->verify.sample_rate < 0 || c->verify.sample_rate > 1) {
        Fail("eventBuffer.verify.sampleRate", s, "must be within [0, 1], got " + s.Scalar());
      }
    }
  }
  bool max_bytes_set = false;
  if (const YAML::Node r = eb["retention"]) {
    CheckMap("eventBuffer.retention", r,
             {"maxAge", "maxEvents", "maxEventsPerObject", "maxMessageBytes", "maxClockSkew",
              "maxBytes"});
    if (const YAML::Node a = r["maxAge"]) {
      const std::string s = ScalarOf("eventBuffer.retention.maxAge", a, "a duration");
      if (!ParseDuration(s, &c->retention.max_age) || c->retention.max_age.count() == 0) {
        Fail("eventBuffer.retention.maxAge", a,
             "expected a positive duration such as 90s, 5m, 1h or 1h30m, got \"" + s + "\"");
      }
    }
    if (const YAML::Node n = r["maxEvents"]) {
      c->retention.max_events = CountOf("eventBuffer.retention.maxEvents", n);
    }
    if (const YAML::Node n = r["maxEventsPerObject"]) {
      c->retention.max_events_per_object = CountOf("eventBuffer.retention.maxEventsPerObject", n);
    }
    if (const YAML::Node n = r["maxMessageBytes"]) {
      c->retention.max_message_bytes = BytesOf("eventBuffer.retention.maxMessageBytes", n);
      if (c->retention.max_message_bytes < kMinMessageBytes) {
        Fail("eventBuffer.retention.maxMessageBytes", n,
             "must be at least " + std::to_string(kMinMessageBytes) + " bytes, got " + n.Scalar());
      }
    }
    if (const YAML::Node k = r["maxClockSkew"]) {
      const std::string s = ScalarOf("eventBuffer.retention.maxClockSkew", k, "a duration");
      if (!ParseDuration(s, &c->retention.max_clock_skew)) {
        Fail("eventBuffer.retention.maxClockSkew", k,
             "expected a duration such as 30s, 5m or 1h, got \"" + s + "\"");
      }
    }
    if (const YAML::Node n = r["maxBytes"]) {
      c->retention.max_bytes = BytesOf("eventBuffer.retention.maxBytes", n);
      if (c->retention.max_bytes < kMinMaxBytes) {
        Fail("eventBuffer.retention.maxBytes", n,
             "must be at least 1Mi (" + std::to_string(kMinMaxBytes) + " bytes), got " +
                 n.Scalar());
      }
      max_bytes_set = true;
    }
  }
  if (!max_bytes_set) c->retention.max_bytes = DefaultMaxBytes(ContainerMemoryLimit());
}

}  // namespace

bool ParseDuration(std::string_view text, std::chrono::milliseconds* out) {
  if (text.empty()) return false;
  std::int64_t total_ms = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::int64_t n = 0;
    const auto [ptr, ec] = std::from_chars(text.data() + i, text.data() + text.size(), n);
    if (ec != std::errc() || n < 0 || ptr == text.data() + text.size()) return false;
    i = static_cast<std::size_t>(ptr - text.data());
    std::int64_t unit_ms;
    switch (text[i]) {
      case 's':
        unit_ms = 1000;
        break;
      case 'm':
        unit_ms = 60'000;
        break;
      case 'h':
        unit_ms = 3'600'000;
        break;
      default:
        return false;
    }
    ++i;
    if (n > (INT64_MAX - total_ms) / unit_ms) return false;
    total_ms += n * unit_ms;
  }
  *out = std::chrono::milliseconds(total_ms);
  return true;
}

ConfigResult ParseConfig(std::string_view yaml, std::string_view source) {
  ConfigResult result;
  result.content = std::string(yaml);
  std::ostringstream msg;
  try {
    const YAML::Node root = YAML::Load(result.content);
    ParseInto(root, &result.config);
    // The structural checks above cover every field; this catches any rule added to the
    // buffer's own validation later.
    if (std::string err = ValidateBufferConfig(result.config); !err.empty()) {
      throw FieldError{err.substr(0, err.find(':')), 0, err.substr(err.find(':') + 2)};
    }
    return result;
  } catch (const FieldError& e) {
    result.error_field = e.field.empty() ? "(top level)" : e.field;
    result.error_line = e.line;
    msg << source << ':';
    if (e.line > 0) msg << e.line << ':';
    msg << ' ' << result.error_field << ": " << e.message;
  } catch (const YAML::Exception& e) {
    result.error_line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
    msg << source << ':';
    if (result.error_line > 0) msg << result.error_line << ':' << e.mark.column + 1 << ':';
    msg << " invalid YAML: " << e.msg;
  }
  result.error = msg.str();
  result.config = BufferConfig{};
  return result;
}

ConfigResult LoadConfigFile(const std::string& path) {
  std::string text;
  if (!ReadFileText(path, &text)) {
    ConfigResult r;
    r.error = path + ": cannot read: " + std::strerror(errno);
    return r;
  }
  return ParseConfig(text, path);
}

}  // namespace eventbuffer::controller
