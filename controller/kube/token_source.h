// TokenSource: the bearer token for API requests.
//
// Bound service-account tokens rotate (about hourly), so a token that comes from a file is
// re-read from that file at least every `reload_interval` and at once after the API server
// answered 401 (Invalidate()). A read failure keeps the last good token. The token text is
// never logged by this class and must not be logged by callers.
//
// Thread safety: all methods may be called from any thread at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace eventbuffer::controller {

class TokenSource {
 public:
  using Clock = std::chrono::steady_clock;

  // No token at all (Token() returns "").
  TokenSource() = default;
  // A fixed token (kubeconfig `token`).
  static std::unique_ptr<TokenSource> Static(std::string token);
  // A token read from `path` (in-cluster token file, kubeconfig `tokenFile`).
  // `now` is the clock, replaceable in tests.
  static std::unique_ptr<TokenSource> FromFile(
      std::string path, std::chrono::seconds reload_interval = std::chrono::seconds(60),
      std::function<Clock::time_point()> now = [] { return Clock::now(); });

  TokenSource(const TokenSource&) = delete;
  TokenSource& operator=(const TokenSource&) = delete;

  // The current token, re-read from the file when due. "" when none is known.
  std::string Token();
  // Marks the cached token as rejected: the next Token() re-reads the file.
  void Invalidate();
  // True when the token comes from a file.
  bool from_file() const { return !path_.empty(); }
  // Number of successful file reads so far (for tests and logs).
  int reads() const;

 private:
  bool ReadFileLocked();  // REQUIRES: mu_ held.

  mutable std::mutex mu_;
  std::string token_;
  std::string path_;
  std::chrono::seconds reload_interval_{60};
  std::function<Clock::time_point()> now_;
  Clock::time_point next_reload_{};
  bool invalid_ = true;
  int reads_ = 0;
};

}  // namespace eventbuffer::controller
