// The size caps of the API client (a watch line, a list page) and how the Watcher answers
// them (skip and go on, halve the page, skip an item by its continue token, page again
// after an expired token), against a scripted HTTP server on 127.0.0.1.
#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "controller/kube/api_client.h"
#include "controller/kube/line_splitter.h"
#include "controller/kube/watcher.h"
#include "tests/controller/kube/loopback_http_server.h"

namespace eventbuffer::controller {
namespace {

using testing::LoopbackHttpServer;

constexpr std::size_t kMiB = std::size_t{1} << 20;

std::string EventJson(const std::string& uid, const std::string& rv,
                      const std::string& message = "m") {
  return R"({"kind":"Event","apiVersion":"v1","metadata":{"name":"p.)" + uid +
         R"(","namespace":"ns","uid":")" + uid + R"(","resourceVersion":")" + rv +
         R"("},"involvedObject":{"kind":"Pod","namespace":"ns","name":"p"},"reason":"BackOff",)"
         R"("message":")" +
         message + R"(","count":1,"type":"Warning","lastTimestamp":"2024-05-01T10:00:00Z"})";
}
std::string AddedLine(const std::string& uid, const std::string& rv) {
  return R"({"type":"ADDED","object":)" + EventJson(uid, rv) + "}\n";
}

// Writes a watch line of exactly `bytes` bytes (newline not counted) holding an ADDED
// Event whose message is 'x' repeated, in 1 MiB pieces: never held whole by the server.
void WriteHugeLine(const LoopbackHttpServer::Write& write, const std::string& uid,
                   const std::string& rv, std::size_t bytes) {
  const std::string head = R"({"type":"ADDED","object":{"kind":"Event","apiVersion":"v1",)"
                           R"("metadata":{"name":"huge","namespace":"ns","uid":")" +
                           uid + R"(","resourceVersion":")" + rv + R"("},"message":")";
  const std::string tail = "\"}}";
  write(head);
  std::size_t left = bytes - head.size() - tail.size();
  const std::string piece(kMiB, 'x');
  while (left > 0) {
    const std::size_t n = std::min(left, piece.size());
    if (!write(std::string_view(piece).substr(0, n))) return;
    left -= n;
  }
  write(tail + "\n");
}

// The value of query parameter `name` in a request target ("" when absent).
std::string Param(const std::string& target, const std::string& name) {
  const std::size_t q = target.find('?');
  if (q == std::string::npos) return "";
  std::size_t pos = q + 1;
  while (pos < target.size()) {
    std::size_t end = target.find('&', pos);
    if (end == std::string::npos) end = target.size();
    const std::string kv = target.substr(pos, end - pos);
    if (kv.compare(0, name.size() + 1, name + "=") == 0) return kv.substr(name.size() + 1);
    pos = end + 1;
  }
  return "";
}
bool IsWatch(const std::string& target) { return Param(target, "watch") == "1"; }

// An EventList page of items[start, start+limit) with continue "c<next>" when more remain.
std::string ListPage(const std::vector<std::string>& items, const std::string& rv,
                     std::size_t start, std::size_t limit) {
  const std::size_t end = limit == 0 ? items.size() : std::min(items.size(), start + limit);
  std::string body =
      R"({"kind":"EventList","apiVersion":"v1","metadata":{"resourceVersion":")" + rv + R"(")";
  if (end < items.size()) body += R"(,"continue":"c)" + std::to_string(end) + R"(")";
  body += R"(},"items":[)";
  for (std::size_t i = start; i < end; ++i) body += (i > start ? "," : "") + items[i];
  return body + "]}";
}

class RecordingSink : public EventSink {
 public:
  void Append(EventRef record) override {
    std::lock_guard<std::mutex> lock(mu);
    uids.emplace_back(record->uid());
  }
  void OnSynced() override { synced = true; }
  std::vector<std::string> Uids() {
    std::lock_guard<std::mutex> lock(mu);
    return uids;
  }
  std::mutex mu;
  std::vector<std::string> uids;
  std::atomic<bool> synced{false};
};

