// EventFieldSelector: the `fieldSelector` of a list of events.eventbuffer.dev, parsed with
// the Kubernetes field selector rules and matched against held occurrences.
//
// Syntax (k8s.io/apimachinery/pkg/fields): terms separated by ',' (a "\," is data, not a
// separator), all of which must hold (AND); empty terms are skipped. A term is
// FIELD=VALUE, FIELD==VALUE or FIELD!=VALUE, split at the first operator found (the field
// has no escapes). In VALUE, "\\", "\," and "\=" stand for '\', ',' and '='; any other
// escape, a trailing '\', or an unescaped ',' or '=' is an error. ('!' needs no escape: "a!b"
// is a plain value; Kubernetes defines no "\!" escape, so it is an error here too.)
//
// Fields, as the API server offers them for core/v1 Events: involvedObject.kind,
// involvedObject.namespace, involvedObject.name, involvedObject.uid,
// involvedObject.apiVersion, involvedObject.fieldPath, reason, reportingComponent, source
// (source.component, or reportingComponent when source.component is empty), type, metadata.name (the occurrence name, "<Event name>.<rv>") and
// metadata.namespace. (involvedObject.resourceVersion is not held, so it is not offered.)
// A missing field compares as "".
//
// Thread safety: immutable after Parse; Matches may run on any number of threads.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "eventbuffer/event_record.h"

namespace eventbuffer::controller {

class EventFieldSelector {
 public:
  // Parses `text` (already percent-decoded). On a syntax error or an unknown field returns
  // nullopt and sets *error to a message in the API server's words.
  static std::optional<EventFieldSelector> Parse(std::string_view text, std::string* error);

  // Whether `record` satisfies every term (true for an empty selector).
  bool Matches(const EventRecord& record) const;

  bool empty() const { return terms_.empty(); }

  // The selectable field names, in the order error messages list them.
  static const std::vector<std::string_view>& KnownFields();

  // Implementation details follow.
 private:
  struct Term {
    // The record field compared; unset for metadata.name (the occurrence name).
    std::optional<EventRecord::Field> field;
    // Compared instead of `field` when the record's `field` is empty.
    std::optional<EventRecord::Field> fallback;
    std::string value;
    bool negate = false;
  };
  std::vector<Term> terms_;
};

}  // namespace eventbuffer::controller
