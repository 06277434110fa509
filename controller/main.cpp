// eventbuffer-controller: wiring only. Flags -> logging -> configuration -> EventBuffer and
// metrics -> API client and Watcher (watch thread) -> delegated auth and the serving ports
// (the eventbuffer.dev API, metrics, probes) -> maintenance thread -> wait for SIGTERM/SIGINT
// (SIGHUP reloads the configuration) -> orderly shutdown with a final stats line: /readyz
// fails, the ports serve on for --shutdown-delay, the watch stops, the store is flushed.
#include <fmt/ranges.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <thread>

#include "controller/buffer_sink.h"
#include "controller/config/config.h"
#include "controller/config/config_watcher.h"
#include "controller/config/options.h"
#include "controller/durable/event_store.h"
#include "controller/durable/store_metrics.h"
#include "controller/kube/api_client.h"
#include "controller/kube/kube_config.h"
#include "controller/kube/token_source.h"
#include "controller/kube/watch_metrics.h"
#include "controller/kube/watcher.h"
#include "controller/logging.h"
#include "controller/malloc_arenas.h"
#include "controller/mismatch_logger.h"
#include "controller/serving/api/events_api.h"
#include "controller/serving/auth/delegating_auth.h"
#include "controller/serving/auth/kube_review_client.h"
#include "controller/serving/endpoints.h"
#include "controller/serving/probes.h"
#include "controller/serving/server.h"
#include "controller/serving/serving_metrics.h"
#include "controller/shutdown_delay.h"
#include "eventbuffer/event_buffer.h"
#include "eventbuffer/periodic_thread.h"
#include "metrics/metrics.h"

namespace ebc = eventbuffer::controller;
using eventbuffer::BufferConfig;
using eventbuffer::EventBuffer;