class CountingObserver : public WatchObserver {
 public:
  void OnWatchEvent(std::string_view) override {}
  void OnWatchRestart(RestartReason) override {}
  void OnRelist() override {}
  void OnApiRequest(std::string_view, int, double) override {}
  void OnProgress() override {}
  void OnBookmark() override {}
  void OnEventLag(double) override {}
  void OnDecodeFailure(std::string_view) override {}
  void OnEventSkipped(std::string_view source, std::string_view reason) override {
    std::lock_guard<std::mutex> lock(mu);
    ++skipped[std::string(source) + "/" + std::string(reason)];
  }
  int Skipped(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu);
    return skipped[key];
  }
  std::mutex mu;
  std::map<std::string, int> skipped;
};

// An ApiClient of a loopback server, without a token.
struct LoopbackClient {
  explicit LoopbackClient(const LoopbackHttpServer& server, ApiClient::Options options = {})
      : token(TokenSource::Static("")), client(ConfigOf(server), token.get(), std::move(options)) {}
  static KubeConfig ConfigOf(const LoopbackHttpServer& server) {
    InitializeHttpThreads(2);  // before any cpprestsdk use (once per process)
    KubeConfig config;
    config.server = server.url();
    return config;
  }
  std::unique_ptr<TokenSource> token;
  ApiClient client;
};

// A Watcher over a real ApiClient against `server`, run on its own thread until `done`
// holds (or 60 s pass: a failure, not a measurement).
struct Harness {
  Harness(LoopbackHttpServer* server, ApiClient::Options client_options, int list_limit)
      : token(TokenSource::Static("")) {
    client = std::make_unique<ApiClient>(LoopbackClient::ConfigOf(*server), token.get(),
                                         client_options);
    Watcher::Options options;
    options.list_limit = list_limit;
    options.seed = 7;
    options.backoff.initial_seconds = 0.01;
    options.backoff.max_seconds = 0.05;
    watcher = std::make_unique<Watcher>(client.get(), &sink, &observer, options);
  }
  // Runs until done() or the deadline; returns whether done() held.
  bool RunUntil(const std::function<bool()>& done) {
    std::thread t([this] { watcher->Run(); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    bool ok = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) {
        ok = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    watcher->Stop();
    t.join();
    return ok;
  }

  std::unique_ptr<TokenSource> token;
  std::unique_ptr<ApiClient> client;
  RecordingSink sink;
  CountingObserver observer;
  std::unique_ptr<Watcher> watcher;
};

TEST(LineSplitterCapTest, KeepsTheBufferUnderTheCapForAHundredMegabyteLine) {
  constexpr std::size_t kCap = 64 * 1024;
  LineSplitter splitter(kCap);
  std::vector<std::string> lines;
  std::vector<std::pair<std::string, std::uint64_t>> oversized;
  auto on_line = [&](std::string_view l) {
    lines.emplace_back(l);
    return true;
  };
  auto on_oversized = [&](std::string_view prefix, std::uint64_t bytes) {
    oversized.emplace_back(std::string(prefix), bytes);
    return true;
  };
  ASSERT_TRUE(splitter.Feed("{\"a\":1}\n{\"big\":\"", on_line, on_oversized));
  const std::string piece(kMiB - 3, 'x');  // odd sizes, so chunks never align with the cap
  std::size_t max_capacity = 0;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(splitter.Feed(piece, on_line, on_oversized));
    max_capacity = std::max(max_capacity, splitter.buffer_capacity());
  }
  ASSERT_TRUE(splitter.Feed("\"}\n{\"b\":2}\n", on_line, on_oversized));
  EXPECT_LE(max_capacity, kCap);
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
  ASSERT_EQ(oversized.size(), 1u);
  EXPECT_EQ(oversized[0].first.size(), kCap);
  EXPECT_EQ(oversized[0].first.substr(0, 9), "{\"big\":\"x");
  EXPECT_EQ(oversized[0].second, 8 + 100 * piece.size() + 2);  // {"big":" ... "}
  EXPECT_FALSE(splitter.HasPartial());
}

TEST(LineSplitterCapTest, ALineOfExactlyTheCapPassesAndOneMoreByteDoesNot) {
  LineSplitter splitter(8);
  std::vector<std::string> lines;
  int oversized = 0;
  auto on_line = [&](std::string_view l) {
    lines.emplace_back(l);
    return true;
  };
  auto on_oversized = [&](std::string_view, std::uint64_t) { return ++oversized, true; };
  ASSERT_TRUE(splitter.Feed("1234", on_line, on_oversized));
  ASSERT_TRUE(splitter.Feed("5678\n123456789\n", on_line, on_oversized));
  ASSERT_TRUE(splitter.Feed("abcdefghi\nz\n", on_line, on_oversized));  // the fast path
  EXPECT_EQ(lines, (std::vector<std::string>{"12345678", "z"}));
  EXPECT_EQ(oversized, 2);
}

TEST(ApiClientLimitsTest, HundredMegabyteWatchLineIsSkippedAndNeverHeld) {
  constexpr std::size_t kHuge = 100 * kMiB;
  LoopbackHttpServer server([&](const std::string&) {
    LoopbackHttpServer::Response r;
    r.body = [&](const LoopbackHttpServer::Write& write) {
      write(AddedLine("a", "5"));
      WriteHugeLine(write, "u-huge", "6", kHuge);
      write(AddedLine("b", "7"));
    };
    return r;
  });
  LoopbackClient loopback(server);  // default cap: 4 MiB
  ApiClient& client = loopback.client;

  std::vector<std::string> lines;
  std::vector<std::uint64_t> oversized_bytes;
  std::string oversized_prefix_start;
  WatchRequest request;
  request.resource_version = "4";
  request.timeout_seconds = 30;
  request.on_oversized_line = [&](std::string_view prefix, std::uint64_t bytes) {
    oversized_bytes.push_back(bytes);
    oversized_prefix_start = std::string(prefix.substr(0, 40));
    EXPECT_EQ(prefix.size(), ApiClient::kDefaultMaxWatchEventBytes);
    return true;
  };
  const ApiResponse response = client.Watch(request, [&](std::string_view line) {
    lines.emplace_back(line);
    return true;
  });
  EXPECT_EQ(response.http_status, 200);
  EXPECT_FALSE(response.stream_cut) << response.transport_error;
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0] + "\n", AddedLine("a", "5"));
  EXPECT_EQ(lines[1] + "\n", AddedLine("b", "7"));  // the watch went on after the huge line
  ASSERT_EQ(oversized_bytes.size(), 1u);
  EXPECT_EQ(oversized_bytes[0], kHuge);
  EXPECT_EQ(oversized_prefix_start, R"({"type":"ADDED","object":{"kind":"Event")");
  // Structural: the line buffer never grew past the cap (100 MB went through it).
  EXPECT_GT(response.peak_line_buffer_bytes, 0u);
  EXPECT_LE(response.peak_line_buffer_bytes, ApiClient::kDefaultMaxWatchEventBytes);
}

