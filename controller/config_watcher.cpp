#include "controller/config_watcher.h"

#include <csignal>
#include <exception>
#include <fstream>
#include <sstream>

#include "controller/config.h"

namespace eventbuffer::controller {

namespace {

// Counted by the SIGHUP handler, read by every watcher. A lock-free atomic is
// async-signal-safe to modify from a handler.
std::atomic<std::uint64_t> g_sighups{0};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

extern "C" void OnSighup(int) { ConfigWatcher::NotifySighup(); }

// How often the thread looks at the SIGHUP counter between polls.
constexpr std::chrono::milliseconds kTick{100};

}  // namespace

void ConfigWatcher::NotifySighup() noexcept { g_sighups.fetch_add(1, std::memory_order_relaxed); }

void ConfigWatcher::InstallSighupHandler() {
  struct sigaction sa = {};
  sa.sa_handler = OnSighup;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGHUP, &sa, nullptr);
}

ConfigWatcher::ConfigWatcher(std::string path, ApplyFn apply, ResultFn on_result, Options options)
    : path_(std::move(path)),
      apply_(std::move(apply)),
      on_result_(std::move(on_result)),
      options_(std::move(options)),
      last_content_(options_.initial_content),
      last_ok_(options_.initial_content.has_value()) {}

ConfigWatcher::~ConfigWatcher() { Stop(); }

void ConfigWatcher::Start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(run_mu_);
    stop_ = false;
  }
  seen_sighups_ = g_sighups.load(std::memory_order_relaxed);
  thread_ = std::thread([this] { Run(); });
}

void ConfigWatcher::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(run_mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool ConfigWatcher::ReloadNow() {
  Check(/*force=*/true);
  std::lock_guard<std::mutex> lock(check_mu_);
  return last_ok_;
}

void ConfigWatcher::Run() {
  auto next_poll = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(run_mu_);
  while (!stop_) {
    const std::uint64_t sighups = g_sighups.load(std::memory_order_relaxed);
    const bool hup = sighups != seen_sighups_;
    const auto now = std::chrono::steady_clock::now();
    if (hup || now >= next_poll) {
      seen_sighups_ = sighups;
      lock.unlock();
      Check(/*force=*/hup);
      lock.lock();
      next_poll = std::chrono::steady_clock::now() + options_.poll_interval;
      continue;
    }
    cv_.wait_for(lock, std::min<std::chrono::steady_clock::duration>(kTick, next_poll - now),
                 [this] { return stop_; });
  }
}

void ConfigWatcher::Check(bool force) {
  std::lock_guard<std::mutex> lock(check_mu_);
  std::ifstream in(path_, std::ios::binary);
  std::optional<std::string> content;
  if (in) {
    std::ostringstream text;
    text << in.rdbuf();
    content = text.str();
  }
  if (!force && content == last_content_) return;  // unchanged (also: still unreadable)
  last_content_ = content;
  reloads_.fetch_add(1, std::memory_order_relaxed);
  if (!content) {
    last_ok_ = false;
    if (on_result_) {
      on_result_(false, path_ + ": cannot read; keeping the last good configuration");
    }
    return;
  }
  const ConfigResult parsed = ParseConfig(*content, path_);
  last_ok_ = parsed.ok();
  if (!parsed.ok()) {
    if (on_result_) on_result_(false, parsed.error + "; keeping the last good configuration");
    return;
  }
  if (apply_) {
    try {
      apply_(parsed.config);
    } catch (const std::exception& e) {
      last_ok_ = false;
      if (on_result_) on_result_(false, path_ + ": not applied: " + e.what());
      return;
    }
  }
  if (on_result_) on_result_(true, "");
}

}  // namespace eventbuffer::controller
