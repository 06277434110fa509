// How events.eventbuffer.dev renders a held occurrence: as an Event object (the fields of
// core/v1 Event, with the API server's omitempty rules) and as a row of a meta.k8s.io Table
// (the columns of kubectl's event printer).
//
// An occurrence is one revision of an Event; its object name is "<Event name>.<rv>"
// (OccurrenceName), unique per occurrence. The rest of its metadata is the Event's own
// (namespace, uid, creationTimestamp) and the revision's resourceVersion.
//
// Field rules, as the API server serializes core/v1 Event: involvedObject and source are
// always present (their members only when not empty); firstTimestamp, lastTimestamp and
// eventTime are null when unset; reportingComponent and reportingInstance are always
// present, "" when unset; reason, message, type, action and count (when not 0) only when
// set; series when it has a count or a lastObservedTime (the latter null when unset);
// related when the record holds a JSON object for it; metadata.creationTimestamp is null
// when unset.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "eventbuffer/event_record.h"

namespace eventbuffer::controller {

inline constexpr std::string_view kApiGroup = "eventbuffer.dev";
inline constexpr std::string_view kApiVersion = "v1alpha1";
inline constexpr std::string_view kGroupVersion = "eventbuffer.dev/v1alpha1";

// "<Event name>.<resourceVersion>".
std::string OccurrenceName(const EventRecord& record);

// Appends the object's metadata as a JSON object ({"name":..,"namespace":..,...}).
void AppendEventMetadataJson(std::string* out, const EventRecord& record);

// Appends the occurrence as an Event object (kind Event, apiVersion eventbuffer.dev/v1alpha1).
void AppendEventJson(std::string* out, const EventRecord& record);

// What a Table row carries in "object" (the `includeObject` query parameter).
enum class IncludeObject { kNone, kMetadata, kObject };

// Appends the Table's "columnDefinitions" array (without the key): Last Seen, Type, Reason,
// Object, Message, and at priority 1 (kubectl -o wide) Subobject, Source, First Seen,
// Count, Name, in kubectl's order.
void AppendEventTableColumnsJson(std::string* out);

// Appends one Table row ({"cells":[..],"object":..}). Ages are relative to `now_unix_ms`.
// `table_group_version` ("meta.k8s.io/v1") is the apiVersion of a PartialObjectMetadata.
void AppendEventTableRowJson(std::string* out, const EventRecord& record, IncludeObject include,
                             std::int64_t now_unix_ms, std::string_view table_group_version);

// A duration as kubectl prints ages (k8s.io/apimachinery/pkg/util/duration.HumanDuration):
// "45s", "5m3s", "12m", "3h12m", "20h", "3d4h", "10d", "2y40d", "9y"; "0s" up to a second
// in the future, "<invalid>" beyond.
std::string HumanDuration(std::int64_t millis);

}  // namespace eventbuffer::controller
