// The list/watch protocol of Watcher, against a scripted ListerWatcher (no HTTP).
#include "controller/kube/watcher.h"

#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <map>
#include <sstream>
#include <thread>

#include "controller/kube/line_splitter.h"

namespace eventbuffer::controller {
namespace {

using Clock = Watcher::Clock;

std::string EventJson(const std::string& uid, const std::string& rv, const std::string& pod,
                      int count = 1) {
  return R"({"kind":"Event","apiVersion":"v1","metadata":{"name":")" + pod + "." + uid +
         R"(","namespace":"ns","uid":")" + uid + R"(","resourceVersion":")" + rv +
         R"("},"involvedObject":{"kind":"Pod","namespace":"ns","name":")" + pod +
         R"("},"reason":"BackOff","message":"m","count":)" + std::to_string(count) +
         R"(,"type":"Warning","lastTimestamp":"2024-05-01T10:00:00Z"})";
}
std::string Line(const std::string& type, const std::string& object) {
  return R"({"type":")" + type + R"(","object":)" + object + "}";
}
std::string Bookmark(const std::string& rv) {
  return Line("BOOKMARK", R"({"kind":"Event","apiVersion":"v1","metadata":{"resourceVersion":")" +
                              rv + R"("}})");
}
std::string ErrorLine(int code, const std::string& reason) {
  return Line(
      "ERROR",
      R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old","reason":")" +
          reason + R"(","code":)" + std::to_string(code) + "}");
}
std::string ListBody(const std::vector<std::string>& items, const std::string& rv,
                     const std::string& cont = "") {
  std::string body =
      R"({"kind":"EventList","apiVersion":"v1","metadata":{"resourceVersion":")" + rv + R"(")";
  if (!cont.empty()) body += R"(,"continue":")" + cont + R"(")";
  body += R"(},"items":[)";
  for (std::size_t i = 0; i < items.size(); ++i) body += (i ? "," : "") + items[i];
  return body + "]}";
}

ApiResponse Ok(std::string body = "") {
  ApiResponse r;
  r.http_status = 200;
  r.body = std::move(body);
  return r;
}
ApiResponse Status(int code, double retry_after = -1) {
  ApiResponse r;
  r.http_status = code;
  r.retry_after_seconds = retry_after;
  r.body = R"({"kind":"Status","code":)" + std::to_string(code) + "}";
  return r;
}

struct WatchStep {
  std::vector<std::string> lines;
  ApiResponse response = Ok();
  double seconds = 400;  // how long the stream stays open (fake clock)
};

// A ListerWatcher that plays scripted responses and records the requests. When a script
// runs out it stops the watcher.
class FakeListerWatcher : public ListerWatcher {
 public:
  explicit FakeListerWatcher(Clock::time_point* now) : now_(now) {}
  ApiResponse List(const ListRequest& request) override {
    calls.push_back("list:" + request.continue_token);
    list_requests.push_back(request);
    if (lists.empty()) return Finish();
    ApiResponse r = lists.front();
    lists.pop_front();
    *now_ += std::chrono::milliseconds(5);
    return r;
  }
  ApiResponse Watch(const WatchRequest& request, const LineHandler& on_line) override {
    calls.push_back("watch:" + request.resource_version);
    watch_requests.push_back(request);
    if (watches.empty()) return Finish();
    if (during_watch) during_watch();
    WatchStep step = watches.front();
    watches.pop_front();
    for (const auto& line : step.lines) {
      if (!on_line(line)) break;
    }
    *now_ +=
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(step.seconds));
    return step.response;
  }
  void Cancel() override { cancelled = true; }
  ApiResponse Finish() {
    watcher->Stop();
    ApiResponse r;
    r.cancelled = true;
    return r;
  }

  Watcher* watcher = nullptr;
  // Runs while a scripted watch is open, before its lines (tests look at the watcher then).
  std::function<void()> during_watch;
  std::deque<ApiResponse> lists;
  std::deque<WatchStep> watches;
  std::vector<ListRequest> list_requests;
  std::vector<WatchRequest> watch_requests;
  std::vector<std::string> calls;
  bool cancelled = false;

 private:
  Clock::time_point* now_;
};

