#include "controller/kube/watcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace eventbuffer::controller {

namespace {

std::int64_t UnixNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t SteadyNanos(Watcher::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

double Seconds(Watcher::Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// A status body's message for a log line, cut to a sane length.
std::string Excerpt(std::string_view text, std::size_t max = 200) {
  if (text.size() <= max) return std::string(text);
  return std::string(text.substr(0, max)) + "...";
}

// An identity field of a skipped list item for a log line: "?" when it could not be read.
std::string_view OrUnknown(std::string_view field) { return field.empty() ? "?" : field; }

// An HTTP status of a list or watch response; 0 means no response arrived.
RestartReason ReasonForStatus(int http_status) {
  if (http_status == 0) return RestartReason::kNetwork;
  if (http_status == 410) return RestartReason::kExpired;
  if (http_status == 429) return RestartReason::kHttp429;
  if (http_status == 401 || http_status == 403) return RestartReason::kUnauthorized;
  if (http_status >= 500) return RestartReason::kHttp5xx;
  return RestartReason::kError;
}

// The Status of an ERROR watch event. Its code is optional: a Status without one (0) still
// came from the server over a working stream, so it is an error, not a network failure.
RestartReason ReasonForErrorEvent(const ApiStatus& status) {
  if (status.code == 0) return RestartReason::kError;
  return ReasonForStatus(status.code);
}

}  // namespace

std::string_view WatchStateName(WatchState state) {
  switch (state) {
    case WatchState::kStarting:
      return "starting";
    case WatchState::kListing:
      return "listing";
    case WatchState::kWatching:
      return "watching";
    case WatchState::kBackoff:
      return "backoff";
    case WatchState::kStopped:
      return "stopped";
  }
  return "unknown";
}

Watcher::Watcher(ListerWatcher* lw, EventSink* sink, WatchObserver* observer, Options options)
    : lw_(lw),
      sink_(sink),
      observer_(observer != nullptr ? observer : &null_observer_),
      options_(std::move(options)),
      backoff_(options_.backoff, options_.seed),
      rng_(options_.seed ^ 0x9e3779b97f4a7c15ULL),
      decoder_(options_.revision_cache) {
  if (!options_.now) options_.now = [] { return Clock::now(); };
  options_.min_watch_timeout_seconds = std::max(1, options_.min_watch_timeout_seconds);
  options_.max_watch_timeout_seconds =
      std::max(options_.min_watch_timeout_seconds, options_.max_watch_timeout_seconds);
}

Watcher::~Watcher() = default;

void Watcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(sleep_mu_);
    stop_.store(true, std::memory_order_release);
  }
  sleep_cv_.notify_all();
  lw_->Cancel();
}

bool Watcher::SleepFor(std::chrono::nanoseconds delay) {
  if (stopping()) return false;
  SetState(WatchState::kBackoff);
  if (options_.sleep) return options_.sleep(delay) && !stopping();
  std::unique_lock<std::mutex> lock(sleep_mu_);
  return !sleep_cv_.wait_for(lock, delay, [this] { return stopping(); });
}

void Watcher::SetResourceVersion(std::string_view rv) {
  if (rv.empty() || rv == rv_scratch_) return;
  rv_scratch_.assign(rv);
  std::lock_guard<std::mutex> lock(rv_mu_);
  resource_version_.assign(rv);
}

void Watcher::MarkProgress(std::int64_t now_unix_ns) {
  // At full rate (hundreds of thousands of events a second) marking every event would cost
  // two clock reads and an observer call each; progress is only ever read with a
  // resolution of seconds, so mark at most every 50 ms.
  if (now_unix_ns != 0 && now_unix_ns - last_mark_unix_ns_ < 50'000'000 &&
      now_unix_ns >= last_mark_unix_ns_) {
    return;
  }
  if (now_unix_ns == 0) now_unix_ns = UnixNanos();
  last_mark_unix_ns_ = now_unix_ns;
  last_progress_steady_ns_.store(SteadyNanos(options_.now()), std::memory_order_relaxed);
  last_progress_unix_ms_.store(now_unix_ns / 1000000, std::memory_order_relaxed);
  observer_->OnProgress();
}

void Watcher::Restart(RestartReason reason) {
  restarts_.fetch_add(1, std::memory_order_relaxed);
  observer_->OnWatchRestart(reason);
}

