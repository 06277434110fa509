// Serving benchmarks: the eventbuffer.dev API as the controller serves it (Server with TLS,
// DelegatingAuth with token authentication and authorization, EventsApi over an EventBuffer,
// composed by SecureApiHandler), read by real HTTPS clients over loopback.
//
//   BM_IngestUnderReadLoad  the e2e ingest path (real ApiClient and Watcher on the
//       emulator's fast stream, into an EventBuffer pre-filled with synthetic occurrences in
//       200 namespaces), once alone and once while N readers (default 16) page through the
//       API as fast as they can, alternating, several repetitions in one run. Reports the
//       median ingest events/s of each variant and their ratio, what the readers achieved
//       (requests/s, items/s, 429s, page latency), and the CPU the watch thread got.
//       Needs the emulator: run through tests/bench/serving_bench.sh.
//   BM_Page/namespaced_kind_pod    one 500-item page of one namespace with
//       fieldSelector=involvedObject.kind=Pod (~80 % match), from a random position
//   BM_Page/all_namespaces_warning one 500-item page of all namespaces with
//       fieldSelector=type=Warning (~25 % match), from a random position
//   BM_WalkNamespace        one whole namespace (5,000 occurrences), 500 a page, following
//       the continue tokens: items/s
//     The three read benchmarks run on a buffer of 1,000,000 occurrences of 100,000 objects
//     in 200 namespaces (the shape of query_index_bench) while a writer appends ~10,000
//     occurrences/s (and retention evicts as many); one client, keep-alive, token auth with
//     a warm cache; times are wall time from sending the request to the last body byte.
//
// Authentication: a ReviewClient fake answers TokenReview (the token below is user
// demo-viewer) and SubjectAccessReview (allowed); the caches keep the answers 10 s as in
// production, so after the first request almost every request is served from the caches
// (the number of reviews is reported).
//
// Environment (BM_IngestUnderReadLoad; serving_bench.sh sets them):
//   KEB_SERVING_KUBECONFIG, KEB_SERVING_FIRST_RV, KEB_SERVING_EVENTS  the emulator's stream
//   KEB_SERVING_REPS (5)        repetitions of the pair (alone, loaded)
//   KEB_SERVING_READERS (16)    concurrent readers
//   KEB_SERVING_PREFILL (200000) synthetic occurrences in the buffer before each stream
//   KEB_SERVING_READER_CPUS     e.g. "0": pin the reader threads there (the rest of the
//                               process keeps the affinity it was started with)
//   KEB_SERVING_SERVER_NICE     an experiment: run the server's threads at this nice value
#include <benchmark/benchmark.h>

#include <cstdio>

#ifdef KEB_VERSION  // built with the controller

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "controller/config/options.h"
#include "controller/kube/api_client.h"
#include "controller/kube/kube_config.h"
#include "controller/kube/token_source.h"
#include "controller/kube/watch_metrics.h"
#include "controller/kube/watcher.h"
#include "controller/malloc_arenas.h"
#include "controller/serving/api/events_api.h"
#include "controller/serving/auth/authenticator.h"
#include "controller/serving/auth/authorizer.h"
#include "controller/serving/auth/delegating_auth.h"
#include "controller/serving/endpoints.h"
#include "controller/serving/server.h"
#include "eventbuffer/event_buffer.h"
#include "metrics/metrics.h"
#include "tests/bench/bench_support.h"
#include "tests/bench/from_stream_start.h"

