// Test helpers for the eventbuffer.dev API: an EventSpec that builds records, a
// FakeEventStore that implements the EventQuery contract (eventbuffer/event_query.h) over a
// sorted vector, and a ResponseWriter that records what a handler wrote.
#pragma once

#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <ctime>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "controller/serving/api/events_api.h"
#include "controller/serving/http_exchange.h"
#include "eventbuffer/event_query.h"
#include "eventbuffer/event_record.h"

namespace eventbuffer::controller::testing {

// RFC 3339 (UTC, seconds) of a time in ms since the epoch.
inline std::string Rfc3339(std::int64_t unix_ms) {
  const std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Every field of an EventRecord, with plausible defaults.
struct EventSpec {
  std::string ns = "default";
  std::string name = "web-1.17a8b9c0d1e2f3a4";
  std::string uid = "6f1c5b0e-0000-4000-8000-000000000001";
  std::string rv = "1001";
  std::string involved_kind = "Pod";
  std::string involved_namespace = "default";
  std::string involved_name = "web-1";
  std::string involved_uid = "a1b2c3d4-0000-4000-8000-00000000000a";
  std::string involved_api_version = "v1";
  std::string involved_field_path = "spec.containers{web}";
  std::string reason = "BackOff";
  std::string message = "Back-off restarting failed container";
  std::string type = "Warning";
  std::string first_timestamp = "2024-05-01T10:00:00Z";
  std::string last_timestamp = "2024-05-01T10:05:00Z";
  std::string event_time;
  std::string source_component = "kubelet";
  std::string source_host = "worker-1";
  std::string reporting_component;
  std::string reporting_instance;
  std::string action;
  std::string creation_timestamp = "2024-05-01T10:00:00Z";
  std::string series_last_observed;
  std::string related;
  std::int32_t count = 3;
  std::int32_t series_count = 0;
  std::int64_t receive_unix_ns = 0;

  EventRef Build() const {
    using F = EventRecord::Field;
    EventRecord::Builder b;
    b.Set(F::kUid, uid)
        .Set(F::kResourceVersion, rv)
        .Set(F::kNamespace, ns)
        .Set(F::kName, name)
        .Set(F::kInvolvedKind, involved_kind)
        .Set(F::kInvolvedNamespace, involved_namespace)
        .Set(F::kInvolvedName, involved_name)
        .Set(F::kInvolvedUid, involved_uid)
        .Set(F::kInvolvedApiVersion, involved_api_version)
        .Set(F::kInvolvedFieldPath, involved_field_path)
        .Set(F::kReason, reason)
        .Set(F::kMessage, message)
        .Set(F::kType, type)
        .Set(F::kFirstTimestamp, first_timestamp)
        .Set(F::kLastTimestamp, last_timestamp)
        .Set(F::kEventTime, event_time)
        .Set(F::kSourceComponent, source_component)
        .Set(F::kSourceHost, source_host)
        .Set(F::kReportingComponent, reporting_component)
        .Set(F::kReportingInstance, reporting_instance)
        .Set(F::kAction, action)
        .Set(F::kCreationTimestamp, creation_timestamp)
        .Set(F::kSeriesLastObservedTime, series_last_observed)
        .Set(F::kRelated, related);
    b.numbers().count = count;
    b.numbers().series_count = series_count;
    b.numbers().receive_unix_ns = receive_unix_ns;
    return b.Build();
  }
};

// Holds records in list order and answers List/Find as EventBuffer must: ordered by
// PositionLess, `after` exclusive, ns and match filters, limit with `more`.
class FakeEventStore {
 public:
  void Add(const EventRef& record) {
    std::lock_guard<std::mutex> lock(mu_);
    Entry entry{PositionOf(*record), record};
    const auto at = std::upper_bound(
        items_.begin(), items_.end(), entry.pos,
        [](const OccurrencePosition& p, const Entry& e) { return PositionLess(p, e.pos); });
    items_.insert(at, std::move(entry));
  }

  // Removes the records `drop` returns true for (eviction).
  void RemoveIf(const std::function<bool(const EventRecord&)>& drop) {
    std::lock_guard<std::mutex> lock(mu_);
    items_.erase(std::remove_if(items_.begin(), items_.end(),
                                [&](const Entry& e) { return drop(*e.record); }),
                 items_.end());
  }

  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return items_.size();
  }

  EventPage List(const EventQuery& query) const {
    list_calls_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = items_.begin();
    if (query.after) {
      it = std::upper_bound(
          items_.begin(), items_.end(), *query.after,
          [](const OccurrencePosition& p, const Entry& e) { return PositionLess(p, e.pos); });
    }
    EventPage page;
    for (; it != items_.end(); ++it) {
      const EventRecord& r = *it->record;
      if (query.ns && r.Get(EventRecord::Field::kNamespace) != *query.ns) continue;
      if (query.match && !query.match(r)) continue;
      if (query.limit != 0 && page.items.size() == query.limit) {
        page.more = true;
        break;
      }
      page.items.push_back(it->record);
    }
    return page;
  }

  EventRef Find(std::string_view ns, std::string_view name, std::string_view rv) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Entry& e : items_) {
      const EventRecord& r = *e.record;
      if (r.Get(EventRecord::Field::kNamespace) == ns && r.Get(EventRecord::Field::kName) == name &&
          r.resource_version() == rv) {
        return e.record;
      }
    }
    return nullptr;
  }

  // Hooks of an EventsApi over this store, with a fixed clock.
  EventsApi::Hooks Hooks(std::int64_t now_unix_ms) const {
    EventsApi::Hooks hooks;
    hooks.list = [this](const EventQuery& q) { return List(q); };
    hooks.find = [this](std::string_view ns, std::string_view name, std::string_view rv) {
      return Find(ns, name, rv);
    };
    hooks.now_unix_ms = [now_unix_ms] { return now_unix_ms; };
    return hooks;
  }

  std::size_t list_calls() const { return list_calls_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    OccurrencePosition pos;
    EventRef record;
  };
  mutable std::mutex mu_;
  std::vector<Entry> items_;
  mutable std::atomic<std::size_t> list_calls_{0};
};

// Records a handler's answer. Write() fails (returns false, keeps nothing) from call number
// `fail_at_write` on (1-based; 0 never).
class RecordingWriter : public ResponseWriter {
 public:
  void Send(int status, std::string_view content_type, std::string body,
            const HeaderFields& headers) override {
    ++sends;
    this->status = status;
    this->content_type = std::string(content_type);
    this->body = std::move(body);
    this->headers = headers;
  }
  bool Begin(int status, std::string_view content_type, const HeaderFields& headers) override {
    ++begins;
    this->status = status;
    this->content_type = std::string(content_type);
    this->headers = headers;
    return true;
  }
  bool Write(std::string_view data) override {
    ++writes;
    if (fail_at_write != 0 && writes >= fail_at_write) {
      ++writes_after_failure;
      return false;
    }
    body.append(data);
    return true;
  }

  int status = 0;
  std::string content_type;
  std::string body;
  HeaderFields headers;
  int sends = 0;
  int begins = 0;
  std::size_t writes = 0;
  std::size_t fail_at_write = 0;
  std::size_t writes_after_failure = 0;
};

}  // namespace eventbuffer::controller::testing
