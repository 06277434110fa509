// ConfigWatcher: hot reload of the configuration file.
//
// A Kubernetes ConfigMap volume updates a file by writing a new timestamped directory and
// atomically swapping the `..data` symlink; the file's path stays and its inode changes, so
// inotify on the file or comparing inodes misses updates. The watcher therefore re-reads
// the PATH (following symlinks) every poll interval (default 1 s) and compares the content
// with what it last saw. ReloadNow() reloads at once (main calls it on SIGHUP).
//
// On a change: the text is parsed (controller/config.h); if valid, `apply` receives the new
// BufferConfig and `on_result(true, "")` is called; if invalid, `on_result(false, message)`
// is called with the message naming file, line and field, and nothing is applied — the last
// good configuration stays in force. The same invalid content is reported once, not at
// every poll; ReloadNow retries (and reports) it again.
//
// Thread safety: apply and on_result run on the watcher's thread (or on the caller's, for
// ReloadNow), one at a time. Start/Stop are not meant to race each other; ReloadNow may be
// called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "eventbuffer/buffer_config.h"
#include "eventbuffer/periodic_thread.h"

namespace eventbuffer::controller {

class ConfigWatcher {
 public:
  using ApplyFn = std::function<void(const eventbuffer::BufferConfig&)>;
  // success: the reload was applied; error: the message when it was not.
  using ResultFn = std::function<void(bool success, const std::string& error)>;

  struct Options {
    std::chrono::milliseconds poll_interval{1000};
    // The content already in force (ConfigResult::content of the start-up load): a first
    // poll that finds the same text does nothing. Unset: the first poll applies the file.
    std::optional<std::string> initial_content;
  };

  ConfigWatcher(std::string path, ApplyFn apply, ResultFn on_result, Options options);
  ConfigWatcher(std::string path, ApplyFn apply, ResultFn on_result)
      : ConfigWatcher(std::move(path), std::move(apply), std::move(on_result), Options()) {}
  ~ConfigWatcher();  // Stop()s
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  // Starts the polling thread. No-op when running.
  void Start();
  // Stops and joins the polling thread. No-op when stopped.
  void Stop();

  // Reads and applies the file now, even if unchanged (what SIGHUP does). Returns whether it
  // was applied.
  bool ReloadNow();

  // Reloads attempted (any result) so far; for tests and debugging.
  std::uint64_t reloads() const { return reloads_.load(std::memory_order_relaxed); }

 private:
  // Reads the file; when force or the text differs from last_content_, parses and applies.
  void Check(bool force);

  const std::string path_;
  const ApplyFn apply_;
  const ResultFn on_result_;
  const Options options_;

  std::mutex check_mu_;  // serialises Check (thread and ReloadNow); guards the fields below
  std::optional<std::string> last_content_;
  bool last_ok_ = false;

  PeriodicThread poller_;
  std::atomic<std::uint64_t> reloads_{0};
};

}  // namespace eventbuffer::controller