namespace {

std::int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::chrono::milliseconds Seconds(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
}

// The limits every serving port shares.
ebc::Server::Options ServingOptions(const ebc::Options& options, std::string name,
                                    std::string bind_address) {
  ebc::Server::Options o;
  o.name = std::move(name);
  o.bind_address = std::move(bind_address);
  o.header_read_timeout = Seconds(options.header_timeout_seconds);
  o.idle_timeout = Seconds(options.idle_timeout_seconds);
  o.max_connections = options.max_connections;
  o.max_requests_inflight = options.max_requests_inflight;
  return o;
}

ebc::DelegatedAuthOptions AuthOptions(const ebc::Options& options) {
  ebc::DelegatedAuthOptions a;
  a.client_ca_file = options.client_ca_file;
  a.requestheader_client_ca_file = options.requestheader_client_ca_file;
  a.requestheader_allowed_names = options.requestheader_allowed_names;
  a.requestheader_username_headers = options.requestheader_username_headers;
  a.requestheader_group_headers = options.requestheader_group_headers;
  a.requestheader_extra_headers_prefix = options.requestheader_extra_headers_prefix;
  a.token_cache_ttl = options.authentication_token_webhook_cache_ttl;
  a.token_cache_unauthenticated_ttl = options.authentication_token_webhook_cache_ttl;
  a.authorization_allowed_ttl = options.authorization_webhook_cache_authorized_ttl;
  a.authorization_denied_ttl = options.authorization_webhook_cache_unauthorized_ttl;
  a.always_allow_paths = options.authorization_always_allow_paths;
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  ebc::LimitMallocArenas();  // before any thread: one malloc arena (malloc_arenas.h)
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
  if (!ebc::ResolveKubeConfig(options.kubeconfig, ebc::ProcessEnv(), &kube, &error)) {
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
  // Records share what they repeat with recent ones: the cache of those grows with the
  // retention set at start (a reload that changes it keeps this size).
  const eventbuffer::RevisionCache::Size revision_cache = eventbuffer::RevisionCache::SizeFor(
      buffer_config.retention.max_events, buffer_config.retention.max_bytes);
  metrics.buffer().SetSizeSource([&buffer] {
    const auto stats = buffer.Stats();
    eventbuffer::metrics::BufferSizes sizes;
    for (std::size_t b = 0; b < eventbuffer::kBackendCount; ++b) {
      sizes.backend[b].objects = stats.backend[b].objects;
      sizes.backend[b].events = stats.backend[b].events;
      sizes.backend[b].bytes = stats.backend[b].bytes;
    }
    sizes.record_bytes = stats.record_bytes;
    sizes.dedup_bytes = stats.dedup_bytes;
    sizes.query_index_bytes = stats.query_index_bytes;
    sizes.intern_bytes = stats.intern_bytes;
    sizes.intern_entries = stats.intern_entries;
    sizes.intern_fallbacks = stats.intern_fallbacks;
    return sizes;
  });
  ebc::MismatchLogger mismatch_logger;
  buffer.SetMismatchSink(
      [&mismatch_logger](const eventbuffer::MismatchReport& r) { mismatch_logger.Log(r); });
  // The durable store (--data-dir): its history goes into the buffer through the normal
  // Append before the watch starts, so the first list's overlap is refused as duplicates and
  // readiness (after the first list) comes after the restore. `restored` says so to /readyz
  // as well, so that readiness does not depend on the order of start-up alone.
  std::atomic<bool> restored{false};
  std::unique_ptr<ebc::EventStore> store;
  if (!options.data_dir.empty()) {
    ebc::EventStoreOptions store_options;
    store_options.dir = options.data_dir;
    store_options.sync_interval = options.sync_interval;
    store_options.max_bytes = options.data_max_bytes;
    store_options.revision_cache = revision_cache;
    store = ebc::EventStore::Open(store_options, &error);
    if (!store) {
      spdlog::critical("durable store: {}", error);
      return 1;
    }
    buffer.SetEvictionSink([&store](std::vector<eventbuffer::EventRef>&& evicted) {
      store->Remove(std::move(evicted));
    });
    const auto restore_start = std::chrono::steady_clock::now();
    std::size_t kept = 0;
    const std::size_t read = store->Restore([&buffer, &kept](eventbuffer::EventRef r) {
      if (buffer.Append(r) == EventBuffer::AppendResult::kStored) ++kept;
    });
    spdlog::info(
        "durable store {}: restored {} occurrences ({} new to the buffer) in {:.3f}s",
        store->path(), read, kept,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - restore_start).count());
    // Within the retention limits before anything is served; what goes is deleted on disk.
    const std::size_t evicted = buffer.EnforceRetention(NowUnixMs());
    if (evicted > 0) spdlog::info("durable store: {} restored occurrences past retention", evicted);
    store->Start();
  }
  restored.store(true, std::memory_order_release);  // pairs with the acquire in /readyz
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

  std::unique_ptr<ebc::TokenSource> token;
  if (!kube.token_file.empty()) {
    token = ebc::TokenSource::FromFile(kube.token_file);
  } else {
    token = ebc::TokenSource::Static(kube.token);
  }
  ebc::ApiClient::Options client_options;
  client_options.namespace_name = options.namespace_name;
  client_options.user_agent = std::string("kube-eventbuffer/") + KEB_VERSION;
  client_options.max_watch_event_bytes = options.max_watch_event_bytes;
  client_options.max_list_page_bytes = options.max_list_page_bytes;
  ebc::ApiClient client(kube, token.get(), client_options);
  ebc::BufferSink sink(&buffer, store.get());
  ebc::WatchMetrics watch_metrics(metrics.registry());
  ebc::Watcher::Options watcher_options;
  watcher_options.revision_cache = revision_cache;
  watcher_options.watch_timeout_margin_seconds = client_options.watch_timeout_margin_seconds;
  watcher_options.list_limit = options.list_limit;
  ebc::Watcher watcher(&client, &sink, &watch_metrics, watcher_options);

  // Delegated authentication and authorization (TokenReview, SubjectAccessReview) for the
  // secure port and, with --metrics-secure, the metrics port.
  const bool serve_api = options.secure_port != 0;
  const bool serve_metrics = options.metrics_bind_address != "0";
  ebc::KubeReviewClient review_client(kube, token.get(), {.user_agent = client_options.user_agent});
  std::unique_ptr<ebc::DelegatingAuth> auth;
  if (serve_api || (serve_metrics && options.metrics_secure)) {
    ebc::DelegatedAuthOptions auth_options = AuthOptions(options);
    if (!options.authentication_skip_lookup) {
      const ebc::ConfigMapLoadResult cm =
          ebc::LoadAuthenticationConfigMap(&review_client, &auth_options);
      if (cm.loaded) {
        spdlog::info("authentication: read kube-system/extension-apiserver-authentication ({})",
                     fmt::join(cm.filled, ", "));
      }
    }
    auth = ebc::DelegatingAuth::Create(auth_options, &review_client, &error);
    if (!auth) {
      spdlog::critical("authentication: {}", error);
      return 1;
    }
  }

  ebc::EventsApi api(
      {.list = [&buffer](const eventbuffer::EventQuery& q) { return buffer.List(q); },
       .find = [&buffer](std::string_view ns, std::string_view name,
                         std::string_view rv) { return buffer.Find(ns, name, rv); },
       .now_unix_ms = {}});
  ebc::Probes probes(
      {.live =
           [&watcher](std::string* why) {
             if (watcher.Healthy(std::chrono::minutes(10))) return true;
             *why = "no watch progress for 10 minutes";
             return false;
           },
       .ready = [&restored,
                 &sink] { return restored.load(std::memory_order_acquire) && sink.synced(); }});

  // The serving ports, each a Server with threads of its own: probes never wait behind reads.
  std::unique_ptr<ebc::Server> secure, metrics_server;
  ebc::Server::Options probe_options =
      ServingOptions(options, "probe", options.health_probe_bind_address);
  probe_options.worker_threads = 1;
  ebc::Server probe_server(
      probe_options,
      [&probes](const ebc::HttpRequest& r, ebc::ResponseWriter& w) { probes.Handle(r, w); });
  if (serve_api) {
    ebc::Server::Options o = ServingOptions(
        options, "secure",
        (options.bind_address.find(':') != std::string::npos ? "[" + options.bind_address + "]"
                                                             : options.bind_address) +
            ":" + std::to_string(options.secure_port));
    o.tls = true;
    o.tls_cert_file = options.tls_cert_file;
    o.tls_private_key_file = options.tls_private_key_file;
    o.thread_nice = options.serving_nice;
    o.handler_answers_other_methods = true;  // a write is 401/403 before it is 405
    secure = std::make_unique<ebc::Server>(o, ebc::SecureApiHandler(auth.get(), &api, &probes));
  }
  if (serve_metrics) {
    ebc::Server::Options o = ServingOptions(options, "metrics", options.metrics_bind_address);
    o.worker_threads = 1;
    o.thread_nice = options.serving_nice;
    o.tls = options.metrics_secure;
    o.handler_answers_other_methods = true;
    o.tls_cert_file = options.tls_cert_file;
    o.tls_private_key_file = options.tls_private_key_file;
    metrics_server = std::make_unique<ebc::Server>(
        o, ebc::MetricsHandler(options.metrics_secure ? auth.get() : nullptr,
                               [&metrics] { return metrics.Render(); }));
  }
  metrics.AddCollector([&] {
    auto families = ebc::CollectServingMetrics(
        {{"probe", &probe_server}, {"secure", secure.get()}, {"metrics", metrics_server.get()}});
    if (auth) {
      for (auto& f : ebc::CollectAuthMetrics(auth->Stats())) families.push_back(std::move(f));
    }
    if (store) {
      for (auto& f : ebc::CollectStoreMetrics(store->Stats())) families.push_back(std::move(f));
    }
    return families;
  });
  for (ebc::Server* server : {&probe_server, secure.get(), metrics_server.get()}) {
    if (server != nullptr && !server->Start(&error)) {
      spdlog::critical("{}", error);
      return 1;
    }
  }
  spdlog::info("serving probes on {} (http), the eventbuffer.dev API on {}, metrics on {} ({})",
               options.health_probe_bind_address,
               serve_api ? ":" + std::to_string(secure->port()) + " (https)" : "off",
               serve_metrics ? options.metrics_bind_address : "off",
               options.metrics_secure ? "https, authenticated" : "http");

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

  // Shutdown: readiness first, so the endpoints move away while the ports still answer;
  // then the watch; then the store, which then holds everything the watch delivered.
  const auto shutdown_start = std::chrono::steady_clock::now();
  const auto since_start = [&shutdown_start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - shutdown_start).count();
  };
  probes.BeginShutdown();
  spdlog::info("shutdown: /readyz fails from now on; serving goes on for {}ms (--shutdown-delay)",
               options.shutdown_delay.count());
  const int cut_by = ebc::WaitShutdownDelay(signals, options.shutdown_delay, [&](int s) {
    if (s != SIGHUP) return true;
    spdlog::info("SIGHUP during the shutdown delay: configuration reload");
    if (config_watcher) config_watcher->ReloadNow();
    return false;
  });
  if (cut_by != 0) {
    spdlog::info("shutdown: {} cut the delay short after {:.3f}s",
                 cut_by == SIGTERM ? "a second SIGTERM" : "SIGINT", since_start());
  } else if (options.shutdown_delay.count() > 0) {
    spdlog::info("shutdown: delay over after {:.3f}s", since_start());
  }
  spdlog::info("shutdown: stopping the watch");
  watcher.Stop();
  watch_thread.join();
  maintenance.Stop();
  spdlog::info("shutdown: watch stopped after {:.3f}s", since_start());
  if (store) {
    spdlog::info("shutdown: flushing the durable store");
    store->Stop();  // the watch has stopped: this writes everything it delivered
    const ebc::EventStoreStats ss = store->Stats();
    spdlog::info(
        "durable store flushed: written={} deleted={} budgetDeleted={} droppedQueueFull={} "
        "diskFull={} writeErrors={} bytes={}",
        ss.written, ss.deleted, ss.budget_deleted, ss.dropped_queue_full, ss.disk_full,
        ss.write_errors, ss.database_bytes);
  }
  if (config_watcher) config_watcher->Stop();
  mismatch_logger.Flush();
  spdlog::info("shutdown: closing the serving ports");
  for (ebc::Server* server : {secure.get(), metrics_server.get(), &probe_server}) {
    if (server != nullptr) server->Stop();
  }
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
