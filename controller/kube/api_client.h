// ApiClient: the Kubernetes API client for core/v1 Events over cpprestsdk, the
// ListerWatcher the Watcher runs on. This is the only place that includes cpprestsdk's
// http_client (its headers cost ~10 s of compile time per file).
//
// Requests:  GET /api/v1/events                         (all namespaces), or
//            GET /api/v1/namespaces/NS/events           (one namespace)
//   list:    ?limit=N[&continue=TOKEN]   (no parameter for an unpaged list, limit 0)
//   watch:   ?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=T
// TLS trusts only the cluster CA of the KubeConfig: the certificate store of the TLS
// context is replaced by one that holds that CA alone. With insecure_skip_tls_verify the
// server certificate is not checked (the caller logs a loud warning).
// Auth: "Authorization: Bearer <token>" from the TokenSource. After a 401 the token is
// invalidated (re-read from its file) and the request is retried once.
// Watch streams are read in chunks as they arrive and split into lines (LineSplitter);
// a line cut by a dropped connection is discarded. The inactivity timeout of the HTTP
// client is timeoutSeconds plus a margin, so an idle but healthy watch is never cut by it.
// Bounded reads: a core/v1 Event's message has no length limit short of the object size
// limit, and a broken or hostile server may send anything. A watch line longer than
// max_watch_event_bytes is never held whole: its first max_watch_event_bytes bytes are
// kept, the rest is read and dropped, and the WatchRequest's on_oversized_line gets the
// prefix; the stream goes on. A response body (a list page, an error Status) is read up
// to max_list_page_bytes; beyond it the read stops, the connection is closed and the
// response says body_too_large with the kept prefix in body (the Watcher retries with a
// smaller limit).
//
// Thread safety: List and Watch are meant for one caller thread (the Watcher) but are
// safe to call concurrently; Cancel() may be called from any thread.
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <memory>
#include <string>

#include "controller/kube/kube_config.h"
#include "controller/kube/lister_watcher.h"
#include "controller/kube/token_source.h"

namespace web::http::client {
class http_client_config;
}

namespace eventbuffer::controller {

class ApiClient final : public ListerWatcher {
 public:
  struct Options {
    std::string namespace_name;             // "" = all namespaces
    int list_timeout_seconds = 60;          // inactivity timeout of list requests
    // Added to timeoutSeconds for the client timer.
    int watch_timeout_margin_seconds = kDefaultWatchTimeoutMarginSeconds;
    // How watch lines are read. kChunks (default): read what the socket delivered and split
    // lines here (LineSplitter), which detects a cut last line. kReadLine: cpprestsdk's
    // istream::read_line per line, kept to measure against (tests/bench/e2e_bench.sh); it
    // cannot tell a cut last line from a complete one, is slower, and does not apply
    // max_watch_event_bytes (benchmarks only).
    enum class ReadMode { kChunks, kReadLine };
    ReadMode read_mode = ReadMode::kChunks;
    std::string user_agent = "kube-eventbuffer";
    // The longest watch line (one watch event) that is decoded; longer ones are skipped.
    std::size_t max_watch_event_bytes = kDefaultMaxWatchEventBytes;
    // The most bytes of one response body (a list page) that are read.
    std::size_t max_list_page_bytes = kDefaultMaxListPageBytes;
    // The most bytes of a watch stream (or a list page) read from the socket ahead of the
    // decoder (BoundedBodyBuffer); past it the socket is not read until it catches up.
    std::size_t watch_read_ahead_bytes = kDefaultWatchReadAheadBytes;
  };
  // 4 MiB: well above the API server's object limit (~1.5 MiB) for an Event.
  static constexpr std::size_t kDefaultMaxWatchEventBytes = std::size_t{4} << 20;
  static constexpr std::size_t kDefaultMaxListPageBytes = std::size_t{16} << 20;
  static constexpr std::size_t kDefaultWatchReadAheadBytes = std::size_t{1} << 20;

  // REQUIRES: token outlives the client.
  ApiClient(KubeConfig config, TokenSource* token, Options options);
  ~ApiClient() override;
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  ApiResponse List(const ListRequest& request) override;
  ApiResponse Watch(const WatchRequest& request, const LineHandler& on_line) override;
  void Cancel() override;

  // The request path of the Event collection (for logs and tests).
  std::string CollectionPath() const;

 private:
  struct Impl;
  class RequestScope;
  std::unique_ptr<Impl> impl_;
};

// Sets the size of cpprestsdk's shared thread pool. Must be called before the first
// request or listener (it starts 40 threads otherwise). Idempotent: later calls are
// ignored.
void InitializeHttpThreads(std::size_t threads);

// The TLS trust of every client of the API server: with `config`'s CA (never the system
// store), or without verification when insecure_skip_tls_verify. Used by ApiClient and by
// KubeReviewClient (controller/serving/auth/kube_review_client.h).
void ApplyClusterTls(const KubeConfig& config, web::http::client::http_client_config* cfg);

// A new X509 store holding exactly the certificates of `pem` (owned by the caller), or null
// when no certificate parses.
X509_STORE* X509StoreFromPem(const std::string& pem);

}  // namespace eventbuffer::controller
