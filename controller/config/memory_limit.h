// The container's memory limit, from its cgroup, and the default byte budget of the
// EventBuffer (eventBuffer.retention.maxBytes when the configuration does not set it).
//
// Rule: half of the cgroup memory limit (v2: <root>/memory.max; v1:
// <root>/memory/memory.limit_in_bytes or <root>/memory.limit_in_bytes); with no limit
// ("max", a v1 value of 2^60 or more, or no readable file) a fixed 512 MiB.
//
// Thread safety: pure functions of the files read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace eventbuffer::controller {

inline constexpr std::size_t kUnlimitedMaxBytes = std::size_t{512} << 20;

// The memory limit in bytes under cgroup mount root, or 0 when unlimited or unknown.
std::uint64_t ContainerMemoryLimit(const std::string& root = "/sys/fs/cgroup");

// The default maxBytes for a memory limit as ContainerMemoryLimit returns it.
std::size_t DefaultMaxBytes(std::uint64_t memory_limit);

}  // namespace eventbuffer::controller
