#include "controller/kube/api_client.h"

#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pplx/threadpool.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <list>
#include <mutex>
#include <vector>

#include "controller/kube/bounded_body_buffer.h"
#include "controller/kube/line_splitter.h"

namespace eventbuffer::controller {

namespace http = web::http;
namespace client = web::http::client;

namespace {

double RetryAfterSeconds(const http::http_headers& headers) {
  auto it = headers.find("Retry-After");
  if (it == headers.end()) return -1;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (end == it->second.c_str() || v < 0) return -1;  // an HTTP-date: not used by kube
  return v;
}

// Appends `part` to *out, allocating at most `cap` bytes: grows geometrically up to the
// cap (a fresh string's reserve allocates what it is asked for; growing in place may
// round up to twice the old capacity). REQUIRES: out->size() + part.size() <= cap.
void AppendCapped(std::string_view part, std::size_t cap, std::string* out) {
  const std::size_t need = out->size() + part.size();
  if (need > out->capacity()) {
    std::string bigger;
    bigger.reserve(std::max(need, std::min(cap, out->capacity() * 2)));
    bigger.append(*out);
    out->swap(bigger);
  }
  out->append(part);
}

// Hands the bytes of a response body to fn as they arrive, until fn returns false (then
// returns false) or the body ends (returns true). Zero-copy: the bytes already received
// are read straight out of the response buffer's front block (acquire/release); copying
// them out first cost ~4 % of the CPU per event at full watch rate. With nothing buffered
// it waits for the next byte (a getn of one byte completes as soon as any data arrives).
template <class Fn>
bool ForEachBodyBlock(concurrency::streams::streambuf<std::uint8_t> buffer, Fn&& fn) {
  unsigned char one = 0;
  for (;;) {
    unsigned char* data = nullptr;
    std::size_t count = 0;
    if (buffer.acquire(data, count) && count > 0) {
      const bool more = fn(std::string_view(reinterpret_cast<const char*>(data), count));
      buffer.release(data, count);
      if (!more) return false;
      continue;
    }
    if (buffer.getn(&one, 1).get() == 0) return true;
    if (!fn(std::string_view(reinterpret_cast<const char*>(&one), 1))) return false;
  }
}

// Reads a response body into *out, at most `cap` bytes. Returns false when the body is
// longer: *out then holds its first `cap` bytes and the rest is left unread.
bool ReadBounded(const concurrency::streams::streambuf<std::uint8_t>& body, std::size_t cap,
                 std::string* out) {
  return ForEachBodyBlock(body, [&](std::string_view block) {
    const std::size_t room = cap - out->size();
    AppendCapped(block.substr(0, room), cap, out);
    return block.size() <= room;
  });
}

// The body of a watch response that is not 200 (a Status) is short; more is not read.
constexpr std::size_t kMaxWatchErrorBodyBytes = std::size_t{1} << 20;

// When a watch's read ends for any reason: stops its body buffer (a no-op after the
// body's end) and reports how far it was read ahead.
struct FinishOnExit {
  std::shared_ptr<BoundedBodyBuffer> buffer;  // null in the read_line mode
  std::uint64_t* peak_read_ahead_bytes;
  ~FinishOnExit() {
    if (!buffer) return;
    buffer->Stop();
    *peak_read_ahead_bytes = buffer->peak_unread_bytes();
  }
};

// How long ApiClient::Cancel lets a stopped request (a watch, or a list whose page is being
// read) end on its own before cancelling it: a body with bytes coming ends at its next write
// to the stopped buffer (microseconds); one that stays idle this long is cancelled.
constexpr std::chrono::milliseconds kStoppedRequestGrace{250};

}  // namespace

X509_STORE* X509StoreFromPem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return nullptr;
  X509_STORE* store = X509_STORE_new();
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (X509_STORE_add_cert(store, cert) == 1) ++added;
    X509_free(cert);
  }
  ERR_clear_error();  // the loop ends on "no start line"
  BIO_free(bio);
  if (added == 0) {
    X509_STORE_free(store);
    return nullptr;
  }
  return store;
}

