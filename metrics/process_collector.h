// Process metrics in the names every Prometheus client library uses (prometheus-cpp exports
// none), read from /proc at scrape time:
//   process_cpu_seconds_total          user + system CPU time
//   process_resident_memory_bytes      RSS
//   process_virtual_memory_bytes       virtual memory size
//   process_start_time_seconds         Unix time the process started
//   process_open_fds, process_max_fds  open file descriptors and their soft limit
//   process_threads                    OS threads of the process
//
// Thread safety: stateless apart from constants read once; any thread may collect.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include <prometheus/metric_family.h>

namespace eventbuffer::metrics {

struct ProcessStats {
  double cpu_seconds = 0;
  double resident_bytes = 0;
  double virtual_bytes = 0;
  double start_time_seconds = 0;
  double open_fds = 0;
  double max_fds = 0;
  double threads = 0;
};

// Parses the contents of /proc/<pid>/stat, given the clock ticks per second, the page size
// and the boot time (Unix seconds, from /proc/stat "btime"). Fills cpu, memory, threads and
// start time; returns nullopt when the text is malformed. The command name in parentheses
// may contain spaces and parentheses: fields are counted after the last ')'.
std::optional<ProcessStats> ParseProcStat(std::string_view stat, long ticks_per_second,
                                          long page_size, double boot_time_seconds);

// Reads the current process's stats; nullopt when /proc is not readable.
std::optional<ProcessStats> ReadProcessStats();

// The process_* families for a scrape; empty when /proc is not readable.
std::vector<prometheus::MetricFamily> CollectProcessMetrics();

}  // namespace eventbuffer::metrics