// A server streams 32 MiB of watch lines while the line handler is stalled: the client
// stops reading the socket once it holds the read-ahead limit (TCP holds back the rest),
// instead of buffering the stream in memory, and every line still arrives in order.
TEST(ApiClientLimitsTest, AFastWatchStreamIsReadAheadOnlyUpToTheLimit) {
  constexpr std::size_t kLines = 8192;
  const std::string message(4000, 'm');
  std::atomic<std::uint64_t> sent{0};
  LoopbackHttpServer server([&](const std::string&) {
    LoopbackHttpServer::Response r;
    r.body = [&](const LoopbackHttpServer::Write& write) {
      for (std::size_t i = 0; i < kLines; ++i) {
        const std::string line = R"({"type":"ADDED","object":)" +
                                 EventJson("u" + std::to_string(i), std::to_string(i), message) +
                                 "}\n";
        if (!write(line)) return;
        sent += line.size();
      }
    };
    return r;
  });
  ApiClient::Options options;
  options.watch_read_ahead_bytes = 256 * 1024;
  LoopbackClient loopback(server, options);
  ApiClient& client = loopback.client;

  std::size_t lines = 0;
  bool in_order = true;
  std::uint64_t sent_while_stalled = 0;
  WatchRequest request;
  request.timeout_seconds = 60;
  const ApiResponse response = client.Watch(request, [&](std::string_view line) {
    in_order = in_order && line.find(R"("uid":"u)" + std::to_string(lines) + "\"") !=
                               std::string_view::npos;
    if (lines++ == 0) {
      // Stalled long enough for the server to send everything if the client read on.
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      sent_while_stalled = sent.load();
    }
    return true;
  });
  EXPECT_EQ(response.http_status, 200);
  EXPECT_FALSE(response.stream_cut) << response.transport_error;
  EXPECT_EQ(lines, kLines);
  EXPECT_TRUE(in_order);
  // 32 MiB went through; at most the limit plus one socket read was held at once, and the
  // server could send only that and what the sockets' buffers take while the handler stalled.
  EXPECT_GT(response.peak_read_ahead_bytes, 0u);
  EXPECT_LE(response.peak_read_ahead_bytes, 256u * 1024 + 128 * 1024);
  EXPECT_LT(sent_while_stalled, 16 * kMiB);
}