class RecordingSink : public EventSink {
 public:
  void Append(EventRef record) override {
    occurrences.push_back(std::string(record->uid()) + "@" +
                          std::string(record->resource_version()));
  }
  void OnSynced() override { ++synced; }
  std::vector<std::string> occurrences;
  int synced = 0;
};

class RecordingObserver : public WatchObserver {
 public:
  void OnWatchEvent(std::string_view type) override { ++events[std::string(type)]; }
  void OnWatchRestart(RestartReason reason) override {
    ++restarts[std::string(RestartReasonName(reason))];
  }
  void OnRelist() override { ++relists; }
  void OnApiRequest(std::string_view verb, int code, double) override {
    requests.push_back(std::string(verb) + ":" + std::to_string(code));
  }
  void OnProgress() override { ++progress; }
  void OnBookmark() override { ++bookmarks; }
  void OnEventLag(double seconds) override { lags.push_back(seconds); }
  void OnDecodeFailure(std::string_view source) override { ++decode_failures[std::string(source)]; }
  std::map<std::string, int> events, restarts, decode_failures;
  int relists = 0, progress = 0, bookmarks = 0;
  std::vector<std::string> requests;
  std::vector<double> lags;
};

// Captures what the default spdlog logger writes while it lives.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink->set_pattern("%l %v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::string text() const { return out_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

class WatcherTest : public ::testing::Test {
 protected:
  WatcherTest() : lw_(&now_) {}
  void Run() {
    Watcher::Options options;
    options.seed = 1234;
    options.now = [this] { return now_; };
    options.sleep = [this](std::chrono::nanoseconds d) {
      sleeps_.push_back(std::chrono::duration<double>(d).count());
      now_ += d;
      return true;
    };
    Watcher watcher(&lw_, &sink_, &observer_, options);
    lw_.watcher = &watcher;
    watcher.Run();
    status_ = watcher.GetStatus();
  }

  Clock::time_point now_ = Clock::time_point{} + std::chrono::hours(1);
  FakeListerWatcher lw_;
  RecordingSink sink_;
  RecordingObserver observer_;
  std::vector<double> sleeps_;
  WatcherStatus status_;
};

TEST_F(WatcherTest, ListsAllPagesThenWatchesFromTheListResourceVersion) {
  lw_.lists = {Ok(ListBody({EventJson("a", "10", "p1")}, "19", "tok1")),
               Ok(ListBody({EventJson("b", "11", "p2")}, "20"))};
  lw_.watches = {{{Line("ADDED", EventJson("c", "21", "p1")),
                   Line("MODIFIED", EventJson("a", "22", "p1", 2)), Bookmark("30")}}};
  Run();
  ASSERT_GE(lw_.list_requests.size(), 2u);
  EXPECT_EQ(lw_.list_requests[0].limit, 500);
  EXPECT_EQ(lw_.list_requests[0].continue_token, "");
  EXPECT_EQ(lw_.list_requests[1].continue_token, "tok1");
  ASSERT_EQ(lw_.watch_requests.size(), 2u);
  EXPECT_EQ(lw_.watch_requests[0].resource_version, "20");
  EXPECT_TRUE(lw_.watch_requests[0].allow_bookmarks);
  EXPECT_GE(lw_.watch_requests[0].timeout_seconds, 300);
  EXPECT_LE(lw_.watch_requests[0].timeout_seconds, 600);
  // After a normal close the watch resumes from the bookmark, without a relist.
  EXPECT_EQ(lw_.watch_requests[1].resource_version, "30");
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "list:tok1", "watch:20", "watch:30"}));
  EXPECT_EQ(sink_.occurrences, (std::vector<std::string>{"a@10", "b@11", "c@21", "a@22"}));
  EXPECT_EQ(sink_.synced, 1);
  EXPECT_TRUE(sleeps_.empty());
  EXPECT_EQ(observer_.restarts["timeout"], 1);
  EXPECT_EQ(observer_.relists, 1);
  EXPECT_EQ(observer_.bookmarks, 1);
  EXPECT_EQ(observer_.events["ADDED"], 1);
  EXPECT_EQ(observer_.events["MODIFIED"], 1);
  EXPECT_EQ(observer_.lags.size(), 2u);
  EXPECT_EQ(status_.resource_version, "30");
  EXPECT_EQ(status_.events, 4u);
  EXPECT_TRUE(status_.synced);
  EXPECT_EQ(status_.state, WatchState::kStopped);
}

