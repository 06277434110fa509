#include "controller/kube/token_source.h"

#include <fstream>
#include <memory>
#include <sstream>

#include "controller/file_text.h"

namespace eventbuffer::controller {

namespace {
// Kubernetes trims surrounding whitespace from token files (a trailing newline is common).
std::string Trim(std::string s) {
  const auto not_space = [](char c) { return c != ' ' && c != '\n' && c != '\r' && c != '\t'; };
  std::size_t b = 0;
  while (b < s.size() && !not_space(s[b])) ++b;
  std::size_t e = s.size();
  while (e > b && !not_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}
}  // namespace

std::unique_ptr<TokenSource> TokenSource::Static(std::string token) {
  auto source = std::make_unique<TokenSource>();
  source->token_ = Trim(std::move(token));
  source->invalid_ = false;
  return source;
}

std::unique_ptr<TokenSource> TokenSource::FromFile(std::string path,
                                                   std::chrono::seconds reload_interval,
                                                   std::function<Clock::time_point()> now) {
  auto source = std::make_unique<TokenSource>();
  source->path_ = std::move(path);
  source->reload_interval_ = reload_interval;
  source->now_ = std::move(now);
  return source;
}

std::string TokenSource::Token() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!path_.empty()) {
    const auto now = now_();
    if (invalid_ || now >= next_reload_) {
      ReadFileLocked();
      // Even when the read failed, wait a full interval (or the next 401) before trying again.
      next_reload_ = now + reload_interval_;
      invalid_ = false;
    }
  }
  return token_;
}

void TokenSource::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  invalid_ = true;
}

int TokenSource::reads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reads_;
}

bool TokenSource::ReadFileLocked() {
  std::string text;
  if (!ReadFileText(path_, &text)) return false;
  std::string token = Trim(text);
  if (token.empty()) return false;  // a file being rewritten: keep the last good token
  token_ = std::move(token);
  ++reads_;
  return true;
}

}  // namespace eventbuffer::controller
