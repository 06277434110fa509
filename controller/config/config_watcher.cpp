#include "controller/config/config_watcher.h"

#include <exception>
#include <fstream>
#include <sstream>

#include "controller/config/config.h"
#include "controller/file_text.h"

namespace eventbuffer::controller {

ConfigWatcher::ConfigWatcher(std::string path, ApplyFn apply, ResultFn on_result, Options options)
    : path_(std::move(path)),
      apply_(std::move(apply)),
      on_result_(std::move(on_result)),
      options_(std::move(options)),
      last_content_(options_.initial_content),
      last_ok_(options_.initial_content.has_value()) {}

ConfigWatcher::~ConfigWatcher() { Stop(); }

void ConfigWatcher::Start() {
  // The first look is at once, then one per poll interval.
  poller_.Start(
      options_.poll_interval, [this](auto) { Check(/*force=*/false); },
      [this] { Check(/*force=*/false); });
}

void ConfigWatcher::Stop() { poller_.Stop(); }

bool ConfigWatcher::ReloadNow() {
  Check(/*force=*/true);
  std::lock_guard<std::mutex> lock(check_mu_);
  return last_ok_;
}

void ConfigWatcher::Check(bool force) {
  std::lock_guard<std::mutex> lock(check_mu_);
  std::optional<std::string> content;
  if (std::string text; ReadFileText(path_, &text)) content = std::move(text);
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