namespace {

using namespace eventbuffer;
using namespace eventbuffer::controller;
using bench::FromStreamStart;
using F = EventRecord::Field;
using Clock = std::chrono::steady_clock;

const bool kSigpipeIgnored = [] { return std::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

constexpr char kToken[] = "demo-viewer-token";
constexpr char kApi[] = "/apis/eventbuffer.dev/v1alpha1";

std::string Env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v == nullptr || *v == '\0' ? fallback : v;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double ThreadCpuSeconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

// ---- Synthetic occurrences (the shape of query_index_bench) -----------------------------

constexpr std::size_t kObjects = 100'000;
constexpr std::size_t kNamespaces = 200;
constexpr std::int64_t kStartMs = 1'714'557'600'000;  // 2024-05-01T10:00:00Z

using bench::Rfc3339;

// Occurrence i: object i % kObjects in namespace team-(object % 200), 1 s apart (1 % of
// them up to 10 s late), a quarter type=Warning, 80 % of involved objects Pods.
EventRef MakeOccurrence(std::uint64_t i, std::mt19937_64& rng) {
  const std::uint64_t object = i % kObjects;
  const std::string ns = "team-" + std::to_string(object % kNamespaces);
  const std::string pod = "api-7c5ddbdf54-" + std::to_string(object);
  char uid[40];
  std::snprintf(uid, sizeof uid, "a0b1c2d3-e4f5-4a6b-8c7d-%012llx",
                static_cast<unsigned long long>(i));
  std::int64_t t = kStartMs + static_cast<std::int64_t>(i) * 1000;
  if (rng() % 100 == 0) t -= static_cast<std::int64_t>(rng() % 10'000);
  const bool warning = rng() % 4 == 0;
  const std::uint64_t kind = rng() % 10;
  EventRecord::Builder b;
  b.Set(F::kUid, uid)
      .Set(F::kResourceVersion, std::to_string(10'000'000 + i))
      .Set(F::kNamespace, ns)
      .Set(F::kName, pod + "." + std::to_string(0x17cb1e2f3a4b0000ULL + i))
      .Set(F::kInvolvedKind, kind < 8 ? "Pod" : (kind == 8 ? "Deployment" : "ReplicaSet"))
      .Set(F::kInvolvedNamespace, ns)
      .Set(F::kInvolvedName, pod)
      .Set(F::kInvolvedUid, "5f0c8a2e-1b3d-4c6e-9f70-" + std::to_string(100'000'000'000 + object))
      .Set(F::kInvolvedApiVersion, "v1")
      .Set(F::kReason, warning ? "BackOff" : "Pulled")
      .Set(F::kMessage, warning ? "Back-off restarting failed container app in pod " + pod
                                : "Container image \"registry.example.com/shop/app:3.1.0\" "
                                  "already present on machine")
      .Set(F::kType, warning ? "Warning" : "Normal")
      .Set(F::kFirstTimestamp, "2024-05-01T10:00:00Z")
      .Set(F::kLastTimestamp, Rfc3339(t))
      .Set(F::kSourceComponent, "kubelet")
      .Set(F::kSourceHost, "node-" + std::to_string(object % 3))
      .Set(F::kReportingComponent, "kubelet");
  b.numbers().count = 1;
  b.numbers().last_seen_unix_ms = t / 1000 * 1000;  // as the decoder reads lastTimestamp
  b.numbers().receive_unix_ns = t * 1'000'000;
  return b.Build();
}

std::vector<EventRef> MakeOccurrences(std::uint64_t first, std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<EventRef> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(MakeOccurrence(first + i, rng));
  return out;
}

BufferConfig BenchBufferConfig(std::size_t max_events) {
  BufferConfig config;
  config.mode = GrayMode::kAtomic;
  config.rollout_percent = 0;
  config.retention.max_events = max_events;
  config.retention.max_events_per_object = 100'000;
  config.retention.max_age = std::chrono::hours(24 * 365 * 30);
  return config;
}

// ---- The API as served ------------------------------------------------------------------

// The API server's side of delegated auth: kToken is demo-viewer, who may do anything.
class BenchReviewClient final : public ReviewClient {
 public:
  ReviewResponse Post(std::string_view path, const std::string& body) override {
    reviews_.fetch_add(1, std::memory_order_relaxed);
    if (path == kTokenReviewPath) {
      if (body.find(kToken) == std::string::npos) {
        return {201, R"({"status":{"authenticated":false,"error":"invalid token"}})", ""};
      }
      return {201,
              R"({"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{)"
              R"("authenticated":true,"user":{"username":"demo-viewer","uid":"u-1",)"
              R"("groups":["demo-viewers","system:authenticated"]}}})",
              ""};
    }
    if (path == kSubjectAccessReviewPath) {
      const bool allowed = body.find("\"demo-viewer\"") != std::string::npos;
      return {201, std::string(R"({"status":{"allowed":)") + (allowed ? "true" : "false") + "}}",
              ""};
    }
    return {404, "{}", ""};
  }
  std::uint64_t reviews() const { return reviews_.load(); }

 private:
  std::atomic<std::uint64_t> reviews_{0};
};

// From /proc/self/task/TID/schedstat: seconds on a CPU and seconds runnable but waiting
// for one (the scheduler's run queue).
struct SchedTimes {
  double on_cpu = 0;
  double waiting = 0;
};
SchedTimes ThreadSched(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/schedstat");
  unsigned long long run_ns = 0, wait_ns = 0;
  in >> run_ns >> wait_ns;
  return {run_ns / 1e9, wait_ns / 1e9};
}

// The thread ids of this process.
std::vector<pid_t> Tasks() {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    out.push_back(static_cast<pid_t>(std::stol(e.path().filename().string())));
  }
  return out;
}

// The secure port as main.cpp builds it (Server defaults: 1 I/O thread, 4 workers,
// max_requests_inflight 400), over whichever buffer `buffer` points to.
class SecureApi {
 public:
  SecureApi() {
    std::string error;
    auth_ = DelegatingAuth::Create(DelegatedAuthOptions{}, &reviews_, &error);
    if (!auth_) throw std::runtime_error("auth: " + error);
    api_ = std::make_unique<EventsApi>(EventsApi::Hooks{
        .list = [this](const EventQuery& q) { return buffer.load()->List(q); },
        .find = [this](std::string_view ns, std::string_view name,
                       std::string_view rv) { return buffer.load()->Find(ns, name, rv); },
        .now_unix_ms = {}});
    Server::Options o;
    o.name = "secure";
    o.bind_address = "127.0.0.1:0";
    o.tls = true;
    // As the controller runs its secure port: at --serving-nice (default 19), unless
    // KEB_SERVING_SERVER_NICE sets another value (0: equal priority with the watch).
    o.thread_nice = Options{}.serving_nice;
    if (const std::string nice = Env("KEB_SERVING_SERVER_NICE"); !nice.empty()) {
      o.thread_nice = std::atoi(nice.c_str());
    }
    std::fprintf(stderr, "server: threads at nice %d\n", o.thread_nice);
    server_ = std::make_unique<Server>(o, SecureApiHandler(auth_.get(), api_.get()));
    const std::vector<pid_t> before = Tasks();
    if (!server_->Start(&error)) throw std::runtime_error("server: " + error);
    for (pid_t tid : Tasks()) {
      if (std::find(before.begin(), before.end(), tid) == before.end()) server_tids_.push_back(tid);
    }
  }
  ~SecureApi() { server_->Stop(); }

  int port() const { return server_->port(); }
  Server::Stats stats() const { return server_->stats(); }
  std::uint64_t reviews() const { return reviews_.reviews(); }
  // Summed over the server's threads (I/O and workers).
  SchedTimes ServerSched() const {
    SchedTimes sum;
    for (pid_t tid : server_tids_) {
      const SchedTimes t = ThreadSched(tid);
      sum.on_cpu += t.on_cpu;
      sum.waiting += t.waiting;
    }
    return sum;
  }

  // Set while no request runs (between reader phases).
  std::atomic<const EventBuffer*> buffer{nullptr};

 private:
  BenchReviewClient reviews_;
  std::unique_ptr<DelegatingAuth> auth_;
  std::unique_ptr<EventsApi> api_;
  std::unique_ptr<Server> server_;
  std::vector<pid_t> server_tids_;
};

// ---- A blocking HTTPS/1.1 client (keep-alive, Content-Length and chunked bodies) ---------

SSL_CTX* ClientContext() {
  static SSL_CTX* ctx = [] {
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    // Loopback against the server's self-signed certificate: nothing to verify it with.
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    return c;
  }();
  return ctx;
}

class HttpsClient {
 public:
  explicit HttpsClient(int port) : port_(port) {}
  ~HttpsClient() { Close(); }
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  // GETs target with the bearer token. Returns the status (0: transport failure; the next
  // call reconnects) and the body in *body.
  int Get(const std::string& target, std::string* body) {
    body->clear();
    if (ssl_ == nullptr && !Connect()) return 0;
    std::string request = "GET " + target +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + kToken +
                          "\r\nAccept: application/json\r\nUser-Agent: serving_bench\r\n\r\n";
    if (SSL_write(ssl_, request.data(), static_cast<int>(request.size())) <= 0) {
      Close();
      return 0;
    }
    const int status = ReadResponse(body);
    if (status == 0) Close();
    return status;
  }

 private:
  bool Connect() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      Close();
      return false;
    }
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ssl_ = SSL_new(ClientContext());
    SSL_set_fd(ssl_, fd_);
    SSL_set_tlsext_host_name(ssl_, "localhost");
    if (SSL_connect(ssl_) != 1) {
      ERR_clear_error();
      Close();
      return false;
    }
    buf_.clear();
    pos_ = 0;
    return true;
  }
  void Close() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    ssl_ = nullptr;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  bool Fill() {
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    char chunk[64 * 1024];
    const int n = SSL_read(ssl_, chunk, sizeof chunk);
    if (n <= 0) return false;
    buf_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
  // A line (without CRLF) from pos_.
  bool Line(std::string* line) {
    std::size_t eol;
    while ((eol = buf_.find("\r\n", pos_)) == std::string::npos) {
      if (!Fill()) return false;
    }
    line->assign(buf_, pos_, eol - pos_);
    pos_ = eol + 2;
    return true;
  }
  bool Bytes(std::size_t n, std::string* out) {
    while (buf_.size() - pos_ < n) {
      if (!Fill()) return false;
    }
    out->append(buf_, pos_, n);
    pos_ += n;
    return true;
  }
  int ReadResponse(std::string* body) {
    std::string line;
    if (!Line(&line) || line.size() < 12) return 0;
    const int status = std::atoi(line.c_str() + 9);
    std::size_t length = 0;
    bool chunked = false, close_after = false;
    while (true) {
      if (!Line(&line)) return 0;
      if (line.empty()) break;
      std::string lower = line;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower.rfind("content-length:", 0) == 0)
        length = std::strtoull(line.c_str() + 15, nullptr, 10);
      if (lower.rfind("transfer-encoding:", 0) == 0 && lower.find("chunked") != std::string::npos) {
        chunked = true;
      }
      if (lower.rfind("connection:", 0) == 0 && lower.find("close") != std::string::npos) {
        close_after = true;
      }
    }
    if (!chunked) {
      if (!Bytes(length, body)) return 0;
    } else {
      while (true) {
        if (!Line(&line)) return 0;
        const std::size_t size = std::strtoull(line.c_str(), nullptr, 16);
        if (size == 0) {
          do {
            if (!Line(&line)) return 0;
          } while (!line.empty());
          break;
        }
        if (!Bytes(size, body) || !Line(&line)) return 0;
      }
    }
    // Keep what follows (nothing, with one request at a time); drop what was consumed.
    buf_.erase(0, pos_);
    pos_ = 0;
    if (close_after) Close();
    return status;
  }

  const int port_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  std::string buf_;
  std::size_t pos_ = 0;
};

std::size_t CountItems(std::string_view body) {
  std::size_t n = 0;
  for (std::size_t at = body.find("\"involvedObject\":"); at != std::string_view::npos;
       at = body.find("\"involvedObject\":", at + 17)) {
    ++n;
  }
  return n;
}

// The list's continue token ("" when none): the metadata comes before the items.
std::string ContinueToken(std::string_view body) {
  const std::string_view head = body.substr(0, 512);
  const std::size_t at = head.find("\"continue\":\"");
  if (at == std::string_view::npos) return "";
  const std::size_t from = at + 12;
  return std::string(head.substr(from, head.find('"', from) - from));
}

std::string NamespacedList(std::size_t ns, std::string_view field_selector) {
  return std::string(kApi) + "/namespaces/team-" + std::to_string(ns) + "/events?limit=500" +
         (field_selector.empty() ? "" : "&fieldSelector=" + std::string(field_selector));
}
std::string AllNamespacesList(std::string_view field_selector) {
  return std::string(kApi) + "/events?limit=500&fieldSelector=" + std::string(field_selector);
}
constexpr char kKindPod[] = "involvedObject.kind%3DPod";
constexpr char kWarning[] = "type%3DWarning";

bool PinThisThread(const std::string& cpus) {
  if (cpus.empty()) return true;
  cpu_set_t set;
  CPU_ZERO(&set);
  std::stringstream in(cpus);
  std::string cpu;
  while (std::getline(in, cpu, ',')) CPU_SET(std::atoi(cpu.c_str()), &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

// ---- BM_IngestUnderReadLoad -------------------------------------------------------------

class CountingSink final : public EventSink {
 public:
  explicit CountingSink(EventBuffer* buffer) : buffer_(buffer) {}
  void Append(EventRef record) override {
    buffer_->Append(record);
    last_append_ = Clock::now().time_since_epoch().count();
    count_.fetch_add(1, std::memory_order_release);
  }
  std::size_t count() const { return count_.load(std::memory_order_acquire); }
  Clock::time_point last_append() const {
    return Clock::time_point(Clock::duration(last_append_.load()));
  }

 private:
  EventBuffer* buffer_;
  std::atomic<std::size_t> count_{0};
  std::atomic<Clock::rep> last_append_{0};
};

// Readers: each pages through the API as fast as it can (a namespace with
// involvedObject.kind=Pod, or all namespaces with type=Warning, half each; up to 4 pages
// following the continue token, then a new list). Counts only while `measuring`.
class Readers {
 public:
  Readers(int port, int n, std::string cpus) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this, port, i, cpus] { Run(port, i, cpus); });
    }
  }
  ~Readers() { Stop(); }