void ApplyClusterTls(const KubeConfig& config, client::http_client_config* cfg) {
  cfg->set_validate_certificates(!config.insecure_skip_tls_verify);
  if (config.insecure_skip_tls_verify || config.ca_pem.empty()) return;
  const std::string pem = config.ca_pem;
  cfg->set_ssl_context_callback([pem](boost::asio::ssl::context& ctx) {
    // Replace the store (which holds the system CAs) by one with the cluster CA only.
    X509_STORE* store = X509StoreFromPem(pem);
    if (store == nullptr) {
      store = X509_STORE_new();  // trust nothing rather than the system store
      spdlog::error("cluster CA does not contain a parsable certificate");
    }
    SSL_CTX_set_cert_store(ctx.native_handle(), store);
  });
}

void InitializeHttpThreads(std::size_t threads) {
  static std::once_flag once;
  std::call_once(once, [threads] { crossplat::threadpool::initialize_with_threads(threads); });
}

struct ApiClient::Impl {
  KubeConfig config;
  TokenSource* token;
  Options options;
  std::string path;
  // The requests in flight, so that Cancel() can end them. Cancel() sets `cancelled` and
  // ends every request under `mu`; a request registers under `mu` only while `cancelled` is
  // false, so no request can slip past Cancel().
  //
  // A request whose response has arrived (a watch, a list) is not cancelled but stopped:
  // Cancel() stops its body buffer, which ends the request on cpprestsdk's own thread at the
  // next write (a cancel closes the socket from the cancelling thread while an I/O thread
  // may be reading it: corrupt body bytes or a crash). Only one still running after
  // kStoppedRequestGrace (an idle stream, nothing being read on its socket) is cancelled then.
  struct Active {
    pplx::cancellation_token_source source;
    std::shared_ptr<BoundedBodyBuffer> body;  // the request's bounded body buffer, or null
  };
  std::mutex mu;
  std::list<Active> active;  // guarded by mu
  std::atomic<bool> cancelled{false};
  std::unique_ptr<client::http_client> list_client;

  client::http_client_config MakeConfig(int timeout_seconds) const {
    client::http_client_config cfg;
    cfg.set_timeout(std::chrono::seconds(timeout_seconds));
    ApplyClusterTls(config, &cfg);
    return cfg;
  }

  http::http_request MakeRequest(const std::string& uri) const {
    http::http_request request(http::methods::GET);
    request.set_request_uri(uri);
    request.headers().add("Accept", "application/json");
    request.headers().add("User-Agent", options.user_agent);
    const std::string bearer = token->Token();
    if (!bearer.empty()) request.headers().add("Authorization", "Bearer " + bearer);
    return request;
  }

  // Registers a cancellation source for one request; null when the client is cancelled.
  std::list<Active>::iterator Begin(bool* ok) {
    std::lock_guard<std::mutex> lock(mu);
    *ok = !cancelled.load(std::memory_order_acquire);
    if (!*ok) return active.end();
    return active.emplace(active.end());
  }
  void End(std::list<Active>::iterator it) {
    std::lock_guard<std::mutex> lock(mu);
    active.erase(it);
  }

  // Runs attempt(scope, result) for one request, and once more when the server answered
  // 401 and the token comes from a file (it may have rotated under us: Invalidate makes the
  // next request re-read it). Every 401 invalidates the token. Returns at once, cancelled,
  // when the client is cancelled. Defined after RequestScope.
  template <class Attempt>
  ApiResponse WithTokenRetry(Attempt&& attempt);
};

ApiClient::ApiClient(KubeConfig config, TokenSource* token, Options options)
    : impl_(std::make_unique<Impl>()) {
  impl_->config = std::move(config);
  impl_->token = token;
  impl_->options = std::move(options);
  impl_->path = impl_->options.namespace_name.empty()
                    ? "/api/v1/events"
                    : "/api/v1/namespaces/" +
                          web::uri::encode_data_string(impl_->options.namespace_name) + "/events";
  impl_->list_client = std::make_unique<client::http_client>(
      impl_->config.server, impl_->MakeConfig(impl_->options.list_timeout_seconds));
}

ApiClient::~ApiClient() = default;

std::string ApiClient::CollectionPath() const { return impl_->path; }