// The line handler stops after 10 lines of an endless stream: the watch returns, and the
// client drops the connection from its own I/O thread (no cancel), so the server sees it go.
TEST(ApiClientLimitsTest, AHandlerThatStopsEndsAnEndlessStreamWithoutCancel) {
  std::atomic<bool> client_gone{false};
  std::atomic<std::uint64_t> sent{0};
  LoopbackHttpServer server([&](const std::string&) {
    LoopbackHttpServer::Response r;
    r.body = [&](const LoopbackHttpServer::Write& write) {
      for (std::uint64_t i = 0;; ++i) {
        const std::string line = AddedLine("u" + std::to_string(i), std::to_string(i));
        if (!write(line)) break;
        sent += line.size();
      }
      client_gone = true;
    };
    return r;
  });
  LoopbackClient loopback(server);
  ApiClient& client = loopback.client;

  for (int round = 0; round < 3; ++round) {  // and the next watch works as before
    int lines = 0;
    WatchRequest request;
    request.timeout_seconds = 60;
    const ApiResponse response =
        client.Watch(request, [&](std::string_view) { return ++lines < 10; });
    EXPECT_EQ(response.http_status, 200);
    EXPECT_FALSE(response.cancelled);
    EXPECT_EQ(lines, 10);
  }
  for (int i = 0; i < 1000 && !client_gone.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(client_gone.load());
  EXPECT_LT(sent.load(), 3 * 16 * kMiB);  // three watches, each read at most ~1 MiB ahead
}

TEST(ApiClientLimitsTest, ErrorBodiesAreReadOnlyUpToTheirCap) {
  LoopbackHttpServer server([&](const std::string&) {
    LoopbackHttpServer::Response r;
    r.status = 500;
    r.body = [](const LoopbackHttpServer::Write& write) {
      const std::string piece(kMiB, 'e');
      for (int i = 0; i < 8; ++i) {
        if (!write(piece)) return;  // the client closed the connection
      }
    };
    return r;
  });
  ApiClient::Options options;
  options.max_list_page_bytes = 64 * 1024;
  LoopbackClient loopback(server, options);
  ApiClient& client = loopback.client;

  const ApiResponse list = client.List(ListRequest{});
  EXPECT_EQ(list.http_status, 500);
  EXPECT_TRUE(list.body_too_large);
  EXPECT_EQ(list.body.size(), 64u * 1024);
  EXPECT_LE(list.body.capacity(), 64u * 1024);

  WatchRequest request;
  const ApiResponse watch = client.Watch(request, [](std::string_view) { return true; });
  EXPECT_EQ(watch.http_status, 500);
  EXPECT_TRUE(watch.body_too_large);
  EXPECT_EQ(watch.body.size(), kMiB);  // a watch's error Status: at most 1 MiB
}

TEST(ApiClientLimitsTest, APageOverTheCapIsNotReadOnAndTheNextListWorks) {
  // The first list's page never ends; the client keeps the cap, drops the connection
  // without reading on (and without a cancel), and the next list gets its page.
  std::atomic<int> lists{0};
  std::atomic<bool> client_gone{false};
  std::atomic<std::uint64_t> sent{0};
  LoopbackHttpServer server([&](const std::string&) {
    LoopbackHttpServer::Response r;
    if (lists++ == 0) {
      r.body = [&](const LoopbackHttpServer::Write& write) {
        const std::string piece(kMiB, 'x');
        write(R"({"kind":"EventList","apiVersion":"v1","metadata":{"resourceVersion":"7"},)"
              R"("items":[{"message":")");
        while (write(piece)) sent += piece.size();
        client_gone = true;
      };
    } else {
      r.body = [](const LoopbackHttpServer::Write& write) {
        write(ListPage({EventJson("a", "9")}, "10", 0, 500));
      };
    }
    return r;
  });
  ApiClient::Options options;
  options.max_list_page_bytes = 64 * 1024;
  LoopbackClient loopback(server, options);
  ApiClient& client = loopback.client;

  const ApiResponse first = client.List(ListRequest{});
  EXPECT_EQ(first.http_status, 200);
  EXPECT_TRUE(first.body_too_large);
  EXPECT_FALSE(first.cancelled);
  EXPECT_EQ(first.body.size(), 64u * 1024);
  for (int i = 0; i < 1000 && !client_gone.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(client_gone.load());
  // Read ahead by at most ~1 MiB plus the sockets' buffers: not drained to any end.
  EXPECT_LT(sent.load(), 16 * kMiB);

  const ApiResponse second = client.List(ListRequest{});
  EXPECT_EQ(second.http_status, 200);
  EXPECT_FALSE(second.body_too_large);
  EXPECT_EQ(second.body, ListPage({EventJson("a", "9")}, "10", 0, 500));
}

TEST(ApiClientLimitsTest, AnEventWithAOneMebibyteMessagePassesTheDefaultCap) {
  const std::string message(kMiB, 'y');
  LoopbackHttpServer server([&](const std::string& target) {
    LoopbackHttpServer::Response r;
    if (IsWatch(target)) {
      r.body = [&](const LoopbackHttpServer::Write& write) {
        write(R"({"type":"ADDED","object":)" + EventJson("big", "11", message) + "}\n");
      };
      r.hold_open = true;
    } else {
      r.body = [&](const LoopbackHttpServer::Write& write) {
        write(ListPage({EventJson("a", "9", message)}, "10", 0, 500));
      };
    }
    return r;
  });
  Harness h(&server, ApiClient::Options{}, 500);
  EXPECT_TRUE(h.RunUntil([&] { return h.sink.Uids().size() == 2; }));
  EXPECT_EQ(h.sink.Uids(), (std::vector<std::string>{"a", "big"}));
  EXPECT_EQ(h.watcher->GetStatus().too_large_skipped, 0u);
}

TEST(ApiClientLimitsTest, WatcherSkipsALineOverTheCapCountsItAndDeliversTheNext) {
  LoopbackHttpServer server([&](const std::string& target) {
    LoopbackHttpServer::Response r;
    if (IsWatch(target)) {
      r.body = [&](const LoopbackHttpServer::Write& write) {
        write(AddedLine("a", "11"));
        WriteHugeLine(write, "u-huge", "12", 3 * kMiB);
        write(AddedLine("b", "13"));
      };
      r.hold_open = true;
    } else {
      r.body = [&](const LoopbackHttpServer::Write& write) { write(ListPage({}, "10", 0, 500)); };
    }
    return r;
  });
  ApiClient::Options client_options;
  client_options.max_watch_event_bytes = 256 * 1024;
  Harness h(&server, client_options, 500);
  EXPECT_TRUE(h.RunUntil([&] { return h.sink.Uids().size() == 2; }));
  EXPECT_EQ(h.sink.Uids(), (std::vector<std::string>{"a", "b"}));
  const WatcherStatus status = h.watcher->GetStatus();
  EXPECT_EQ(status.too_large_skipped, 1u);
  EXPECT_EQ(status.resource_version, "13");
  EXPECT_EQ(status.watch_requests, 1u);  // one stream: the skip did not restart it
  EXPECT_EQ(h.observer.Skipped("watch/too_large"), 1);
  EXPECT_EQ(h.observer.Skipped("list/too_large"), 0);
}

TEST(ApiClientLimitsTest, StopEndsAWatchInsideALineThatNeverEnds) {
  // A hostile server streams one line forever: the client reads and drops it within the
  // cap, and Stop() from another thread still ends the watch (the test hangs otherwise).
  std::atomic<std::uint64_t> sent{0};
  LoopbackHttpServer server([&](const std::string& target) {
    LoopbackHttpServer::Response r;
    if (IsWatch(target)) {
      r.body = [&](const LoopbackHttpServer::Write& write) {
        const std::string piece(kMiB, 'x');
        write(R"({"type":"ADDED","object":{"metadata":{"name":"endless"}},"message":")");
        while (write(piece)) sent += piece.size();  // until the client has gone
      };
    } else {
      r.body = [&](const LoopbackHttpServer::Write& write) { write(ListPage({}, "10", 0, 500)); };
    }
    return r;
  });
  ApiClient::Options client_options;
  client_options.max_watch_event_bytes = 64 * 1024;
  Harness h(&server, client_options, 500);
  EXPECT_TRUE(h.RunUntil([&] { return sent.load() > 64 * kMiB; }));
  EXPECT_EQ(h.watcher->GetStatus().state, WatchState::kStopped);
  EXPECT_EQ(h.watcher->GetStatus().too_large_skipped, 0u);  // the line never ended
  EXPECT_TRUE(h.sink.Uids().empty());
}

// A list server over `items` that answers pages by limit/continue and records them.
LoopbackHttpServer::Handler ListServer(const std::vector<std::string>* items, int* expire_first,
                                       bool hold_watch = true) {
  return [items, expire_first, hold_watch](const std::string& target) {
    LoopbackHttpServer::Response r;
    if (IsWatch(target)) {
      r.hold_open = hold_watch;
      return r;
    }
    const std::string cont = Param(target, "continue");
    const std::string limit = Param(target, "limit");
    if (!cont.empty() && *expire_first > 0) {
      --*expire_first;
      r.status = 410;
      r.body = [](const LoopbackHttpServer::Write& write) {
        write(R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Expired",)"
              R"("code":410,"message":"The provided continue parameter is too old"})");
      };
      return r;
    }
    const std::size_t start = cont.empty() ? 0 : std::stoul(cont.substr(1));
    const std::size_t n = limit.empty() ? 0 : std::stoul(limit);
    const std::string page = ListPage(*items, "100", start, n);
    r.body = [page](const LoopbackHttpServer::Write& write) {
      for (std::size_t pos = 0; pos < page.size(); pos += 1000) {
        if (!write(std::string_view(page).substr(pos, 1000))) return;
      }
    };
    return r;
  };
}

std::vector<std::string> ListTargets(const LoopbackHttpServer& server) {
  std::vector<std::string> out;
  for (const auto& t : server.targets()) {
    if (!IsWatch(t)) out.push_back(t.substr(t.find('?')));
  }
  return out;
}

TEST(ApiClientLimitsTest, APageOverTheByteCapIsAskedAgainWithHalfTheLimit) {
  std::vector<std::string> items;
  for (int i = 0; i < 8; ++i) {
    items.push_back(
        EventJson("e" + std::to_string(i), std::to_string(10 + i), std::string(3000, 'm')));
  }
  int expire = 0;
  LoopbackHttpServer server(ListServer(&items, &expire));
  ApiClient::Options client_options;
  client_options.max_list_page_bytes = 16 * 1024;  // 8 items: ~25 KiB; 4 items: ~13 KiB
  Harness h(&server, client_options, 8);
  EXPECT_TRUE(h.RunUntil([&] { return h.sink.synced.load(); }));
  EXPECT_EQ(h.sink.Uids().size(), 8u);
  EXPECT_EQ(ListTargets(server),
            (std::vector<std::string>{"?limit=8", "?limit=4", "?limit=4&continue=c4"}));
  EXPECT_EQ(h.watcher->GetStatus().too_large_skipped, 0u);
  EXPECT_EQ(h.watcher->GetStatus().resource_version, "100");
}

TEST(ApiClientLimitsTest, AnItemAloneOverTheCapIsSkippedByItsContinueToken) {
  std::vector<std::string> items = {EventJson("e0", "10"),
                                    EventJson("huge", "11", std::string(40 * 1024, 'h')),
                                    EventJson("e2", "12"), EventJson("e3", "13")};
  int expire = 0;
  LoopbackHttpServer server(ListServer(&items, &expire));
  ApiClient::Options client_options;
  client_options.max_list_page_bytes = 16 * 1024;
  Harness h(&server, client_options, 4);
  EXPECT_TRUE(h.RunUntil([&] { return h.sink.synced.load(); }));
  EXPECT_EQ(h.sink.Uids(), (std::vector<std::string>{"e0", "e2", "e3"}));
  // 4 and 2 are over the cap (they hold the huge item), 1 holds e0; the huge item alone
  // is over it too: skipped by its page's continue token, and the limit is back to 4.
  EXPECT_EQ(ListTargets(server),
            (std::vector<std::string>{"?limit=4", "?limit=2", "?limit=1", "?limit=1&continue=c1",
                                      "?limit=4&continue=c2"}));
  EXPECT_EQ(h.watcher->GetStatus().too_large_skipped, 1u);
  EXPECT_EQ(h.observer.Skipped("list/too_large"), 1);
}

TEST(ApiClientLimitsTest, TheLastItemAloneOverTheCapCompletesTheList) {
  std::vector<std::string> items = {EventJson("e0", "10"),
                                    EventJson("huge", "11", std::string(40 * 1024, 'h'))};
  int expire = 0;
  LoopbackHttpServer server(ListServer(&items, &expire));
  ApiClient::Options client_options;
  client_options.max_list_page_bytes = 16 * 1024;
  Harness h(&server, client_options, 2);
  EXPECT_TRUE(h.RunUntil([&] { return h.sink.synced.load(); }));
  EXPECT_EQ(h.sink.Uids(), (std::vector<std::string>{"e0"}));
  EXPECT_EQ(ListTargets(server),
            (std::vector<std::string>{"?limit=2", "?limit=1", "?limit=1&continue=c1"}));
  EXPECT_EQ(h.watcher->GetStatus().resource_version, "100");
  EXPECT_EQ(h.watcher->GetStatus().too_large_skipped, 1u);
}

TEST(ApiClientLimitsTest, AnItemOverTheCapBeforeReadableListMetadataFailsTheList) {
  // A page that puts its items before its metadata: the continue token is out of reach
  // in the kept prefix, so the list fails (and is retried with backoff) rather than guess.
  const std::string huge_page = R"({"kind":"EventList","items":[)" +
                                EventJson("huge", "11", std::string(40 * 1024, 'h')) +
                                R"(],"metadata":{"resourceVersion":"100","continue":"c1"}})";
  LoopbackHttpServer server([&](const std::string& target) {
    LoopbackHttpServer::Response r;
    if (IsWatch(target)) {
      r.hold_open = true;
      return r;
    }
    r.body = [&](const LoopbackHttpServer::Write& write) { write(huge_page); };
    return r;
  });
  ApiClient::Options client_options;
  client_options.max_list_page_bytes = 16 * 1024;
  Harness h(&server, client_options, 1);
  EXPECT_TRUE(h.RunUntil([&] { return h.watcher->GetStatus().lists >= 3; }));
  EXPECT_FALSE(h.sink.synced.load());
  EXPECT_EQ(h.watcher->GetStatus().too_large_skipped, 0u);
  for (const auto& t : ListTargets(server)) EXPECT_EQ(t, "?limit=1");  // never continued
}

TEST(ApiClientLimitsTest, AServerThatIgnoresTheLimitFailsTheListRatherThanLoseItems) {
  // Every page holds every item whatever the limit: at limit=1 the first item is complete
  // within the cap, so the page is not one huge item and nothing is skipped.
  std::vector<std::string> items;
  for (int i = 0; i < 8; ++i) {
    items.push_back(
        EventJson("e" + std::to_string(i), std::to_string(10 + i), std::string(3000, 'm')));
  }
  LoopbackHttpServer server([&](const std::string& target) {
    LoopbackHttpServer::Response r;
    if (IsWatch(target)) {
      r.hold_open = true;
      return r;
    }
    const std::string page = ListPage(items, "100", 0, 0);
    r.body = [page](const LoopbackHttpServer::Write& write) { write(page); };
    return r;
  });
  ApiClient::Options client_options;
  client_options.max_list_page_bytes = 16 * 1024;
  Harness h(&server, client_options, 4);
  EXPECT_TRUE(h.RunUntil([&] { return h.watcher->GetStatus().lists >= 2; }));
  EXPECT_FALSE(h.sink.synced.load());
  EXPECT_TRUE(h.sink.Uids().empty());
  EXPECT_EQ(h.watcher->GetStatus().too_large_skipped, 0u);
  const auto targets = ListTargets(server);
  ASSERT_GE(targets.size(), 3u);
  EXPECT_EQ(std::vector<std::string>(targets.begin(), targets.begin() + 3),
            (std::vector<std::string>{"?limit=4", "?limit=2", "?limit=1"}));
}

TEST(ApiClientLimitsTest, AnExpiredContinueTokenPagesAgainFromTheStart) {
  std::vector<std::string> items;
  for (int i = 0; i < 5; ++i)
    items.push_back(EventJson("e" + std::to_string(i), "1" + std::to_string(i)));
  int expire = 2;  // the first two continuations expire
  LoopbackHttpServer server(ListServer(&items, &expire));
  Harness h(&server, ApiClient::Options{}, 2);
  EXPECT_TRUE(h.RunUntil([&] { return h.sink.synced.load(); }));
  EXPECT_EQ(ListTargets(server),
            (std::vector<std::string>{"?limit=2", "?limit=2&continue=c2", "?limit=2",
                                      "?limit=2&continue=c2", "?limit=2", "?limit=2&continue=c2",
                                      "?limit=2&continue=c4"}));
  for (const auto& t : ListTargets(server)) {
    EXPECT_NE(Param("x" + t, "limit"), "") << t;  // never an unpaged list
  }
  // Pages appended before each expiry are appended again (the sink de-duplicates).
  const auto uids = h.sink.Uids();
  ASSERT_EQ(uids.size(), 9u);
  EXPECT_EQ(std::vector<std::string>(uids.end() - 5, uids.end()),
            (std::vector<std::string>{"e0", "e1", "e2", "e3", "e4"}));
}

// A ListerWatcher whose watches report lines over the cap (as ApiClient does) without HTTP,
// on a fake clock, to look at the counting and the rate-limited log.
class OversizedLinesLw : public ListerWatcher {
 public:
  explicit OversizedLinesLw(Watcher::Clock::time_point* now) : now_(now) {}
  ApiResponse List(const ListRequest&) override {
    ApiResponse r;
    r.http_status = 200;
    r.body = ListPage({}, "5", 0, 500);
    return r;
  }
  ApiResponse Watch(const WatchRequest& request, const LineHandler& on_line) override {
    ApiResponse r;
    if (watches_++ == 2) {
      watcher->Stop();
      r.cancelled = true;
      return r;
    }
    const int lines = watches_ == 1 ? 20 : 1;
    for (int i = 0; i < lines; ++i) {
      const std::string rv = std::to_string(6 + 100 * watches_ + i);
      const std::string prefix = R"({"type":"ADDED","object":{"metadata":{"name":"n)" +
                                 std::to_string(i) + R"(","resourceVersion":")" + rv +
                                 R"("},"message":"xxxx)";
      EXPECT_TRUE(request.on_oversized_line(prefix, std::uint64_t{1} << 30));
    }
    std::string line =
        AddedLine("a" + std::to_string(watches_), std::to_string(50 + 100 * watches_));
    line.pop_back();  // the handler gets lines without their newline
    EXPECT_TRUE(on_line(line));
    *now_ += std::chrono::seconds(400);  // the stream lasted its timeout; the log window rolls
    r.http_status = 200;
    return r;
  }
  void Cancel() override {}
  Watcher* watcher = nullptr;

 private:
  Watcher::Clock::time_point* now_;
  int watches_ = 0;
};