TEST_F(WatcherTest, ExpiredContinueTokenPagesAgainFromTheStart) {
  // The continue token expires: the list starts again from the first page with the same
  // limit, never one unpaged (unbounded) response. A second expiry within the same list
  // backs off first.
  lw_.lists = {Ok(ListBody({EventJson("a", "10", "p1")}, "19", "tok1")),
               Status(410),
               Ok(ListBody({EventJson("a", "10", "p1")}, "30", "tok2")),
               Status(410),
               Ok(ListBody({EventJson("a", "10", "p1")}, "40", "tok3")),
               Ok(ListBody({EventJson("b", "11", "p1")}, "40"))};
  lw_.watches = {{{Line("ADDED", EventJson("c", "41", "p1"))}}};
  Run();
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "list:tok1", "list:", "list:tok2",
                                                 "list:", "list:tok3", "watch:40", "watch:41"}));
  ASSERT_EQ(lw_.list_requests.size(), 6u);
  for (const auto& r : lw_.list_requests) EXPECT_EQ(r.limit, 500);  // always paged
  // The sink sees the overlap; the EventBuffer's dedup makes it harmless.
  EXPECT_EQ(sink_.occurrences, (std::vector<std::string>{"a@10", "a@10", "a@10", "b@11", "c@41"}));
  EXPECT_EQ(sink_.synced, 1);
  EXPECT_EQ(observer_.relists, 1);
  EXPECT_EQ(sleeps_.size(), 1u);  // only before the second restart
}

TEST_F(WatcherTest, WatchErrorExpiredRelists) {
  lw_.lists = {Ok(ListBody({}, "5")), Ok(ListBody({EventJson("a", "60", "p")}, "60"))};
  lw_.watches = {{{Line("ADDED", EventJson("x", "6", "p")), ErrorLine(410, "Expired")}}};
  Run();
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "watch:5", "list:", "watch:60"}));
  EXPECT_EQ(observer_.restarts["expired"], 1);
  EXPECT_EQ(observer_.relists, 2);
  EXPECT_EQ(sink_.synced, 1);
}

TEST_F(WatcherTest, Http410OnWatchRelists) {
  lw_.lists = {Ok(ListBody({}, "5")), Ok(ListBody({}, "9"))};
  lw_.watches = {{{}, Status(410), 0.01}};
  Run();
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "watch:5", "list:", "watch:9"}));
  EXPECT_EQ(observer_.restarts["expired"], 1);
}

TEST_F(WatcherTest, StaleWatchRelistsWithGrowingBackoffNotAStorm) {
  lw_.lists = {Ok(ListBody({}, "5")), Ok(ListBody({}, "5")), Ok(ListBody({}, "5")),
               Ok(ListBody({}, "5"))};
  // HTTP 200 and an immediate close, three times.
  lw_.watches = {{{}, Ok(), 0.05}, {{}, Ok(), 0.05}, {{}, Ok(), 0.05}};
  Run();
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "watch:5", "list:", "watch:5",
                                                 "list:", "watch:5", "list:", "watch:5"}));
  EXPECT_EQ(observer_.restarts["stale"], 3);
  ASSERT_EQ(sleeps_.size(), 3u);
  EXPECT_GE(sleeps_[0], 0.8 * 0.8);
  EXPECT_GT(sleeps_[1], sleeps_[0]);
  EXPECT_GT(sleeps_[2], sleeps_[1]);
}

