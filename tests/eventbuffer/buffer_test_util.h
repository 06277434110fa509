// Helpers for the EventBuffer tests: building occurrences and a recording observer.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "eventbuffer/buffer_observer.h"
#include "eventbuffer/event_record.h"

namespace eventbuffer::testing {

// One occurrence of an event about ns/kind/name with identity (uid, rv) that last happened
// at time_ms (ms since the epoch).
inline EventRef MakeEvent(const std::string& ns, const std::string& kind, const std::string& name,
                          const std::string& uid, const std::string& rv, std::int64_t time_ms,
                          const std::string& message = "Back-off restarting failed container") {
  EventRecord::Builder b;  // holds views: every value must outlive Build()
  using F = EventRecord::Field;
  const std::string event_name = name + ".17a3f";
  b.Set(F::kUid, uid)
      .Set(F::kResourceVersion, rv)
      .Set(F::kNamespace, ns)
      .Set(F::kName, event_name)
      .Set(F::kInvolvedKind, kind)
      .Set(F::kInvolvedNamespace, ns)
      .Set(F::kInvolvedName, name)
      .Set(F::kReason, "BackOff")
      .Set(F::kMessage, message)
      .Set(F::kType, "Warning");
  b.numbers().count = 1;
  b.numbers().last_seen_unix_ms = time_ms;
  b.numbers().receive_unix_ns = time_ms * 1'000'000;
  return b.Build();
}

// Occurrence number i of object `name` in namespace "default", kind Pod: uid "uid-<name>",
// resourceVersion "<i>", time base + i.
inline EventRef PodEvent(const std::string& name, int i, std::int64_t base_ms = 1'700'000'000'000) {
  return MakeEvent("default", "Pod", name, "uid-" + name, std::to_string(i), base_ms + i);
}

// Counts every observer call; thread-safe.
class CountingObserver : public BufferObserver {
 public:
  void OnAppend(Backend b, std::int64_t duration_ns, std::int64_t) override {
    appends[static_cast<int>(b)].fetch_add(1);
    if (duration_ns < 0) negative_durations.fetch_add(1);
  }
  void OnStall(Backend b, std::int64_t) override { stalls[static_cast<int>(b)].fetch_add(1); }
  void OnVerification(VerifyResult r) override { verifications[static_cast<int>(r)].fetch_add(1); }
  void OnMismatch(MismatchKind k) override { mismatches[static_cast<int>(k)].fetch_add(1); }
  void OnEvictions(std::size_t n) override { evictions.fetch_add(n); }
  void OnDedupHit() override { dedup_hits.fetch_add(1); }
  void OnMessageTruncated() override { truncated.fetch_add(1); }
  void OnModeChange(GrayMode m, double p) override {
    mode_changes.fetch_add(1);
    last_mode.store(static_cast<int>(m));
    last_percent.store(p);
  }

  std::atomic<std::uint64_t> appends[kBackendCount] = {}, stalls[kBackendCount] = {};
  std::atomic<std::uint64_t> verifications[kVerifyResultCount] = {};
  std::atomic<std::uint64_t> mismatches[kMismatchKindCount] = {};
  std::atomic<std::uint64_t> evictions{0}, dedup_hits{0}, mode_changes{0}, negative_durations{0};
  std::atomic<std::uint64_t> truncated{0};
  std::atomic<int> last_mode{-1};
  std::atomic<double> last_percent{-1};
};

}  // namespace eventbuffer::testing