WatcherStatus Watcher::GetStatus() const {
  WatcherStatus s;
  s.state = static_cast<WatchState>(state_.load(std::memory_order_acquire));
  s.synced = synced_.load(std::memory_order_acquire);
  {
    std::lock_guard<std::mutex> lock(rv_mu_);
    s.resource_version = resource_version_;
  }
  s.lists = lists_.load(std::memory_order_relaxed);
  s.list_requests = list_requests_.load(std::memory_order_relaxed);
  s.watch_requests = watch_requests_.load(std::memory_order_relaxed);
  s.events = events_.load(std::memory_order_relaxed);
  s.bookmarks = bookmarks_.load(std::memory_order_relaxed);
  s.restarts = restarts_.load(std::memory_order_relaxed);
  s.list_decode_failures = list_decode_failures_.load(std::memory_order_relaxed);
  s.watch_decode_failures = watch_decode_failures_.load(std::memory_order_relaxed);
  s.too_large_skipped = too_large_skipped_.load(std::memory_order_relaxed);
  s.last_progress_unix_ms = last_progress_unix_ms_.load(std::memory_order_relaxed);
  return s;
}

bool Watcher::Healthy(std::chrono::seconds max_no_progress) const {
  const auto state = static_cast<WatchState>(state_.load(std::memory_order_acquire));
  if (state == WatchState::kStopped) return false;
  const std::int64_t now = SteadyNanos(options_.now());
  const std::int64_t last = last_progress_steady_ns_.load(std::memory_order_relaxed);
  if (last == 0) return true;  // Run() has not started yet
  if (now - last <= std::chrono::nanoseconds(max_no_progress).count()) return true;
  // An idle cluster: an open watch that has not reached its timeout is healthy waiting.
  if (state == WatchState::kWatching) {
    return now <= watch_deadline_steady_ns_.load(std::memory_order_relaxed);
  }
  return false;
}

void Watcher::Run() {
  // Liveness counts from the start: a first list that keeps failing (RBAC, network) for
  // longer than the allowed silence makes the process unhealthy too.
  last_progress_steady_ns_.store(SteadyNanos(options_.now()), std::memory_order_relaxed);
  bool need_list = true;
  while (!stopping()) {
    if (need_list) {
      if (!ListAll()) continue;  // ListAll slept its backoff already
      need_list = false;
      if (!synced_.exchange(true, std::memory_order_acq_rel)) sink_->OnSynced();
    }
    const Next next = WatchOnce();
    if (next == Next::kStop) break;
    need_list = next == Next::kRelist;
  }
  SetState(WatchState::kStopped);
}