TEST_F(WatcherTest, ShortWatchWithOnlyABookmarkIsStillStale) {
  lw_.lists = {Ok(ListBody({}, "5")), Ok(ListBody({}, "6"))};
  lw_.watches = {{{Bookmark("6")}, Ok(), 0.05}};
  Run();
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "watch:5", "list:", "watch:6"}));
  EXPECT_EQ(observer_.restarts["stale"], 1);
  EXPECT_EQ(sleeps_.size(), 1u);
}

TEST_F(WatcherTest, ShortWatchWithEventsIsNotStale) {
  lw_.lists = {Ok(ListBody({}, "5"))};
  lw_.watches = {{{Line("ADDED", EventJson("a", "6", "p"))}, Ok(), 0.05}};
  Run();
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "watch:5", "watch:6"}));
  EXPECT_EQ(observer_.restarts["stale"], 0);
}

TEST_F(WatcherTest, CutStreamRewatchesFromTheLastCompleteEvent) {
  lw_.lists = {Ok(ListBody({}, "5"))};
  ApiResponse cut = Ok();
  cut.stream_cut = true;
  lw_.watches = {
      {{Line("ADDED", EventJson("a", "6", "p")), Line("ADDED", EventJson("b", "7", "p"))}, cut, 2}};
  Run();
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "watch:5", "watch:7"}));
  EXPECT_EQ(observer_.restarts["network"], 1);
  EXPECT_EQ(sleeps_.size(), 1u);
}

TEST_F(WatcherTest, TooManyRequestsHonoursRetryAfter) {
  lw_.lists = {Ok(ListBody({}, "5"))};
  lw_.watches = {{{}, Status(429, 7), 0.01}};
  Run();
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "watch:5", "watch:5"}));
  ASSERT_EQ(sleeps_.size(), 1u);
  EXPECT_DOUBLE_EQ(sleeps_[0], 7.0);
  EXPECT_EQ(observer_.restarts["http_429"], 1);
}

TEST_F(WatcherTest, ListFailuresBackOffAndRetry) {
  lw_.lists = {Status(500), Status(503), Status(429, 3), Ok(ListBody({}, "8"))};
  Run();
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "list:", "list:", "list:", "watch:8"}));
  ASSERT_EQ(sleeps_.size(), 3u);
  EXPECT_GE(sleeps_[0], 0.64);
  EXPECT_GT(sleeps_[1], sleeps_[0]);
  EXPECT_DOUBLE_EQ(sleeps_[2], 3.0);
  EXPECT_EQ(sink_.synced, 1);
}

TEST_F(WatcherTest, ServerErrorAndNetworkErrorOnWatchBackOffAndRewatch) {
  lw_.lists = {Ok(ListBody({}, "5"))};
  ApiResponse refused;
  refused.transport_error = "connection refused";
  lw_.watches = {{{}, Status(500), 0.01}, {{}, refused, 0.01}};
  Run();
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "watch:5", "watch:5", "watch:5"}));
  EXPECT_EQ(observer_.restarts["http_5xx"], 1);
  EXPECT_EQ(observer_.restarts["network"], 1);
  EXPECT_EQ(sleeps_.size(), 2u);
}

TEST_F(WatcherTest, UndecodableLineStopsTheStreamWithoutAppendingIt) {
  lw_.lists = {Ok(ListBody({}, "5"))};
  lw_.watches = {{{Line("ADDED", EventJson("a", "6", "p")), R"({"type":"ADDED","object":{"meta)",
                   Line("ADDED", EventJson("b", "7", "p"))}}};
  Run();
  EXPECT_EQ(sink_.occurrences, (std::vector<std::string>{"a@6"}));
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "watch:5", "watch:6"}));
  EXPECT_EQ(observer_.restarts["decode"], 1);
}

// The watch history of the poison-line tests: a@6 then the poison line, the same line
// again on the rewatch from 6, and after the relist (to 9) one more Event, c@10.
std::deque<WatchStep> PoisonLineReplayed(const std::string& poison) {
  return {{{Line("ADDED", EventJson("a", "6", "p")), poison}, Ok(), 0.1},
          {{poison}, Ok(), 0.1},
          {{Line("ADDED", EventJson("c", "10", "p"))}}};
}
const std::vector<std::string> kPoisonLineCalls = {"list:", "watch:5", "watch:6",
                                                   "list:", "watch:9", "watch:10"};

