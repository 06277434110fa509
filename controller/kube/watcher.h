// Watcher: the list/watch loop for core/v1 Events, with client-go reflector semantics.
//
//   list (paged, limit/continue; after an expired continue token, paged again from the
//         start; a page over the client's byte cap is asked again with half the limit, and
//         an item alone over the cap is skipped by its page's continue token)
//     -> watch from the list's resourceVersion (allowWatchBookmarks, random timeoutSeconds)
//     -> on a normal close watch again from the last resourceVersion seen
//     -> on 410 / ERROR Expired, or a stale watch (very short, no events), list again
//     -> on a line that does not decode rewatch from the last good resourceVersion; when
//        the same line fails again (same resourceVersion), relist
//     -> a list item that does not decode is skipped (logged and counted), not the page
//     -> a watch line over the client's line cap is skipped (logged, rate-limited, and
//        counted); the stream goes on with the next line
//     -> on errors back off exponentially with jitter (429 honours Retry-After)
//
// Every occurrence (a list item, or an ADDED/MODIFIED watch event) goes to the EventSink in
// the order it arrived. Relists replay occurrences the sink already has: the sink (the
// EventBuffer) de-duplicates by (uid, resourceVersion). DELETED watch events (the API
// server's TTL removing an Event) only advance the resourceVersion: the buffer keeps its
// history under its own retention. The Watcher knows nothing of HTTP (ListerWatcher) or of
// the buffer (EventSink), so its protocol is tested with fakes.
//
// Thread safety: Run() runs on one thread (the watch thread) and owns the loop; Stop(),
// GetStatus() and Healthy() may be called from any thread at any time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string>

#include "controller/kube/backoff.h"
#include "controller/kube/event_decoder.h"
#include "controller/kube/json_prefix.h"
#include "controller/kube/lister_watcher.h"
#include "controller/kube/watch_observer.h"
#include "controller/rate_limiter.h"
#include "eventbuffer/event_record.h"

namespace eventbuffer::controller {

// Where decoded occurrences go. Called on the watch thread only.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // One occurrence, in arrival order.
  virtual void Append(EventRef record) = 0;
  // Called once, after the first complete list has been appended (readiness).
  virtual void OnSynced() {}
};

enum class WatchState : int { kStarting, kListing, kWatching, kBackoff, kStopped };
std::string_view WatchStateName(WatchState state);

struct WatcherStatus {
  WatchState state = WatchState::kStarting;
  bool synced = false;               // the first list completed
  std::string resource_version;      // last resourceVersion seen (list, event or bookmark)
  std::uint64_t lists = 0;           // complete lists started (relists included)
  std::uint64_t list_requests = 0;   // list page requests
  std::uint64_t watch_requests = 0;  // watch requests
  std::uint64_t events = 0;          // occurrences handed to the sink (list + watch)
  std::uint64_t bookmarks = 0;
  std::uint64_t restarts = 0;               // watch streams that ended (any reason)
  std::uint64_t list_decode_failures = 0;   // list items that did not decode (skipped)
  std::uint64_t watch_decode_failures = 0;  // watch lines that did not decode
  std::uint64_t too_large_skipped = 0;      // Events over a size cap (list or watch), skipped
  std::int64_t last_progress_unix_ms = 0;   // last event, bookmark or completed list
};