bool Watcher::ListAll() {
  SetState(WatchState::kListing);
  lists_.fetch_add(1, std::memory_order_relaxed);
  observer_->OnRelist();
  ListRequest request;
  request.limit = options_.list_limit;
  std::size_t items = 0;
  std::size_t skipped = 0;      // items that did not decode
  bool expired_before = false;  // a continue token expired during this list
  while (!stopping()) {
    const auto start = options_.now();
    list_requests_.fetch_add(1, std::memory_order_relaxed);
    const ApiResponse response = lw_->List(request);
    observer_->OnApiRequest("list", response.http_status, Seconds(options_.now() - start));
    if (response.cancelled || stopping()) return false;

    if (response.http_status == 200 && response.body_too_large) {
      // The page is over the client's byte cap (huge messages, or a hostile server); the
      // client read only its first cap bytes. Ask for the same page again with half the
      // limit, down to one item; the smaller limit holds for the rest of this list.
      if (request.limit != 1) {
        const int from = request.limit > 0 ? request.limit : 500;  // 0: an unpaged list
        const int halved = std::max(1, from / 2);
        spdlog::warn(
            "list page over the byte cap ({} bytes read) at limit {}: asking again with "
            "limit {}",
            response.body.size(), request.limit, halved);
        request.limit = halved;
        continue;
      }
      // One item alone is over the cap. The API server writes the list's metadata (with
      // resourceVersion and continue) before its items, so the kept prefix tells where the
      // next page starts: skip this item, count it, and go on from there.
      const ListPagePrefix prefix = ListPageFromPrefix(response.body);
      if (!prefix.metadata_complete ||
          (prefix.continue_token.empty() && prefix.resource_version.empty())) {
        spdlog::error(
            "list page of one item is over the byte cap ({} bytes read) and its list metadata "
            "(continue token, resourceVersion) could not be read: the list fails and is retried",
            response.body.size());
        SleepFor(backoff_.Next(options_.now()));
        return false;
      }
      if (prefix.first_item_complete) {
        // The first item ended within the cap, yet the page did not: the server sent more
        // than the one item asked for. Skipping would drop items unseen; fail instead.
        spdlog::error(
            "list page at limit 1 is over the byte cap ({} bytes read) although its first item "
            "is not: the API server ignores limit; the list fails and is retried",
            response.body.size());
        SleepFor(backoff_.Next(options_.now()));
        return false;
      }
      SkippedTooLarge("list", prefix.first_item, response.body.size());
      request.limit = options_.list_limit;  // the item that needed the small limit is past
      if (prefix.continue_token.empty()) {
        // It was the last item: the list is complete at the page's resourceVersion.
        FinishList(prefix.resource_version, items, skipped);
        return true;
      }
      request.continue_token = prefix.continue_token;
      continue;
    }

    if (response.http_status == 200) {
      auto page = decoder_.DecodeList(response.body, UnixNanos());
      if (!page.ok()) {
        spdlog::warn("list page did not decode: {}", page.error.ToString());
        SleepFor(backoff_.Next(options_.now()));
        return false;
      }
      // An item that does not decode (e.g. a revision stored with "count":"3") is left out
      // and the rest of the page is used: failing the list for it would keep the loop from
      // ever listing, and so from becoming ready, for as long as that revision is the
      // Event's latest. Only that occurrence is lost.
      for (const SkippedListItem& item : page.value.skipped) {
        spdlog::warn(
            "list item did not decode, skipped: {} (uid {}, name {}, resourceVersion {}; list "
            "resourceVersion {})",
            item.error.ToString(), OrUnknown(item.uid), OrUnknown(item.name),
            OrUnknown(item.resource_version), page.value.resource_version);
        observer_->OnDecodeFailure("list");
      }
      list_decode_failures_.fetch_add(page.value.skipped.size(), std::memory_order_relaxed);
      skipped += page.value.skipped.size();
      for (auto& record : page.value.items) {
        sink_->Append(std::move(record));
        ++items;
      }
      events_.fetch_add(page.value.items.size(), std::memory_order_relaxed);
      if (page.value.continue_token.empty()) {
        FinishList(page.value.resource_version, items, skipped);
        return true;
      }
      request.continue_token = std::move(page.value.continue_token);
      continue;
    }

    if (response.http_status == 410 && !request.continue_token.empty()) {
      // The continue token expired: the snapshot the pages are cut from was compacted
      // away, or the server keeps its snapshots only briefly. client-go's pager answers
      // with one unpaged list; that response has no bound (every Event of the cluster, each
      // up to the object size limit), so list again from the first page with the same
      // limit. Items already appended are de-duplicated by the sink. Once it expired again
      // during this list, back off first: a server that keeps its snapshots only briefly
      // gets a slower list, not a storm.
      spdlog::info("list continue token expired; listing again from the first page (limit {})",
                   request.limit);
      request.continue_token.clear();
      items = 0;
      skipped = 0;
      if (expired_before && !SleepFor(backoff_.Next(options_.now()))) return false;
      expired_before = true;
      continue;
    }

    const RestartReason reason = ReasonForStatus(response.http_status);
    spdlog::warn("list failed: status {} ({}) {}{}", response.http_status,
                 RestartReasonName(reason), response.transport_error, Excerpt(response.body));
    std::chrono::nanoseconds delay = backoff_.Next(options_.now());
    if (reason == RestartReason::kHttp429 && response.retry_after_seconds >= 0) {
      delay = std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::duration<double>(std::min(response.retry_after_seconds, 300.0)));
    }
    SleepFor(delay);
    return false;
  }
  return false;
}

void Watcher::FinishList(const std::string& resource_version, std::size_t items,
                         std::size_t skipped) {
  SetResourceVersion(resource_version);
  last_list_end_ = options_.now();
  last_mark_unix_ns_ = 0;  // a completed list is always marked
  MarkProgress();
  spdlog::info("list complete: {} events ({} skipped), resourceVersion {}", items, skipped,
               resource_version);
}

void Watcher::SkippedTooLarge(std::string_view source, const OversizedEventIdentity& id,
                              std::uint64_t bytes) {
  too_large_skipped_.fetch_add(1, std::memory_order_relaxed);
  observer_->OnEventSkipped(source, "too_large");
  // A hostile server could send these by the thousand: a few log lines per window, and
  // how many were left out.
  const auto decision = skip_log_limiter_.Admit(SteadyNanos(options_.now()));
  if (decision.suppressed_before > 0) {
    spdlog::warn("{} more Events over the size cap were skipped (not logged)",
                 decision.suppressed_before);
  }
  if (!decision.admitted) return;
  if (source == "watch") {
    spdlog::warn("watch event skipped: {} bytes, over the cap of --max-watch-event-bytes ({})",
                 bytes, id.ToString());
  } else {
    spdlog::warn(
        "list item skipped: alone over the cap of --max-list-page-bytes ({} bytes read) ({})",
        bytes, id.ToString());
  }
}

