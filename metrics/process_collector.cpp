#include "metrics/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

#include "metrics/family_util.h"

namespace eventbuffer::metrics {
namespace {

std::string ReadFile(const char* path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

double BootTimeSeconds() {
  std::istringstream in(ReadFile("/proc/stat"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
  }
  return 0;
}

double CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  double n = 0;
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the descriptor opendir itself holds
}

}  // namespace

std::optional<ProcessStats> ParseProcStat(std::string_view stat, long ticks_per_second,
                                          long page_size, double boot_time_seconds) {
  const auto close = stat.rfind(')');
  if (close == std::string_view::npos || ticks_per_second <= 0) return std::nullopt;
  // After "pid (comm) " the fields are numbered from 3 (state) on, as in proc(5).
  std::string_view rest = stat.substr(close + 1);
  std::vector<std::string_view> fields;
  std::size_t pos = 0;
  while (pos < rest.size()) {
    while (pos < rest.size() && (rest[pos] == ' ' || rest[pos] == '\n')) ++pos;
    const std::size_t end = rest.find_first_of(" \n", pos);
    if (pos < rest.size()) fields.push_back(rest.substr(pos, end - pos));
    if (end == std::string_view::npos) break;
    pos = end;
  }
  auto field = [&](int number, double* out) {
    const std::size_t i = static_cast<std::size_t>(number - 3);
    if (i >= fields.size()) return false;
    unsigned long long v = 0;
    const auto [p, ec] = std::from_chars(fields[i].data(), fields[i].data() + fields[i].size(), v);
    if (ec != std::errc() || p != fields[i].data() + fields[i].size()) return false;
    *out = static_cast<double>(v);
    return true;
  };
  double utime, stime, threads, starttime, vsize, rss;
  if (!field(14, &utime) || !field(15, &stime) || !field(20, &threads) || !field(22, &starttime) ||
      !field(23, &vsize) || !field(24, &rss)) {
    return std::nullopt;
  }
  ProcessStats s;
  const double hz = static_cast<double>(ticks_per_second);
  s.cpu_seconds = (utime + stime) / hz;
  s.threads = threads;
  s.start_time_seconds = boot_time_seconds + starttime / hz;
  s.virtual_bytes = vsize;
  s.resident_bytes = rss * static_cast<double>(page_size);
  return s;
}

std::optional<ProcessStats> ReadProcessStats() {
  static const long hz = sysconf(_SC_CLK_TCK);
  static const long page = sysconf(_SC_PAGESIZE);
  static const double boot = BootTimeSeconds();
  const std::string stat = ReadFile("/proc/self/stat");
  auto s = ParseProcStat(stat, hz, page, boot);
  if (!s) return std::nullopt;
  s->open_fds = CountOpenFds();
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) s->max_fds = static_cast<double>(lim.rlim_cur);
  return s;
}

std::vector<prometheus::MetricFamily> CollectProcessMetrics() {
  const auto s = ReadProcessStats();
  if (!s) return {};
  using internal::MakeFamily;
  using internal::MakeGauge;
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  auto add = [&](const char* name, const char* help, MetricType type, double v) {
    auto f = MakeFamily(name, help, type);
    f.metric.push_back(type == MetricType::Counter ? internal::MakeCounter(v) : MakeGauge(v));
    out.push_back(std::move(f));
  };
  add("process_cpu_seconds_total", "CPU time (user plus system) used by this process, in seconds.",
      MetricType::Counter, s->cpu_seconds);
  add("process_resident_memory_bytes", "Memory of this process resident in RAM, in bytes.",
      MetricType::Gauge, s->resident_bytes);
  add("process_virtual_memory_bytes", "Virtual address space of this process, in bytes.",
      MetricType::Gauge, s->virtual_bytes);
  add("process_start_time_seconds", "Unix time this process started, in seconds.",
      MetricType::Gauge, s->start_time_seconds);
  add("process_open_fds", "File descriptors this process has open.", MetricType::Gauge,
      s->open_fds);
  add("process_max_fds", "Soft limit on open file descriptors (RLIMIT_NOFILE).", MetricType::Gauge,
      s->max_fds);
  add("process_threads", "Operating-system threads of this process.", MetricType::Gauge,
      s->threads);
  return out;
}

}  // namespace eventbuffer::metrics