  void WaitUntilAllServed() {
    while (served_once_.load() < threads_.size()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  void Measure(bool on) { measuring_.store(on); }
  void Stop() {
    stop_.store(true);
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  std::atomic<std::uint64_t> requests{0}, ok{0}, too_many{0}, failed{0}, items{0}, bytes{0};
  std::mutex mu;
  std::vector<double> latencies_ms;
  double cpu_seconds = 0;  // of the reader threads while measuring

 private:
  void Run(int port, int index, const std::string& cpus) {
    PinThisThread(cpus);
    clockid_t cpu_clock;
    pthread_getcpuclockid(pthread_self(), &cpu_clock);
    HttpsClient client(port);
    std::mt19937_64 rng(100 + index);
    std::vector<double> ms;
    std::string body, base, token;
    int pages_left = 0;
    bool was_measuring = false, counted_once = false;
    double cpu_start = 0, cpu = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      if (pages_left == 0 || token.empty()) {
        base = rng() % 2 == 0 ? NamespacedList(rng() % kNamespaces, kKindPod)
                              : AllNamespacesList(kWarning);
        token.clear();
        pages_left = 4;
      }
      const auto t0 = Clock::now();
      const int status = client.Get(token.empty() ? base : base + "&continue=" + token, &body);
      const double took = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      --pages_left;
      token = status == 200 ? ContinueToken(body) : "";
      if (!counted_once) {
        counted_once = true;
        served_once_.fetch_add(1);
      }
      const bool measuring = measuring_.load(std::memory_order_relaxed);
      if (measuring && !was_measuring) cpu_start = ThreadCpuSeconds(cpu_clock);
      if (!measuring && was_measuring) cpu += ThreadCpuSeconds(cpu_clock) - cpu_start;
      was_measuring = measuring;
      if (!measuring) continue;
      requests.fetch_add(1, std::memory_order_relaxed);
      bytes.fetch_add(body.size(), std::memory_order_relaxed);
      if (status == 200) {
        ok.fetch_add(1, std::memory_order_relaxed);
        items.fetch_add(CountItems(body), std::memory_order_relaxed);
        ms.push_back(took);
      } else if (status == 429) {
        too_many.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      } else {
        failed.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (was_measuring) cpu += ThreadCpuSeconds(cpu_clock) - cpu_start;
    std::lock_guard<std::mutex> lock(mu);
    latencies_ms.insert(latencies_ms.end(), ms.begin(), ms.end());
    cpu_seconds += cpu;
  }

  std::vector<std::thread> threads_;
  std::atomic<std::size_t> served_once_{0};
  std::atomic<bool> measuring_{false};
  std::atomic<bool> stop_{false};
};

struct IngestRun {
  double events_per_second = 0;
  double watch_thread_cpu_share = 0;  // CPU seconds of the watch thread / wall seconds
  double watch_wait_share = 0;        // its seconds runnable but not running / wall seconds
  double server_cpu_share = 0;        // CPU seconds of the server's threads / wall seconds
  double process_cpu_seconds = 0;
  double seconds = 0;
  // With readers:
  double requests_per_second = 0, items_per_second = 0, mib_per_second = 0;
  std::uint64_t requests = 0, too_many = 0, failed = 0;
  double reader_cpu_seconds = 0;
  std::vector<double> latencies_ms;
};

IngestRun RunIngest(SecureApi& api, const KubeConfig& kube, const std::string& first_rv,
                    std::size_t expected, const std::vector<EventRef>& prefill, int readers_n,
                    const std::string& reader_cpus) {
  IngestRun out;
  metrics::Metrics metrics({.version = KEB_VERSION, .process_metrics = false});
  auto buffer = std::make_unique<EventBuffer>(
      BenchBufferConfig(std::max<std::size_t>(prefill.size() + expected * 2, 1000)),
      &metrics.buffer());
  for (const auto& r : prefill) buffer->Append(r);
  api.buffer.store(buffer.get());

  std::unique_ptr<Readers> readers;
  if (readers_n > 0) {
    readers = std::make_unique<Readers>(api.port(), readers_n, reader_cpus);
    readers->WaitUntilAllServed();  // connected, TLS done, auth caches warm
  }

  auto token = kube.token_file.empty() ? TokenSource::Static(kube.token)
                                       : TokenSource::FromFile(kube.token_file);
  ApiClient client(kube, token.get(), ApiClient::Options{});
  FromStreamStart lw(&client, first_rv);
  CountingSink sink(buffer.get());
  WatchMetrics watch_metrics(metrics.registry());
  Watcher watcher(&lw, &sink, &watch_metrics, Watcher::Options{});

  if (readers) readers->Measure(true);
  const double cpu_before = ProcessCpuSeconds();
  const auto start = Clock::now();
  std::atomic<pid_t> watch_tid{0};
  std::thread run([&watcher, &watch_tid] {
    watch_tid.store(static_cast<pid_t>(syscall(SYS_gettid)));
    watcher.Run();
  });
  clockid_t watch_clock;
  pthread_getcpuclockid(run.native_handle(), &watch_clock);
  const SchedTimes server_before = api.ServerSched();
  const auto deadline = start + std::chrono::seconds(120);
  while (sink.count() < expected && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto end = sink.last_append();
  if (readers) readers->Measure(false);
  const double watch_cpu = ThreadCpuSeconds(watch_clock);
  out.watch_wait_share = ThreadSched(watch_tid.load()).waiting / Seconds(end - start);
  const SchedTimes server_after = api.ServerSched();
  out.server_cpu_share = (server_after.on_cpu - server_before.on_cpu) / Seconds(end - start);
  out.process_cpu_seconds = ProcessCpuSeconds() - cpu_before;
  watcher.Stop();
  run.join();
  if (readers) readers->Stop();
  // A handler may still be returning after its client read the whole response.
  while (api.stats().requests_inflight > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  api.buffer.store(nullptr);
  if (sink.count() < expected) throw std::runtime_error("stream did not complete within 120 s");

  out.seconds = Seconds(end - start);
  out.events_per_second = static_cast<double>(sink.count()) / out.seconds;
  out.watch_thread_cpu_share = watch_cpu / out.seconds;
  if (readers) {
    // The readers counted until Measure(false), a little after `end`; the stream's window
    // is what matters, and the difference is one poll (1 ms).
    out.requests = readers->requests.load();
    out.too_many = readers->too_many.load();
    out.failed = readers->failed.load();
    out.requests_per_second = static_cast<double>(out.requests) / out.seconds;
    out.items_per_second = static_cast<double>(readers->items.load()) / out.seconds;
    out.mib_per_second = static_cast<double>(readers->bytes.load()) / out.seconds / (1 << 20);
    out.reader_cpu_seconds = readers->cpu_seconds;
    out.latencies_ms = std::move(readers->latencies_ms);
  }
  return out;
}

double Median(std::vector<double> v) { return Quantile(std::move(v), 0.5); }

// As the controller's main() does (controller/malloc_arenas.h), before any thread starts:
// the figures measured here are the controller's.
[[maybe_unused]] const bool kOneMallocArena =
    (eventbuffer::controller::LimitMallocArenas(), true);

void BM_IngestUnderReadLoad(benchmark::State& state) {
  const std::string kubeconfig = Env("KEB_SERVING_KUBECONFIG");
  const std::string first_rv = Env("KEB_SERVING_FIRST_RV");
  const std::size_t expected = std::strtoull(Env("KEB_SERVING_EVENTS").c_str(), nullptr, 10);
  if (kubeconfig.empty() || first_rv.empty() || expected == 0) {
    state.SkipWithError("run through tests/bench/serving_bench.sh (needs the emulator)");
    return;
  }
  const int reps = std::atoi(Env("KEB_SERVING_REPS", "5").c_str());
  const int readers_n = std::atoi(Env("KEB_SERVING_READERS", "16").c_str());
  const std::size_t prefill_n =
      std::strtoull(Env("KEB_SERVING_PREFILL", "200000").c_str(), nullptr, 10);
  const std::string reader_cpus = Env("KEB_SERVING_READER_CPUS");
  InitializeHttpThreads(2);
  KubeConfig kube;
  std::string error;
  if (!LoadKubeconfig(kubeconfig, &kube, &error)) {
    state.SkipWithError(error.c_str());
    return;
  }
  const std::vector<EventRef> prefill = MakeOccurrences(0, prefill_n, 1);
  SecureApi api;
  for (auto _ : state) {
    std::vector<double> alone, loaded, ratios, rps, ips, mibs, watch_alone, watch_loaded, lat;
    std::vector<double> wait_alone, wait_loaded, server_cpu, eff_alone, eff_loaded;
    std::uint64_t too_many = 0, failed = 0;
    double reader_cpu = 0, loaded_seconds = 0, proc_cpu_alone = 0, proc_cpu_loaded = 0;
    for (int rep = 0; rep < reps; ++rep) {
      IngestRun a, l;
      // Alternate which goes first, so a drift in the machine's load hits both alike.
      for (int k = 0; k < 2; ++k) {
        if ((k == 0) == (rep % 2 == 0)) {
          a = RunIngest(api, kube, first_rv, expected, prefill, 0, reader_cpus);
        } else {
          l = RunIngest(api, kube, first_rv, expected, prefill, readers_n, reader_cpus);
        }
      }
      std::fprintf(
          stderr,
          "rep %d: alone %.0f ev/s (watch thread %.0f%% of a CPU, waiting %.0f%%), with "
          "%d readers %.0f ev/s (watch thread %.0f%%, waiting %.0f%%; server threads "
          "%.0f%%): ratio %.2f; readers %.0f req/s %.0f items/s "
          "%.0f MiB/s, p50 %.1f ms p95 %.1f ms, 429s %llu, failed %llu\n",
          rep, a.events_per_second, 100 * a.watch_thread_cpu_share, 100 * a.watch_wait_share,
          readers_n, l.events_per_second, 100 * l.watch_thread_cpu_share, 100 * l.watch_wait_share,
          100 * l.server_cpu_share, l.events_per_second / a.events_per_second,
          l.requests_per_second, l.items_per_second, l.mib_per_second,
          Quantile(l.latencies_ms, 0.5), Quantile(l.latencies_ms, 0.95),
          static_cast<unsigned long long>(l.too_many), static_cast<unsigned long long>(l.failed));
      alone.push_back(a.events_per_second);
      loaded.push_back(l.events_per_second);
      ratios.push_back(l.events_per_second / a.events_per_second);
      rps.push_back(l.requests_per_second);
      ips.push_back(l.items_per_second);
      mibs.push_back(l.mib_per_second);
      watch_alone.push_back(a.watch_thread_cpu_share);
      watch_loaded.push_back(l.watch_thread_cpu_share);
      wait_alone.push_back(a.watch_wait_share);
      wait_loaded.push_back(l.watch_wait_share);
      server_cpu.push_back(l.server_cpu_share);
      eff_alone.push_back(a.events_per_second / a.watch_thread_cpu_share);
      eff_loaded.push_back(l.events_per_second / l.watch_thread_cpu_share);
      lat.insert(lat.end(), l.latencies_ms.begin(), l.latencies_ms.end());
      too_many += l.too_many;
      failed += l.failed;
      reader_cpu += l.reader_cpu_seconds;
      loaded_seconds += l.seconds;
      proc_cpu_alone += a.process_cpu_seconds / a.seconds;
      proc_cpu_loaded += l.process_cpu_seconds / l.seconds;
    }
    state.SetIterationTime(loaded_seconds);
    state.counters["alone_ev_s"] = Median(alone);
    state.counters["loaded_ev_s"] = Median(loaded);
    state.counters["ratio"] = Median(loaded) / Median(alone);
    state.counters["ratio_median_of_pairs"] = Median(ratios);
    state.counters["watch_cpu_alone"] = Median(watch_alone);
    state.counters["watch_cpu_loaded"] = Median(watch_loaded);
    state.counters["watch_wait_alone"] = Median(wait_alone);
    state.counters["watch_wait_loaded"] = Median(wait_loaded);
    // Events per CPU-second of the watch thread: what it costs per event, load aside.
    state.counters["watch_ev_per_cpu_s_alone"] = Median(eff_alone);
    state.counters["watch_ev_per_cpu_s_loaded"] = Median(eff_loaded);
    state.counters["server_cpus_loaded"] = Median(server_cpu);
    state.counters["proc_cpus_alone"] = proc_cpu_alone / reps;
    state.counters["proc_cpus_loaded"] = proc_cpu_loaded / reps;
    state.counters["reader_req_s"] = Median(rps);
    state.counters["reader_items_s"] = Median(ips);
    state.counters["reader_MiB_s"] = Median(mibs);
    state.counters["reader_p50_ms"] = Quantile(lat, 0.5);
    state.counters["reader_p95_ms"] = Quantile(lat, 0.95);
    state.counters["reader_cpus"] = reader_cpu / loaded_seconds;
    state.counters["429s"] = static_cast<double>(too_many);
    state.counters["failed"] = static_cast<double>(failed);
    state.counters["reviews"] = static_cast<double>(api.reviews());
  }
}
BENCHMARK(BM_IngestUnderReadLoad)->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

// ---- Read latency on a realistic buffer -------------------------------------------------

constexpr std::size_t kHeld = 1'000'000;

// The buffer (1M occurrences), the secure API over it, a writer adding ~10,000/s, and
// continue tokens at positions all over the buffer for each kind of page.
class ReadWorld {
 public:
  static ReadWorld& Get() {
    static ReadWorld world;
    return world;
  }
  int port() const { return api_.port(); }
  const SecureApi& api() const { return api_; }
  const std::vector<std::string>& namespaced_targets() const { return namespaced_; }
  const std::vector<std::string>& all_targets() const { return all_; }
  std::uint64_t written() const { return written_.load(); }

  ~ReadWorld() {
    stop_.store(true);
    writer_.join();
    std::fprintf(stderr,
                 "writer: %llu occurrences appended during the run (%.0f/s), %zu evicted by %zu "
                 "retention passes (median %.2f s wall, %.2f s CPU; max %.2f s wall), %zu held\n",
                 static_cast<unsigned long long>(written_.load()),
                 static_cast<double>(written_.load()) / Seconds(Clock::now() - writer_start_),
                 evicted_, retention_seconds_.size(), Quantile(retention_seconds_, 0.5),
                 Quantile(retention_cpu_seconds_, 0.5), Quantile(retention_seconds_, 1.0),
                 buffer_.Stats().backend[1].events);
  }

 private:
  ReadWorld() : buffer_(BenchBufferConfig(kHeld)) {
    const auto t0 = Clock::now();
    {
      std::mt19937_64 rng(1);
      for (std::size_t i = 0; i < kHeld; ++i) buffer_.Append(MakeOccurrence(i, rng));
    }
    api_.buffer.store(&buffer_);
    std::fprintf(stderr, "read world: %zu occurrences held (%.1f s to build)\n",
                 buffer_.Stats().backend[1].events, Seconds(Clock::now() - t0));
    writer_start_ = Clock::now();
    writer_ = std::thread([this] { Write(); });
    // Targets from positions spread over the buffer: walk 40 namespaces and 300 pages of
    // all namespaces, keeping each page's continue token.
    HttpsClient client(port());
    std::string body;
    for (std::size_t ns = 0; ns < kNamespaces; ns += 5) {
      const std::string base = NamespacedList(ns, kKindPod);
      std::string token;
      do {
        namespaced_.push_back(token.empty() ? base : base + "&continue=" + token);
        if (client.Get(namespaced_.back(), &body) != 200) throw std::runtime_error(body);
        token = ContinueToken(body);
      } while (!token.empty());
      namespaced_.pop_back();  // the last page is short
    }
    const std::string base = AllNamespacesList(kWarning);
    std::string token;
    for (int page = 0; page < 300; ++page) {
      all_.push_back(token.empty() ? base : base + "&continue=" + token);
      if (client.Get(all_.back(), &body) != 200) throw std::runtime_error(body);
      token = ContinueToken(body);
      if (token.empty()) break;
    }
  }

  // ~10,000 appends/s (ten a millisecond); a retention pass every 5 s (the controller's
  // default --maintenance-interval) keeps the buffer at 1M.
  void Write() {
    std::mt19937_64 rng(3);
    std::uint64_t next = kHeld;
    auto tick = Clock::now();
    auto retention = tick + std::chrono::seconds(5);
    while (!stop_.load(std::memory_order_relaxed)) {
      for (int k = 0; k < 10; ++k) {
        buffer_.Append(MakeOccurrence(next++, rng));
        written_.fetch_add(1, std::memory_order_relaxed);
      }
      tick += std::chrono::milliseconds(1);
      if (tick >= retention) {
        const auto t0 = Clock::now();
        const double cpu0 = ThreadCpuSeconds(CLOCK_THREAD_CPUTIME_ID);
        evicted_ += buffer_.EnforceRetention(kStartMs + static_cast<std::int64_t>(next) * 1000);
        retention_seconds_.push_back(Seconds(Clock::now() - t0));
        retention_cpu_seconds_.push_back(ThreadCpuSeconds(CLOCK_THREAD_CPUTIME_ID) - cpu0);
        retention = Clock::now() + std::chrono::seconds(5);
      }
      std::this_thread::sleep_until(tick);
    }
  }

  EventBuffer buffer_;
  SecureApi api_;
  std::vector<std::string> namespaced_, all_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> written_{0};
  std::size_t evicted_ = 0;                // by the writer thread; read after it joined
  std::vector<double> retention_seconds_;  // likewise
  std::vector<double> retention_cpu_seconds_;
  Clock::time_point writer_start_;
  std::thread writer_;
};

void BM_Page(benchmark::State& state, bool all_namespaces) {
  ReadWorld& world = ReadWorld::Get();
  const auto& targets = all_namespaces ? world.all_targets() : world.namespaced_targets();
  HttpsClient client(world.port());
  std::string body;
  if (client.Get(targets[0], &body) != 200) {  // connected, caches warm
    state.SkipWithError("warm-up request failed");
    return;
  }
  const std::uint64_t reviews_before = world.api().reviews();
  const SchedTimes server_before = world.api().ServerSched();
  std::mt19937_64 rng(all_namespaces ? 5 : 4);
  std::vector<double> ms;
  std::size_t items = 0, bytes = 0;
  for (auto _ : state) {
    const std::string& target = targets[rng() % targets.size()];
    const auto t0 = Clock::now();
    const int status = client.Get(target, &body);
    const double took = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (status != 200) {
      state.SkipWithError(("status " + std::to_string(status)).c_str());
      return;
    }
    ms.push_back(took);
    items += CountItems(body);
    bytes += body.size();
  }
  state.counters["p50_ms"] = Quantile(ms, 0.50);
  state.counters["p95_ms"] = Quantile(ms, 0.95);
  state.counters["p99_ms"] = Quantile(ms, 0.99);
  state.counters["items_per_page"] = static_cast<double>(items) / static_cast<double>(ms.size());
  state.counters["KiB_per_page"] =
      static_cast<double>(bytes) / static_cast<double>(ms.size()) / 1024;
  state.counters["reviews"] = static_cast<double>(world.api().reviews() - reviews_before);
  const SchedTimes server_after = world.api().ServerSched();
  // The server's own cost per page (authentication, List, JSON, TLS), and how long its
  // threads waited for a CPU per page: the part of the latency that is the machine's load.
  state.counters["server_cpu_ms"] =
      1e3 * (server_after.on_cpu - server_before.on_cpu) / static_cast<double>(ms.size());
  state.counters["server_wait_ms"] =
      1e3 * (server_after.waiting - server_before.waiting) / static_cast<double>(ms.size());
}
BENCHMARK_CAPTURE(BM_Page, namespaced_kind_pod, false)
    ->Iterations(2000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Page, all_namespaces_warning, true)
    ->Iterations(1000)
    ->Unit(benchmark::kMillisecond);

void BM_WalkNamespace(benchmark::State& state) {
  ReadWorld& world = ReadWorld::Get();
  HttpsClient client(world.port());
  std::string body;
  std::size_t items = 0, pages = 0, ns = 0;
  std::vector<double> walk_s;
  const SchedTimes server_before = world.api().ServerSched();
  for (auto _ : state) {
    const auto t0 = Clock::now();
    const std::string base = NamespacedList(ns++ % kNamespaces, "");
    std::string token;
    do {
      if (client.Get(token.empty() ? base : base + "&continue=" + token, &body) != 200) {
        state.SkipWithError(body.c_str());
        return;
      }
      items += CountItems(body);
      ++pages;
      token = ContinueToken(body);
    } while (!token.empty());
    walk_s.push_back(Seconds(Clock::now() - t0));
  }
  const SchedTimes server_after = world.api().ServerSched();
  double wall = 0;
  for (double s : walk_s) wall += s;
  state.counters["items_per_s"] = static_cast<double>(items) / wall;
  state.counters["walk_p50_ms"] = 1e3 * Quantile(walk_s, 0.5);
  state.counters["walk_p95_ms"] = 1e3 * Quantile(walk_s, 0.95);
  // Items per CPU-second of the server's threads: the rate with a core to itself.
  state.counters["items_per_server_cpu_s"] =
      static_cast<double>(items) / (server_after.on_cpu - server_before.on_cpu);
  state.counters["items_per_walk"] =
      static_cast<double>(items) / static_cast<double>(state.iterations());
  state.counters["pages_per_walk"] =
      static_cast<double>(pages) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_WalkNamespace)->Iterations(100)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

#else  // built without the controller

int main() {
  std::puts("serving_bench: built without the controller (-DKEB_WITH_CONTROLLER=OFF): skipped");
  return 0;
}

#endif