Watcher::Next Watcher::WatchOnce() {
  SetState(WatchState::kWatching);
  WatchRequest request;
  {
    std::lock_guard<std::mutex> lock(rv_mu_);
    request.resource_version = resource_version_;
  }
  std::uniform_int_distribution<int> timeout(options_.min_watch_timeout_seconds,
                                             options_.max_watch_timeout_seconds);
  request.timeout_seconds = timeout(rng_);
  request.allow_bookmarks = true;

  std::uint64_t stream_events = 0;
  // A line over the client's cap: skipped, and the stream goes on. Its resourceVersion,
  // when the kept prefix shows it, is where a rewatch resumes: the server would only send
  // the same line again.
  request.on_oversized_line = [&](std::string_view prefix, std::uint64_t bytes) {
    const OversizedEventIdentity id = IdentityFromWatchLinePrefix(prefix);
    SkippedTooLarge("watch", id, bytes);
    if (id.type != "ERROR" && id.type != "BOOKMARK" && !id.resource_version.empty()) {
      ++stream_events;
      SetResourceVersion(id.resource_version);
      MarkProgress();
    }
    return !stopping();
  };
  bool decode_failed = false;
  bool got_error = false;
  ApiStatus error_status;

  const LineHandler on_line = [&](std::string_view line) {
    if (line.empty() || line == "\r") return !stopping();  // keep-alive blank line
    const std::int64_t now_ns = UnixNanos();
    auto decoded = decoder_.DecodeWatchLine(line, now_ns);
    if (!decoded.ok()) {
      spdlog::warn("watch line did not decode: {}", decoded.error.ToString());
      observer_->OnDecodeFailure("watch");
      watch_decode_failures_.fetch_add(1, std::memory_order_relaxed);
      decode_failed = true;
      return false;
    }
    WatchEvent& event = decoded.value;
    observer_->OnWatchEvent(WatchEventTypeName(event.type));
    switch (event.type) {
      case WatchEventType::kAdded:
      case WatchEventType::kModified: {
        const std::int64_t seen_ms = event.last_seen_unix_ms;
        if (seen_ms > 0) {
          observer_->OnEventLag(std::max(0.0, (now_ns / 1e6 - seen_ms) / 1000.0));
        }
        sink_->Append(std::move(event.record));
        events_.fetch_add(1, std::memory_order_relaxed);
        ++stream_events;
        SetResourceVersion(event.resource_version);
        MarkProgress(now_ns);
        break;
      }
      case WatchEventType::kDeleted:
        ++stream_events;
        SetResourceVersion(event.resource_version);
        MarkProgress(now_ns);
        break;
      case WatchEventType::kBookmark:
        // A bookmark only moves the resourceVersion forward: nothing changed for us.
        bookmarks_.fetch_add(1, std::memory_order_relaxed);
        SetResourceVersion(event.resource_version);
        observer_->OnBookmark();
        MarkProgress(now_ns);
        break;
      case WatchEventType::kError:
        got_error = true;
        error_status = event.status;
        return false;
    }
    return !stopping();
  };

  const auto start = options_.now();
  // Healthy while the watch may still be open: the server ends it at timeoutSeconds, and
  // the API client gives a silent one up timeout_margin_seconds later. Health holds 30 s
  // past that, so that a hung watch is restarted by the client before liveness restarts
  // the process (and drops everything the buffer holds).
  watch_deadline_steady_ns_.store(
      SteadyNanos(start + std::chrono::seconds(request.timeout_seconds +
                                               options_.watch_timeout_margin_seconds + 30)),
      std::memory_order_relaxed);
  watch_requests_.fetch_add(1, std::memory_order_relaxed);
  const ApiResponse response = lw_->Watch(request, on_line);
  const double seconds = Seconds(options_.now() - start);
  observer_->OnApiRequest("watch", response.http_status, seconds);
  if (response.cancelled || stopping()) return Next::kStop;

  if (response.http_status == 200) {
    if (got_error) {
      if (error_status.code == 410 || error_status.reason == "Expired" ||
          error_status.reason == "Gone") {
        // The resourceVersion we watch from is older than what the server keeps (compacted
        // or, for Events, gone from etcd's window): only a new list can give a consistent
        // starting point. Relist at once, unless the last list was only moments ago —
        // then a server that keeps answering Expired would get a relist storm.
        Restart(RestartReason::kExpired);
        spdlog::info("watch expired ({}): relisting", Excerpt(error_status.message));
        if (options_.now() - last_list_end_ < std::chrono::seconds(10) && stream_events == 0) {
          if (!SleepFor(backoff_.Next(options_.now()))) return Next::kStop;
        }
        return Next::kRelist;
      }
      // Any other ERROR event: client-go gives up the watch and relists after backoff.
      spdlog::warn("watch ERROR event: code {} reason {} {}", error_status.code,
                   error_status.reason, Excerpt(error_status.message));
      Restart(ReasonForErrorEvent(error_status));
      if (!SleepFor(backoff_.Next(options_.now()))) return Next::kStop;
      return Next::kRelist;
    }
    if (decode_failed) {
      // A line that does not decode was either damaged on its way (a rewatch from the last
      // good resourceVersion gets a sound copy and loses nothing) or is a revision the
      // server keeps in a form we cannot read: then every watch from before it replays it,
      // and rewatching would stall ingestion forever. So rewatch first; when the rewatch
      // would resume from the same resourceVersion as the previous decode failure, the
      // same line failed again: relist, and watch from the list's resourceVersion, past
      // that line. The list brings the Event's current revision; the undecodable one is
      // lost either way. While it is still the Event's latest revision the list carries it
      // too: ListAll skips that item, so the list completes and the watch moves past it.
      Restart(RestartReason::kDecode);
      const bool same_line_again =
          !last_decode_failure_rv_.empty() && rv_scratch_ == last_decode_failure_rv_;
      last_decode_failure_rv_ = rv_scratch_;
      if (!SleepFor(backoff_.Next(options_.now()))) return Next::kStop;
      if (same_line_again) {
        spdlog::warn("the same watch line failed to decode again (after {}): relisting",
                     rv_scratch_);
        last_decode_failure_rv_.clear();
        return Next::kRelist;
      }
      spdlog::info("rewatching from {} after a line that did not decode", rv_scratch_);
      return Next::kWatch;
    }
    if (response.stream_cut) {
      // The connection dropped mid-stream; the cut line was discarded by the client.
      // Watch again from the last complete event: nothing is lost.
      Restart(RestartReason::kNetwork);
      spdlog::info("watch stream cut after {:.3f}s ({}); rewatching from {}", seconds,
                   response.transport_error, rv_scratch_);
      if (!SleepFor(backoff_.Next(options_.now()))) return Next::kStop;
      return Next::kWatch;
    }
    if (stream_events == 0 && seconds < options_.stale_watch_seconds) {
      // Events bypass the API server's watch cache: a watch from a resourceVersion the
      // server cannot serve may be answered with 200 and an immediate close. Watching
      // again would loop forever without progress: relist, and back off in case the
      // server keeps doing it. A bookmark alone does not make such a watch healthy.
      Restart(RestartReason::kStale);
      spdlog::info("watch closed after {:.3f}s without events: relisting", seconds);
      if (!SleepFor(backoff_.Next(options_.now()))) return Next::kStop;
      return Next::kRelist;
    }
    // The normal end of a watch: timeoutSeconds reached. Watch again at once.
    Restart(RestartReason::kTimeout);
    if (stream_events > 0 || seconds >= 10 * options_.stale_watch_seconds) backoff_.Reset();
    return Next::kWatch;
  }
  return Failure(ReasonForStatus(response.http_status), response, response.http_status == 410);
}

Watcher::Next Watcher::Failure(RestartReason reason, const ApiResponse& response, bool relist) {
  Restart(reason);
  spdlog::warn("watch failed: status {} ({}) {}{}", response.http_status, RestartReasonName(reason),
               response.transport_error, Excerpt(response.body));
  std::chrono::nanoseconds delay = backoff_.Next(options_.now());
  if (reason == RestartReason::kHttp429 && response.retry_after_seconds >= 0) {
    // The server told us when to come back: exactly that, not our own guess.
    delay = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(std::min(response.retry_after_seconds, 300.0)));
  }
  if (relist && options_.now() - last_list_end_ >= std::chrono::seconds(10)) {
    delay = std::chrono::nanoseconds(0);  // 410 on a long-running rv: relist at once
  }
  if (delay.count() > 0 && !SleepFor(delay)) return Next::kStop;
  return relist ? Next::kRelist : Next::kWatch;
}

}  // namespace eventbuffer::controller