TEST(WatcherTooLargeTest, EveryOversizedLineIsCountedButFewAreLogged) {
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  sink->set_pattern("%l %v");
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));

  Watcher::Clock::time_point now = Watcher::Clock::time_point{} + std::chrono::hours(1);
  OversizedLinesLw lw(&now);
  RecordingSink events;
  CountingObserver observer;
  Watcher::Options options;
  options.now = [&now] { return now; };
  options.sleep = [](std::chrono::nanoseconds) { return true; };
  Watcher watcher(&lw, &events, &observer, options);
  lw.watcher = &watcher;
  watcher.Run();
  spdlog::set_default_logger(previous);

  EXPECT_EQ(watcher.GetStatus().too_large_skipped, 21u);
  EXPECT_EQ(observer.Skipped("watch/too_large"), 21);
  EXPECT_EQ(events.Uids(), (std::vector<std::string>{"a1", "a2"}));  // the lines after them
  EXPECT_EQ(watcher.GetStatus().resource_version, "250");
  const std::string text = log.str();
  std::size_t logged = 0;
  for (std::size_t pos = 0; (pos = text.find("watch event skipped:", pos)) != std::string::npos;
       ++pos) {
    ++logged;
  }
  EXPECT_EQ(logged, 5u + 1u);  // 5 in the first window, 1 in the next
  EXPECT_NE(text.find("15 more Events over the size cap were skipped (not logged)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("watch event skipped: 1073741824 bytes, over the cap of "
                      "--max-watch-event-bytes (ADDED ?/n0 uid ? resourceVersion 106)"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace eventbuffer::controller