TEST_F(WatcherTest, SameUndecodableLineTwiceRelists) {
  // A revision stored in a form that does not decode ("count" as a string) is replayed by
  // every watch from before it. The first failure rewatches from the last good
  // resourceVersion; when that rewatch fails on the same line, the loop relists and
  // watches from the list's resourceVersion, past the poison line.
  const std::string poison =
      Line("MODIFIED", R"({"metadata":{"uid":"b","resourceVersion":"7"},"count":"3"})");
  lw_.lists = {Ok(ListBody({}, "5")),
               Ok(ListBody({EventJson("a", "6", "p"), EventJson("b", "8", "q", 4)}, "9"))};
  lw_.watches = PoisonLineReplayed(poison);
  Run();
  EXPECT_EQ(lw_.calls, kPoisonLineCalls);
  // a@6 comes twice (watch, then the relist): the EventBuffer's dedup absorbs it.
  EXPECT_EQ(sink_.occurrences, (std::vector<std::string>{"a@6", "a@6", "b@8", "c@10"}));
  EXPECT_EQ(observer_.restarts["decode"], 2);
  EXPECT_EQ(observer_.relists, 2);
  EXPECT_EQ(status_.lists, 2u);
  ASSERT_EQ(sleeps_.size(), 2u);  // backoff before the rewatch and before the relist
  EXPECT_GT(sleeps_[1], sleeps_[0]);
}

TEST_F(WatcherTest, ListItemThatDoesNotDecodeIsSkippedNotThePage) {
  // One Event stored with "count" as a string must not keep the list from completing: the
  // loop would retry it with backoff, never become ready, and ingest nothing.
  const std::string bad =
      R"({"metadata":{"uid":"b","resourceVersion":"7","namespace":"ns","name":"q.b"},"count":"3"})";
  lw_.lists = {Ok(ListBody({EventJson("a", "6", "p"), bad, EventJson("c", "8", "p")}, "9"))};
  lw_.watches = {{{Line("ADDED", EventJson("d", "10", "p"))}}};
  LogCapture log;
  Run();
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "watch:9", "watch:10"}));
  EXPECT_EQ(sink_.occurrences, (std::vector<std::string>{"a@6", "c@8", "d@10"}));
  EXPECT_EQ(sink_.synced, 1);
  EXPECT_TRUE(sleeps_.empty());
  EXPECT_EQ(observer_.decode_failures["list"], 1);
  EXPECT_EQ(observer_.decode_failures["watch"], 0);
  EXPECT_EQ(status_.list_decode_failures, 1u);
  EXPECT_EQ(status_.events, 3u);
  // Logged once, at warn, with the field path, the reason and the list's resourceVersion.
  const std::string text = log.text();
  const std::string want =
      "warning list item did not decode, skipped: items[1].count: expected an integer, got a "
      "string (uid b, name ns/q.b, resourceVersion 7; list resourceVersion 9)";
  EXPECT_NE(text.find(want), std::string::npos) << text;
  EXPECT_EQ(text.find(want), text.rfind(want)) << text;
}

TEST_F(WatcherTest, RelistGetsPastAPoisonLineThatIsStillTheLatestRevision) {
  // The poison line's revision is still the Event's latest, so the relist's list carries it
  // too. The list skips it and completes; the watch resumes from the list's
  // resourceVersion, past the line.
  const std::string bad = R"({"metadata":{"uid":"b","resourceVersion":"7"},"count":"3"})";
  const std::string poison = Line("MODIFIED", bad);
  lw_.lists = {Ok(ListBody({}, "5")), Ok(ListBody({EventJson("a", "6", "p"), bad}, "9"))};
  lw_.watches = PoisonLineReplayed(poison);
  Run();
  EXPECT_EQ(lw_.calls, kPoisonLineCalls);
  EXPECT_EQ(sink_.occurrences, (std::vector<std::string>{"a@6", "a@6", "c@10"}));
  EXPECT_EQ(observer_.decode_failures["watch"], 2);
  EXPECT_EQ(observer_.decode_failures["list"], 1);
  EXPECT_EQ(status_.watch_decode_failures, 2u);
  EXPECT_EQ(status_.list_decode_failures, 1u);
  EXPECT_EQ(observer_.relists, 2);
  EXPECT_EQ(sleeps_.size(), 2u);  // before the rewatch and before the relist; none after
}

