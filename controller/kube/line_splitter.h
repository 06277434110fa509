// LineSplitter: turns the chunks of a watch stream into complete lines.
//
// A watch response is a stream of JSON documents, one per line. Chunks from the network
// cut lines anywhere; this class hands out only complete lines (without '\n') and keeps
// the tail. When the stream ends, a tail without its newline is a line cut by a dropped
// connection: it is discarded, never decoded (HasPartial() tells the caller).
//
// A line longer than max_line_bytes (a hostile or broken server, or an Event bigger than
// anyone should keep) is not handed out as a line: the splitter keeps its first
// max_line_bytes bytes, counts and drops the rest up to the newline, and then hands the
// kept prefix and the full length to on_oversized. The buffer never grows beyond
// max_line_bytes (buffer_capacity() <= max(max_line_bytes, a small inline size)), whatever
// the length of the line.
//
// Thread safety: none; one splitter per stream.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

namespace eventbuffer::controller {

class LineSplitter {
 public:
  static constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

  // REQUIRES: max_line_bytes >= 1.
  explicit LineSplitter(std::size_t max_line_bytes = kUnlimited) : max_(max_line_bytes) {}

  // Feeds one chunk; calls on_line(std::string_view) for each line it completes. Returns
  // false as soon as on_line returns false (the rest of the chunk is dropped). A line over
  // the cap is dropped silently.
  template <typename OnLine>
  bool Feed(std::string_view chunk, OnLine&& on_line) {
    return Feed(chunk, on_line, [](std::string_view, std::uint64_t) { return true; });
  }

  // As above; for a line over the cap calls on_oversized(std::string_view kept_prefix,
  // std::uint64_t line_bytes) instead of on_line, once its newline arrived. Returns false as
  // soon as either handler returns false.
  template <typename OnLine, typename OnOversized>
  bool Feed(std::string_view chunk, OnLine&& on_line, OnOversized&& on_oversized) {
    while (!chunk.empty()) {
      const void* nl = std::memchr(chunk.data(), '\n', chunk.size());
      if (nl == nullptr) {
        Keep(chunk);
        return true;
      }
      const std::size_t n = static_cast<const char*>(nl) - chunk.data();
      bool keep_going;
      if (line_bytes_ + n > max_) {
        Keep(chunk.substr(0, n));
        keep_going = on_oversized(std::string_view(tail_), line_bytes_);
        Clear();
      } else if (tail_.empty()) {
        keep_going = on_line(chunk.substr(0, n));  // fast path: no copy
      } else {
        Keep(chunk.substr(0, n));
        keep_going = on_line(std::string_view(tail_));
        Clear();
      }
      chunk.remove_prefix(n + 1);
      if (!keep_going) return false;
    }
    return true;
  }

  // True when bytes after the last newline are pending (a cut line if the stream ended).
  bool HasPartial() const { return line_bytes_ > 0; }
  void Reset() { Clear(); }

  // Bytes of the line being assembled so far, kept or not.
  std::uint64_t pending_bytes() const { return line_bytes_; }
  // Bytes the buffer has allocated now (the structural bound tests check).
  std::size_t buffer_capacity() const { return tail_.capacity(); }
  std::size_t max_line_bytes() const { return max_; }

  // Implementation details follow.
 private:
  // A buffer above this size is freed after its line rather than kept for the next.
  static constexpr std::size_t kRetainBytes = std::size_t{1} << 20;

  // Counts `part` into the current line and keeps what fits under the cap.
  void Keep(std::string_view part) {
    line_bytes_ += part.size();
    const std::size_t room = max_ - tail_.size();  // tail_.size() <= max_ always
    if (part.size() > room) part = part.substr(0, room);
    if (part.empty()) return;
    const std::size_t need = tail_.size() + part.size();
    if (need > tail_.capacity()) {
      // Grow geometrically but never past the cap. A fresh string's reserve allocates the
      // size asked for (growing in place may round up to twice the old capacity).
      const std::size_t target = std::max(need, std::min(max_, tail_.capacity() * 2));
      std::string bigger;
      bigger.reserve(target);
      bigger.append(tail_);
      tail_.swap(bigger);
    }
    tail_.append(part);
  }

  void Clear() {
    if (tail_.capacity() > kRetainBytes) {
      std::string().swap(tail_);
    } else {
      tail_.clear();
    }
    line_bytes_ = 0;
  }

  std::size_t max_;
  std::string tail_;              // the kept bytes of the current line (at most max_)
  std::uint64_t line_bytes_ = 0;  // every byte of the current line seen so far
};

}  // namespace eventbuffer::controller