void ApiClient::Cancel() {
  std::vector<Impl::Active> stopped;  // requests whose body is being read
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->cancelled.store(true, std::memory_order_release);
    for (Impl::Active& request : impl_->active) {
      if (request.body) {
        request.body->Stop();  // the response ends at its next write, the reader wakes
        // Before its headers no body is being read: the request is cancelled.
        if (request.body->response_attached()) {
          stopped.push_back(request);
          continue;
        }
      }
      request.source.cancel();
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + kStoppedRequestGrace;
  for (Impl::Active& request : stopped) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!request.body->WaitResponseDone(std::max(left, std::chrono::milliseconds(0)))) {
      request.source.cancel();  // idle: nothing is being read on its socket
    }
  }
}

// Scope of one request's cancellation source.
class ApiClient::RequestScope {
 public:
  explicit RequestScope(Impl* impl) : impl_(impl) { it_ = impl_->Begin(&ok_); }
  ~RequestScope() {
    if (ok_) impl_->End(it_);
  }
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;
  bool ok() const { return ok_; }
  pplx::cancellation_token token() const { return it_->source.get_token(); }
  void Cancel() { it_->source.cancel(); }
  // Gives `request` a bounded body buffer of `limit` bytes of read-ahead as its response
  // stream, and registers it for Cancel() to stop instead of cancelling.
  std::shared_ptr<BoundedBodyBuffer> BoundBody(http::http_request* request, std::size_t limit) {
    auto body = std::make_shared<BoundedBodyBuffer>(limit);
    request->set_response_stream(
        concurrency::streams::streambuf<std::uint8_t>(body).create_ostream());
    std::lock_guard<std::mutex> lock(impl_->mu);
    it_->body = body;
    return body;
  }

 private:
  Impl* impl_;
  bool ok_ = false;
  std::list<Impl::Active>::iterator it_;
};

template <class Attempt>
ApiResponse ApiClient::Impl::WithTokenRetry(Attempt&& attempt) {
  ApiResponse result;
  for (int i = 0; i < 2; ++i) {
    result = ApiResponse{};
    RequestScope scope(this);
    if (!scope.ok()) {
      result.cancelled = true;
      return result;
    }
    attempt(scope, result);
    if (result.http_status != 401) return result;
    token->Invalidate();
    if (!token->from_file()) return result;
  }
  return result;
}

ApiResponse ApiClient::List(const ListRequest& request) {
  // Each parameter starts with '&'; the first one's becomes '?'. limit 0: an unpaged
  // list, sent without the parameter.
  std::string query;
  if (request.limit > 0) query += "&limit=" + std::to_string(request.limit);
  if (!request.continue_token.empty()) {
    query += "&continue=" + web::uri::encode_data_string(request.continue_token);
  } else if (!request.resource_version.empty()) {
    query += "&resourceVersion=" + web::uri::encode_data_string(request.resource_version);
  }
  if (!query.empty()) query[0] = '?';
  const std::string uri = impl_->path + query;
  return impl_->WithTokenRetry([this, &uri](RequestScope& scope, ApiResponse& result) {
    // The page goes through a bounded buffer, as a watch does: cpprestsdk reads at most
    // options.watch_read_ahead_bytes ahead of the copy into result.body, and a page over the
    // cap is not read on: the buffer is stopped on return, so its next write fails and
    // cpprestsdk drops the connection on its own thread (no cancel, no read to the end).
    http::http_request http_request = impl_->MakeRequest(uri);
    const std::shared_ptr<BoundedBodyBuffer> bounded =
        scope.BoundBody(&http_request, impl_->options.watch_read_ahead_bytes);
    std::uint64_t peak_read_ahead_bytes = 0;
    FinishOnExit finish{bounded, &peak_read_ahead_bytes};
    try {
      http::http_response response = impl_->list_client->request(http_request, scope.token()).get();
      result.http_status = response.status_code();
      result.retry_after_seconds = RetryAfterSeconds(response.headers());
      BoundedBodyBuffer::CloseWriteWhenDone(response, bounded);
      if (!ReadBounded(concurrency::streams::streambuf<std::uint8_t>(bounded),
                       impl_->options.max_list_page_bytes, &result.body)) {
        result.body_too_large = true;  // the rest is never read
      }
    } catch (const std::exception& e) {
      result.http_status = 0;
      result.transport_error = e.what();
      result.cancelled = impl_->cancelled.load(std::memory_order_acquire);
    }
  });
}

