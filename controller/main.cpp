// eventbuffer-controller: wiring only. Flags -> logging -> configuration -> EventBuffer and
// metrics -> API client and Watcher (watch thread) -> read/health server -> maintenance
// thread -> wait for SIGTERM/SIGINT -> orderly shutdown with a final stats line.
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <thread>

#include "controller/config/config.h"
#include "controller/config/config_watcher.h"
#include "controller/config/options.h"
#include "controller/json_text.h"
#include "controller/kube/api_client.h"
#include "controller/kube/kube_config.h"
#include "controller/kube/token_source.h"
#include "controller/kube/watch_metrics.h"
#include "controller/kube/watcher.h"
#include "controller/logging.h"
#include "controller/mismatch_logger.h"
#include "controller/serving/http_server.h"
#include "controller/serving/read_api.h"
#include "eventbuffer/event_buffer.h"
#include "eventbuffer/periodic_thread.h"
#include "metrics/metrics.h"

namespace ebc = eventbuffer::controller;
using eventbuffer::BufferConfig;
using eventbuffer::EventBuffer;

namespace {

// The EventSink of the Watcher: every occurrence goes to EventBuffer::Append.
class BufferSink final : public ebc::EventSink {
 public:
  explicit BufferSink(EventBuffer* buffer) : buffer_(buffer) {}
  void Append(eventbuffer::EventRef record) override { buffer_->Append(record); }
  void OnSynced() override {
    synced_.store(true, std::memory_order_release);
    spdlog::info("first list is in the buffer: ready");
  }
  bool synced() const { return synced_.load(std::memory_order_acquire); }

