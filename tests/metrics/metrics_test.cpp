#include "metrics/metrics.h"
#include "metrics/family_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>

namespace eventbuffer::metrics {
namespace {

// A plain HTTP/1.0 GET on 127.0.0.1; returns the whole response.
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket");
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    throw std::runtime_error("connect");
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return out;
}

TEST(MetricsTest, ServesEveryFamilyOnLoopback) {
  Metrics m({.version = "9.9.9", .revision = "abc123"});
  m.Serve("127.0.0.1:0");
  ASSERT_GT(m.port(), 0);
  m.buffer().OnAppend(Backend::kAtomic, 120, 0);
  const std::string resp = HttpGet(m.port(), "/metrics");
  EXPECT_NE(resp.find(" 200 "), std::string::npos) << resp.substr(0, 200);
  for (const char* name : {"eventbuffer_append_duration_seconds_bucket",
                           "eventbuffer_append_recent_duration_seconds",
                           "eventbuffer_write_pause_seconds_bucket",
                           "eventbuffer_write_pause_max_seconds",
                           "eventbuffer_process_pause_seconds_bucket",
                           "eventbuffer_process_pause_max_seconds",
                           "eventbuffer_mismatches_total",
                           "eventbuffer_verifications_total",
                           "eventbuffer_gray_mode",
                           "eventbuffer_rollout_percent",
                           "eventbuffer_config_reloads_total",
                           "eventbuffer_objects",
                           "eventbuffer_events",
                           "eventbuffer_memory_bytes",
                           "eventbuffer_evictions_total",
                           "eventbuffer_dedup_hits_total",
                           "process_cpu_seconds_total",
                           "process_resident_memory_bytes",
                           "process_start_time_seconds",
                           "process_open_fds"}) {
    EXPECT_NE(resp.find(std::string("\n") + name), std::string::npos) << name;
  }
  EXPECT_NE(resp.find("eventbuffer_build_info{version=\"9.9.9\",revision=\"abc123\""),
            std::string::npos);
}

TEST(MetricsTest, AddedCollectorsAreInEveryScrape) {
  Metrics m;
  int calls = 0;
  m.AddCollector([&calls] {
    ++calls;
    auto f = internal::MakeFamily("eventbuffer_test_collected", "A test family.",
                                  prometheus::MetricType::Gauge);
    f.metric.push_back(internal::MakeGauge(calls));
    return std::vector<prometheus::MetricFamily>{f};
  });
  EXPECT_NE(m.Render().find("eventbuffer_test_collected 1"), std::string::npos);
  EXPECT_NE(m.Render().find("eventbuffer_test_collected 2"), std::string::npos);
}

TEST(MetricsTest, EveryFamilyHasOneHelpAndOneTypeLine) {
  Metrics m;
  const std::string text = m.Render();
  std::istringstream in(text);
  std::string line;
  std::multiset<std::string> help, type;
  std::set<std::string> sampled;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      help.insert(line.substr(7, line.find(' ', 7) - 7));
    } else if (line.rfind("# TYPE ", 0) == 0) {
      type.insert(line.substr(7, line.find(' ', 7) - 7));
    } else if (!line.empty()) {
      sampled.insert(line.substr(0, line.find_first_of("{ ")));
    }
  }
  for (const auto& name : type) {
    EXPECT_EQ(type.count(name), 1u) << name;
    EXPECT_EQ(help.count(name), 1u) << name;
  }
  // Every sample belongs to a declared family (histogram/summary suffixes stripped).
  for (std::string s : sampled) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string suf(suffix);
      if (type.count(s) == 0 && s.size() > suf.size() &&
          s.compare(s.size() - suf.size(), suf.size(), suf) == 0) {
        s.resize(s.size() - suf.size());
      }
    }
    EXPECT_EQ(type.count(s), 1u) << s;
  }
}

TEST(MetricsTest, ServeOnABusyPortThrows) {
  Metrics a;
  a.Serve("127.0.0.1:0");
  Metrics b;
  EXPECT_THROW(b.Serve("127.0.0.1:" + std::to_string(a.port())), std::runtime_error);
}

TEST(MetricsTest, PauseMonitorAppearsInTheScrape) {
  Metrics m({.process_metrics = false});
  m.pause_monitor().Record(3'000'000);
  const std::string text = m.Render();
  EXPECT_NE(text.find("eventbuffer_process_pause_seconds_count 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("eventbuffer_process_pause_max_seconds 0.003\n"), std::string::npos);
  EXPECT_EQ(text.find("process_cpu_seconds_total"), std::string::npos);
}

}  // namespace
}  // namespace eventbuffer::metrics
