#include "controller/serving/api/field_selector.h"

#include <array>
#include <utility>

namespace eventbuffer::controller {

namespace {

using Field = EventRecord::Field;

struct FieldName {
  std::string_view name;
  std::optional<Field> field;  // nullopt: metadata.name
  // For "source": the API server compares source.component, or reportingComponent when
  // source.component is empty (Events written through events.k8s.io set only the latter).
  std::optional<Field> fallback = std::nullopt;
};

constexpr std::array<FieldName, 12> kFields = {{
    {"involvedObject.kind", Field::kInvolvedKind},
    {"involvedObject.namespace", Field::kInvolvedNamespace},
    {"involvedObject.name", Field::kInvolvedName},
    {"involvedObject.uid", Field::kInvolvedUid},
    {"involvedObject.apiVersion", Field::kInvolvedApiVersion},
    {"involvedObject.fieldPath", Field::kInvolvedFieldPath},
    {"reason", Field::kReason},
    {"reportingComponent", Field::kReportingComponent},
    {"source", Field::kSourceComponent, Field::kReportingComponent},
    {"type", Field::kType},
    {"metadata.name", std::nullopt},
    {"metadata.namespace", Field::kNamespace},
}};

// `text` in double quotes with '"', '\' and control bytes escaped (like Go's %q for the
// printable ASCII that field names are).
std::string Quote(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
  return out;
}

// Splits on ',' not preceded by an escaping '\'; the escapes stay in the terms.
std::vector<std::string_view> SplitTerms(std::string_view text) {
  std::vector<std::string_view> terms;
  std::size_t start = 0;
  bool escaped = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (escaped) {
      escaped = false;
    } else if (text[i] == '\\') {
      escaped = true;
    } else if (text[i] == ',') {
      terms.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  terms.push_back(text.substr(start));
  return terms;
}

// Resolves VALUE's escapes into *out; false (and *error) on a bad escape or a bare ',' '='.
bool UnescapeValue(std::string_view value, std::string* out, std::string* error) {
  out->clear();
  bool escaped = false;
  for (const char c : value) {
    if (escaped) {
      if (c != '\\' && c != ',' && c != '=') {
        *error = std::string("invalid field selector: invalid escape sequence: \\") + c;
        return false;
      }
      out->push_back(c);
      escaped = false;
    } else if (c == '\\') {
      escaped = true;
    } else if (c == ',' || c == '=') {
      *error = std::string("invalid field selector: unescaped character in value: '") + c + "'";
      return false;
    } else {
      out->push_back(c);
    }
  }
  if (escaped) {
    *error = "invalid field selector: invalid escape sequence: \\";
    return false;
  }
  return true;
}

// Whether `value` equals "<name>.<rv>" of the record, without building the string.
bool EqualsOccurrenceName(const EventRecord& r, std::string_view value) {
  const std::string_view name = r.Get(Field::kName);
  const std::string_view rv = r.resource_version();
  return value.size() == name.size() + 1 + rv.size() && value.substr(0, name.size()) == name &&
         value[name.size()] == '.' && value.substr(name.size() + 1) == rv;
}

}  // namespace

const std::vector<std::string_view>& EventFieldSelector::KnownFields() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> out;
    for (const auto& f : kFields) out.push_back(f.name);
    return out;
  }();
  return names;
}

std::optional<EventFieldSelector> EventFieldSelector::Parse(std::string_view text,
                                                            std::string* error) {
  EventFieldSelector selector;
  if (text.empty()) return selector;
  for (const std::string_view term : SplitTerms(text)) {
    if (term.empty()) continue;
    // The first operator in the term, trying "!=" then "==" then "=" at each position.
    std::size_t at = std::string_view::npos;
    std::size_t op_size = 0;
    bool negate = false;
    for (std::size_t i = 0; i < term.size() && at == std::string_view::npos; ++i) {
      const std::string_view rest = term.substr(i);
      if (rest.substr(0, 2) == "!=") {
        at = i, op_size = 2, negate = true;
      } else if (rest.substr(0, 2) == "==") {
        at = i, op_size = 2;
      } else if (rest.front() == '=') {
        at = i, op_size = 1;
      }
    }
    if (at == std::string_view::npos) {
      *error = "invalid selector: '" + std::string(text) + "'; can't understand '" +
               std::string(term) + "'";
      return std::nullopt;
    }
    const std::string_view field_name = term.substr(0, at);
    Term parsed;
    parsed.negate = negate;
    if (!UnescapeValue(term.substr(at + op_size), &parsed.value, error)) return std::nullopt;
    const FieldName* known = nullptr;
    for (const auto& f : kFields) {
      if (f.name == field_name) known = &f;
    }
    if (known == nullptr) {
      *error = Quote(field_name) + " is not a known field selector: only ";
      for (std::size_t i = 0; i < kFields.size(); ++i) {
        if (i > 0) *error += ", ";
        *error += Quote(kFields[i].name);
      }
      return std::nullopt;
    }
    parsed.field = known->field;
    parsed.fallback = known->fallback;
    selector.terms_.push_back(std::move(parsed));
  }
  return selector;
}

bool EventFieldSelector::Matches(const EventRecord& record) const {
  for (const Term& term : terms_) {
    bool equal;
    if (!term.field) {
      equal = EqualsOccurrenceName(record, term.value);
    } else {
      std::string_view value = record.Get(*term.field);
      if (value.empty() && term.fallback) value = record.Get(*term.fallback);
      equal = value == term.value;
    }
    if (equal == term.negate) return false;
  }
  return true;
}

}  // namespace eventbuffer::controller