TEST_F(WatcherTest, UndecodableLinesAtDifferentResourceVersionsOnlyRewatch) {
  // Two damaged lines at different places are not a poison line: no relist.
  lw_.lists = {Ok(ListBody({}, "5"))};
  lw_.watches = {{{Line("ADDED", EventJson("a", "6", "p")), "{not json"}, Ok(), 0.1},
                 {{Line("ADDED", EventJson("b", "7", "p")), "{not json"}, Ok(), 0.1},
                 {{Line("ADDED", EventJson("c", "8", "p"))}}};
  Run();
  EXPECT_EQ(lw_.calls,
            (std::vector<std::string>{"list:", "watch:5", "watch:6", "watch:7", "watch:8"}));
  EXPECT_EQ(sink_.occurrences, (std::vector<std::string>{"a@6", "b@7", "c@8"}));
  EXPECT_EQ(observer_.restarts["decode"], 2);
  EXPECT_EQ(observer_.relists, 1);
}

TEST_F(WatcherTest, ErrorEventWithoutCodeOrReasonCountsAsError) {
  // A Status without code (0) and reason is the server's error, not a network failure.
  lw_.lists = {Ok(ListBody({}, "5")), Ok(ListBody({}, "9"))};
  lw_.watches = {
      {{Line("ERROR", R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"x"})")},
       Ok(),
       0.1}};
  Run();
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "watch:5", "list:", "watch:9"}));
  EXPECT_EQ(observer_.restarts["error"], 1);
  EXPECT_EQ(observer_.restarts["network"], 0);
  EXPECT_EQ(sleeps_.size(), 1u);
}

TEST_F(WatcherTest, DeletedAdvancesTheResourceVersionWithoutAnOccurrence) {
  lw_.lists = {Ok(ListBody({}, "5"))};
  lw_.watches = {{{Line("DELETED", EventJson("a", "9", "p"))}}};
  Run();
  EXPECT_TRUE(sink_.occurrences.empty());
  EXPECT_EQ(lw_.calls, (std::vector<std::string>{"list:", "watch:5", "watch:9"}));
}

TEST_F(WatcherTest, StopInterruptsABackoffSleep) {
  // Real sleeping: a 429 asking for 300 s, and Stop() from another thread.
  FakeListerWatcher lw(&now_);
  lw.lists = {Ok(ListBody({}, "5"))};
  lw.watches = {{{}, Status(429, 300), 0.01}};
  Watcher::Options options;
  Watcher watcher(&lw, &sink_, nullptr, options);
  lw.watcher = &watcher;
  std::thread run([&] { watcher.Run(); });
  while (watcher.GetStatus().state != WatchState::kBackoff) std::this_thread::yield();
  watcher.Stop();
  run.join();
  EXPECT_TRUE(lw.cancelled);
  EXPECT_EQ(watcher.GetStatus().state, WatchState::kStopped);
  EXPECT_EQ(lw.calls.size(), 2u);
}

TEST_F(WatcherTest, UnhealthyWhenListsKeepFailingForTooLong) {
  // Every list fails; the fake sleep advances the clock by each backoff. Liveness is checked
  // from inside the script, while the loop runs.
  std::vector<bool> healthy;
  Watcher* watcher_ptr = nullptr;
  Watcher::Options options;
  options.seed = 7;
  options.now = [this] { return now_; };
  options.sleep = [&](std::chrono::nanoseconds d) {
    now_ += d;
    healthy.push_back(watcher_ptr->Healthy(std::chrono::seconds(60)));
    return true;
  };
  for (int i = 0; i < 8; ++i) lw_.lists.push_back(Status(503));
  Watcher watcher(&lw_, &sink_, nullptr, options);
  watcher_ptr = &watcher;
  lw_.watcher = &watcher;
  EXPECT_TRUE(watcher.Healthy(std::chrono::seconds(60)));  // not started
  watcher.Run();
  ASSERT_EQ(healthy.size(), 8u);
  EXPECT_TRUE(healthy.front());                             // 0.8 s after the start
  EXPECT_FALSE(healthy.back());                             // minutes of failed lists
  EXPECT_FALSE(watcher.Healthy(std::chrono::seconds(60)));  // stopped
}