class Watcher {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    int list_limit = 500;
    int min_watch_timeout_seconds = 300;  // timeoutSeconds is drawn from [min, max]
    int max_watch_timeout_seconds = 600;
    // How long after timeoutSeconds the API client gives up a silent watch
    // (ApiClient::Options::watch_timeout_margin_seconds); Healthy() counts on it.
    int watch_timeout_margin_seconds = kDefaultWatchTimeoutMarginSeconds;
    // A watch that ends sooner than this after it was opened, with no event (bookmarks do
    // not count), is a stale watch: relist (with backoff).
    double stale_watch_seconds = 1.0;
    Backoff::Options backoff;
    // The decoder's RevisionCache (RevisionCache::SizeFor the buffer's retention).
    RevisionCache::Size revision_cache;
    std::uint64_t seed = std::random_device{}();
    // Steady clock and sleep, replaceable in tests. sleep returns false when the wait was
    // interrupted by Stop(). Defaults: Clock::now and an interruptible wait.
    std::function<Clock::time_point()> now;
    std::function<bool(std::chrono::nanoseconds)> sleep;
  };

  // All pointers must outlive the Watcher. REQUIRES: lw, sink non-null; observer may be null.
  Watcher(ListerWatcher* lw, EventSink* sink, WatchObserver* observer, Options options);
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Runs the loop until Stop(). Call once, on the watch thread.
  void Run();
  // Makes Run() return soon: interrupts a backoff sleep and cancels the request in flight.
  void Stop();
  bool stopping() const { return stop_.load(std::memory_order_acquire); }

  WatcherStatus GetStatus() const;
  // Liveness: true while progress (event, bookmark, list; or the start of Run) happened
  // within `max_no_progress`, or a watch stream is open and within its timeout (an idle
  // but healthy watch). False once stopped.
  bool Healthy(std::chrono::seconds max_no_progress) const;

 private:
  enum class Next { kWatch, kRelist, kStop };
  bool ListAll();  // true when a full list completed
  Next WatchOnce();
  Next Failure(RestartReason reason, const ApiResponse& response, bool relist);
  bool SleepFor(std::chrono::nanoseconds delay);
  void SetState(WatchState s) { state_.store(static_cast<int>(s), std::memory_order_release); }
  void SetResourceVersion(std::string_view rv);
  // Records progress (event, bookmark, list). now_unix_ns: the caller's clock reading, or 0.
  void MarkProgress(std::int64_t now_unix_ns = 0);
  void Restart(RestartReason reason);
  // Records a completed list at `resource_version` (progress, logs).
  void FinishList(const std::string& resource_version, std::size_t items, std::size_t skipped);
  // Counts and logs (rate-limited) an Event skipped for its size. source: "list", "watch".
  void SkippedTooLarge(std::string_view source, const OversizedEventIdentity& id,
                       std::uint64_t bytes);

  ListerWatcher* lw_;
  EventSink* sink_;
  WatchObserver* observer_;
  NullWatchObserver null_observer_;
  Options options_;
  Backoff backoff_;
  std::mt19937_64 rng_;
  EventDecoder decoder_;

  std::atomic<bool> stop_{false};
  std::mutex sleep_mu_;
  std::condition_variable sleep_cv_;

  // Status, written by the watch thread, read by anyone.
  std::atomic<int> state_{static_cast<int>(WatchState::kStarting)};
  std::atomic<bool> synced_{false};
  std::atomic<std::uint64_t> lists_{0}, list_requests_{0}, watch_requests_{0}, events_{0},
      bookmarks_{0}, restarts_{0}, list_decode_failures_{0}, watch_decode_failures_{0},
      too_large_skipped_{0};
  std::atomic<std::int64_t> last_progress_unix_ms_{0};
  std::atomic<std::int64_t> last_progress_steady_ns_{0};
  std::atomic<std::int64_t> watch_deadline_steady_ns_{0};
  mutable std::mutex rv_mu_;
  std::string resource_version_;  // guarded by rv_mu_ (written by the watch thread only)
  std::string rv_scratch_;        // watch thread only: the current rv without the lock
  Clock::time_point last_list_end_{};
  // Watch thread only: the resourceVersion the last decode failure rewatched from ("" before
  // the first, and after a relist for a poison line). A second failure from the same one is
  // a poison line. A stale value never matches: resourceVersions only grow.
  std::string last_decode_failure_rv_;
  std::int64_t last_mark_unix_ns_ = 0;                     // watch thread only
  WindowRateLimiter skip_log_limiter_{5, 10'000'000'000};  // watch thread only
};

}  // namespace eventbuffer::controller