 private:
  EventBuffer* buffer_;
  std::atomic<bool> synced_{false};
};

std::string BufferStatusJson(const EventBuffer& buffer) {
  const BufferConfig config = buffer.config();
  const eventbuffer::BufferStats stats = buffer.Stats();
  std::string out = "{\"mode\":";
  ebc::AppendJsonString(&out, eventbuffer::GrayModeName(config.mode));
  out += fmt::format(",\"rolloutPercent\":{}", config.rollout_percent);
  out += ",\"backends\":{";
  for (std::size_t b = 0; b < eventbuffer::kBackendCount; ++b) {
    if (b > 0) out += ",";
    ebc::AppendJsonKey(&out, eventbuffer::BackendName(static_cast<eventbuffer::Backend>(b)));
    out += "{\"objects\":" + std::to_string(stats.backend[b].objects) +
           ",\"events\":" + std::to_string(stats.backend[b].events) +
           ",\"bytes\":" + std::to_string(stats.backend[b].bytes) + "}";
  }
  out += "},\"appended\":" + std::to_string(stats.appended);
  out += ",\"dedupHits\":" + std::to_string(stats.dedup_hits);
  out += ",\"evictions\":" + std::to_string(stats.evictions);
  out += ",\"recordBytes\":" + std::to_string(stats.record_bytes);
  std::uint64_t total = 0;
  out += ",\"mismatches\":{";
  for (std::size_t k = 0; k < eventbuffer::kMismatchKindCount; ++k) {
    ebc::AppendJsonKey(&out,
                       eventbuffer::MismatchKindName(static_cast<eventbuffer::MismatchKind>(k)));
    out += std::to_string(stats.mismatches[k]) + ",";
    total += stats.mismatches[k];
  }
  out += "\"total\":" + std::to_string(total) + "}";
  out += ",\"verifications\":{";
  for (std::size_t r = 0; r < eventbuffer::kVerifyResultCount; ++r) {
    if (r > 0) out += ",";
    ebc::AppendJsonKey(&out,
                       eventbuffer::VerifyResultName(static_cast<eventbuffer::VerifyResult>(r)));
    out += std::to_string(stats.verifications[r]);
  }
  out += "}}";
  return out;
}

std::string WatchStatusJson(const ebc::WatcherStatus& s) {
  std::string out = "{\"state\":";
  ebc::AppendJsonString(&out, ebc::WatchStateName(s.state));
  out += ",\"synced\":";
  out += s.synced ? "true" : "false";
  out += ",\"resourceVersion\":";
  ebc::AppendJsonString(&out, s.resource_version);
  out += ",\"lists\":" + std::to_string(s.lists);
  out += ",\"listRequests\":" + std::to_string(s.list_requests);
  out += ",\"watchRequests\":" + std::to_string(s.watch_requests);
  out += ",\"events\":" + std::to_string(s.events);
  out += ",\"bookmarks\":" + std::to_string(s.bookmarks);
  out += ",\"restarts\":" + std::to_string(s.restarts);
  out += ",\"listDecodeFailures\":" + std::to_string(s.list_decode_failures);
  out += ",\"watchDecodeFailures\":" + std::to_string(s.watch_decode_failures);
  out += ",\"lastProgressUnixMs\":" + std::to_string(s.last_progress_unix_ms) + "}";
  return out;
}

std::int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Resolves where the API server is: --kubeconfig, else in-cluster, else $KUBECONFIG.
bool ResolveKubeConfig(const ebc::Options& options, ebc::KubeConfig* config, std::string* error) {
  const ebc::GetEnv env = ebc::ProcessEnv();
  if (!options.kubeconfig.empty()) return ebc::LoadKubeconfig(options.kubeconfig, config, error);
  if (ebc::InClusterAvailable(env)) {
    return ebc::LoadInClusterConfig(env, ebc::kServiceAccountDir, config, error);
  }
  if (auto path = env("KUBECONFIG"); path && !path->empty()) {
    return ebc::LoadKubeconfig(*path, config, error);
  }
  *error = "no cluster: pass --kubeconfig PATH, set KUBECONFIG, or run in a pod";
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  ebc::Options options;
  std::string error;
  if (!ebc::ParseOptions(std::vector<std::string>(argv + 1, argv + argc), &options, &error)) {
    std::fprintf(stderr, "eventbuffer-controller: %s\n", error.c_str());
    return 2;
  }
  if (options.help) {
    std::cout << ebc::Usage();
    return 0;
  }
  if (options.version) {
    std::cout << "eventbuffer-controller " << KEB_VERSION << "\n";
    return 0;
  }
  if (!options.check_config.empty()) {
    const ebc::ConfigResult result = ebc::LoadConfigFile(options.check_config);
    if (!result.ok()) {
      std::cout << result.error << "\n";
      return 1;
    }
    std::cout << "OK\n";
    return 0;
  }
  if (!ebc::SetupLogging(options.log_format, options.log_level)) {
    std::fprintf(stderr, "eventbuffer-controller: bad --log-level %s\n", options.log_level.c_str());
    return 2;
  }

  // Signals are taken by sigwait in this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // cpprestsdk starts 40 threads unless told otherwise before its first use.
  ebc::InitializeHttpThreads(static_cast<std::size_t>(options.http_threads));

  BufferConfig buffer_config;
  std::string config_content;
  if (!options.config_path.empty()) {
    ebc::ConfigResult result = ebc::LoadConfigFile(options.config_path);
    if (!result.ok()) {
      spdlog::critical("configuration rejected: {}", result.error);
      return 1;
    }
    buffer_config = result.config;
    config_content = std::move(result.content);
  }
  if (const std::string invalid = eventbuffer::ValidateBufferConfig(buffer_config);
      !invalid.empty()) {
    spdlog::critical("configuration: {}", invalid);
    return 1;
  }

  ebc::KubeConfig kube;
  if (!ResolveKubeConfig(options, &kube, &error)) {
    spdlog::critical("{}", error);
    return 1;
  }
  if (kube.insecure_skip_tls_verify) {
    spdlog::warn(
        "INSECURE: insecure-skip-tls-verify is set for {}: the API server's certificate is NOT "
        "verified; anyone on the path can read and forge the events",
        kube.server);
  }
  spdlog::info(
      "eventbuffer-controller {} starting: {} watch={}", KEB_VERSION, kube.Describe(),
      options.namespace_name.empty() ? "all namespaces" : "namespace " + options.namespace_name);

  eventbuffer::metrics::Metrics metrics({.version = KEB_VERSION});
  EventBuffer buffer(buffer_config, &metrics.buffer());
  metrics.buffer().SetSizeSource([&buffer] {
    const auto stats = buffer.Stats();
    eventbuffer::metrics::BufferSizes sizes;
    for (std::size_t b = 0; b < eventbuffer::kBackendCount; ++b) {
      sizes.backend[b].objects = stats.backend[b].objects;
      sizes.backend[b].events = stats.backend[b].events;
      sizes.backend[b].bytes = stats.backend[b].bytes;
    }
    sizes.record_bytes = stats.record_bytes;
    return sizes;
  });
  ebc::MismatchLogger mismatch_logger;
  buffer.SetMismatchSink(
      [&mismatch_logger](const eventbuffer::MismatchReport& r) { mismatch_logger.Log(r); });
  std::unique_ptr<ebc::ConfigWatcher> config_watcher;
  if (!options.config_path.empty()) {
    ebc::ConfigWatcher::Options watch_options;
    watch_options.initial_content = config_content;
    config_watcher = std::make_unique<ebc::ConfigWatcher>(
        options.config_path,
        [&buffer](const BufferConfig& next) {
          buffer.Reconfigure(next);
          spdlog::info("configuration applied: mode={} rolloutPercent={}",
                       eventbuffer::GrayModeName(next.mode), next.rollout_percent);
        },
        [&metrics](bool success, const std::string& message) {
          metrics.buffer().OnConfigReload(success);
          if (!success)
            spdlog::error("configuration rejected, keeping the current one: {}", message);
        },
        watch_options);
    config_watcher->Start();
  }
  metrics.StartPauseMonitor();
  if (options.metrics_bind_address != "0") {
    try {
      // ":8080" means all interfaces; say so explicitly for the exposer.
      std::string address = options.metrics_bind_address;
      if (!address.empty() && address.front() == ':') address = "0.0.0.0" + address;
      metrics.Serve(address);
    } catch (const std::exception& e) {
      spdlog::critical("cannot serve metrics on {}: {}", options.metrics_bind_address, e.what());
      return 1;
    }
  }

  std::unique_ptr<ebc::TokenSource> token;
  if (!kube.token_file.empty()) {
    token = ebc::TokenSource::FromFile(kube.token_file);
  } else {
    token = ebc::TokenSource::Static(kube.token);
  }
  ebc::ApiClient::Options client_options;
  client_options.namespace_name = options.namespace_name;
  client_options.user_agent = std::string("kube-eventbuffer/") + KEB_VERSION;
  ebc::ApiClient client(kube, token.get(), client_options);
  BufferSink sink(&buffer);
  ebc::Watcher::Options watcher_options;
  watcher_options.watch_timeout_margin_seconds = client_options.watch_timeout_margin_seconds;
  ebc::WatchMetrics watch_metrics(metrics.registry());
  ebc::Watcher watcher(&client, &sink, &watch_metrics, watcher_options);

  ebc::ReadApi::Hooks hooks;
  hooks.objects = [&buffer] { return buffer.Objects(); };
  hooks.read = [&buffer](std::string_view key) { return buffer.Read(key); };
  hooks.buffer_status_json = [&buffer] { return BufferStatusJson(buffer); };
  hooks.watch_status_json = [&watcher] { return WatchStatusJson(watcher.GetStatus()); };
  hooks.healthy = [&watcher](std::string* why) {
    if (watcher.Healthy(std::chrono::minutes(10))) return true;
    *why = "no watch progress for 10 minutes";
    return false;
  };
  hooks.ready = [&sink] { return sink.synced(); };
  ebc::ReadApi api(hooks);
  ebc::HttpServer server(options.health_probe_bind_address, &api);
  if (!server.Start(&error)) {
    spdlog::critical("{}", error);
    return 1;
  }
  spdlog::info("serving probes and the read API on {}, metrics on {}",
               options.health_probe_bind_address, options.metrics_bind_address);

  std::thread watch_thread([&watcher] { watcher.Run(); });

  // Maintenance: retention and the background verification sweep.
  eventbuffer::PeriodicThread maintenance;
  maintenance.Start(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double>(options.maintenance_interval_seconds)),
                    [&](auto) {
                      try {
                        buffer.EnforceRetention(NowUnixMs());
                        buffer.VerifySweep(2000);
                        mismatch_logger.Flush();
                      } catch (const std::exception& e) {
                        spdlog::error("maintenance pass failed: {}", e.what());
                      }
                    });

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: configuration reload");
      if (config_watcher) config_watcher->ReloadNow();
      continue;
    }
    spdlog::info("{}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    break;
  }

  const auto shutdown_start = std::chrono::steady_clock::now();
  watcher.Stop();
  watch_thread.join();
  maintenance.Stop();
  if (config_watcher) config_watcher->Stop();
  mismatch_logger.Flush();
  server.Stop();
  const auto ws = watcher.GetStatus();
  const auto stats = buffer.Stats();
  spdlog::info(
      "stopped in {:.3f}s: events={} lists={} watches={} restarts={} resourceVersion={} "
      "stored={} dedupHits={} evictions={} legacyEvents={} atomicEvents={}",
      std::chrono::duration<double>(std::chrono::steady_clock::now() - shutdown_start).count(),
      ws.events, ws.lists, ws.watch_requests, ws.restarts, ws.resource_version, stats.appended,
      stats.dedup_hits, stats.evictions, stats.backend[0].events, stats.backend[1].events);
  spdlog::default_logger()->flush();
  return 0;
}