TEST_F(WatcherTest, HealthyWhileAWatchIsOpenEvenWithoutEvents) {
  bool healthy_inside_watch = false;
  Watcher::Options options;
  options.now = [this] { return now_; };
  options.sleep = [](std::chrono::nanoseconds) { return true; };
  // A watch that stays open (idle) for 4 minutes: the loop is healthy throughout.
  lw_.lists = {Ok(ListBody({}, "5"))};
  lw_.watches = {{{}, Ok(), 240}};
  Watcher watcher(&lw_, &sink_, nullptr, options);
  lw_.watcher = &watcher;
  lw_.during_watch = [&] {
    now_ += std::chrono::minutes(4);
    healthy_inside_watch = watcher.Healthy(std::chrono::seconds(60));
  };
  watcher.Run();
  EXPECT_TRUE(healthy_inside_watch);
}

TEST_F(WatcherTest, HealthyUntilTheClientHasGivenUpASilentWatch) {
  // A watch that the server accepted and then never answered: the API client gives it up
  // timeoutSeconds + 60 s after it started. Until 30 s after that the process must stay
  // healthy, so that the watch is restarted and not the process (and its buffer).
  Watcher::Options options;
  options.now = [this] { return now_; };
  options.sleep = [](std::chrono::nanoseconds) { return true; };
  options.min_watch_timeout_seconds = options.max_watch_timeout_seconds = 300;
  options.watch_timeout_margin_seconds = 60;
  std::vector<bool> healthy;
  lw_.lists = {Ok(ListBody({}, "5"))};
  lw_.watches = {{{}, Ok(), 0}};
  Watcher watcher(&lw_, &sink_, nullptr, options);
  lw_.watcher = &watcher;
  lw_.during_watch = [&] {
    now_ += std::chrono::seconds(300 + 59);  // the client has not given up yet
    healthy.push_back(watcher.Healthy(std::chrono::seconds(60)));
    now_ += std::chrono::seconds(60 + 30);  // 30 s past when it should have
    healthy.push_back(watcher.Healthy(std::chrono::seconds(60)));
  };
  watcher.Run();
  ASSERT_EQ(healthy.size(), 2u);
  EXPECT_TRUE(healthy[0]);
  EXPECT_FALSE(healthy[1]);
}

TEST(LineSplitterTest, JoinsLinesAcrossChunksAndKeepsTheCutTail) {
  LineSplitter splitter;
  std::vector<std::string> lines;
  auto on_line = [&](std::string_view l) {
    lines.emplace_back(l);
    return true;
  };
  EXPECT_TRUE(splitter.Feed("{\"a\":1}\n{\"b\"", on_line));
  EXPECT_TRUE(splitter.Feed(":2}\n\n{\"c\":", on_line));
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", ""}));
  EXPECT_TRUE(splitter.HasPartial());  // {"c": was cut: never handed out
  EXPECT_TRUE(splitter.Feed("3}\n", on_line));
  EXPECT_FALSE(splitter.HasPartial());
  EXPECT_EQ(lines.back(), "{\"c\":3}");
}

TEST(LineSplitterTest, StopsWhenTheHandlerSaysSo) {
  LineSplitter splitter;
  int n = 0;
  EXPECT_FALSE(splitter.Feed("a\nb\nc\n", [&](std::string_view) { return ++n < 2; }));
  EXPECT_EQ(n, 2);
}

}  // namespace
}  // namespace eventbuffer::controller