ApiResponse ApiClient::Watch(const WatchRequest& request, const LineHandler& on_line) {
  std::string uri = impl_->path +
                    "?watch=1&allowWatchBookmarks=" + (request.allow_bookmarks ? "true" : "false") +
                    "&timeoutSeconds=" + std::to_string(request.timeout_seconds);
  if (!request.resource_version.empty()) {
    uri += "&resourceVersion=" + web::uri::encode_data_string(request.resource_version);
  }
  // One client per watch: its inactivity timer must outlast timeoutSeconds.
  client::http_client watch_client(
      impl_->config.server,
      impl_->MakeConfig(request.timeout_seconds + impl_->options.watch_timeout_margin_seconds));

  const OversizedLineHandler& on_oversized = request.on_oversized_line;
  return impl_->WithTokenRetry([this, &watch_client, &uri, &on_line, &on_oversized](
                                   RequestScope& scope, ApiResponse& result) {
    bool got_headers = false;
    LineSplitter splitter(std::max<std::size_t>(1, impl_->options.max_watch_event_bytes));
    // Lines over the cap: to the request's handler, or dropped.
    auto oversized = [&on_oversized](std::string_view prefix, std::uint64_t bytes) {
      return on_oversized ? on_oversized(prefix, bytes) : true;
    };
    auto feed = [&](std::string_view chunk) {
      const bool more = splitter.Feed(chunk, on_line, oversized);
      result.peak_line_buffer_bytes =
          std::max<std::uint64_t>(result.peak_line_buffer_bytes, splitter.buffer_capacity());
      return more;
    };
    const bool read_lines = impl_->options.read_mode == Options::ReadMode::kReadLine;
    // The body goes through a bounded buffer (not for the read_line mode, which reads the
    // response's own): at most options.watch_read_ahead_bytes are read ahead of the
    // decoder, and stopping early needs no cancel.
    std::shared_ptr<BoundedBodyBuffer> bounded;
    http::http_request http_request = impl_->MakeRequest(uri);
    if (!read_lines) {
      bounded = scope.BoundBody(&http_request, impl_->options.watch_read_ahead_bytes);
    }
    FinishOnExit finish{bounded, &result.peak_read_ahead_bytes};
    try {
      http::http_response response = watch_client.request(http_request, scope.token()).get();
      got_headers = true;
      result.http_status = response.status_code();
      result.retry_after_seconds = RetryAfterSeconds(response.headers());
      if (bounded) BoundedBodyBuffer::CloseWriteWhenDone(response, bounded);
      const concurrency::streams::streambuf<std::uint8_t> body =
          bounded ? concurrency::streams::streambuf<std::uint8_t>(bounded)
                  : response.body().streambuf();
      if (result.http_status != 200) {
        // A Status; a 401 is retried by WithTokenRetry. A longer body is not read on: a
        // bounded buffer is stopped on return, the read_line mode's request is cancelled.
        if (!ReadBounded(body, kMaxWatchErrorBodyBytes, &result.body)) {
          result.body_too_large = true;
          if (!bounded) scope.Cancel();
        }
        return;
      }
      if (read_lines) {
        auto lines = response.body();
        for (;;) {
          concurrency::streams::container_buffer<std::string> line;
          const std::size_t n = lines.read_line(line).get();
          if (n == 0 && lines.is_eof()) break;
          if (!on_line(line.collection())) {
            scope.Cancel();
            break;
          }
        }
        return;
      }
      // Until the handler is done or the server closes the watch. When the handler is
      // done with this stream (ERROR event, bad line, shutdown), the buffer is stopped on
      // return: the connection is dropped without reading the rest.
      const bool keep_going = ForEachBodyBlock(body, feed);
      if (!keep_going) splitter.Reset();
      if (splitter.HasPartial()) {
        result.stream_cut = true;
        result.transport_error = "stream ended inside a line";
      }
    } catch (const std::exception& e) {
      result.transport_error = e.what();
      result.cancelled = impl_->cancelled.load(std::memory_order_acquire);
      if (!got_headers) {
        result.http_status = 0;
      } else {
        result.stream_cut = true;  // the connection broke after 200
      }
    }
  });
}

}  // namespace eventbuffer::controller
