// LineSplitter: turns the chunks of a watch stream into complete lines.
//
// A watch response is a stream of JSON documents, one per line. Chunks from the network
// cut lines anywhere; this class hands out only complete lines (without '\n') and keeps
// the tail. When the stream ends, a tail without its newline is a line cut by a dropped
// connection: it is discarded, never decoded (HasPartial() tells the caller).
//
// Thread safety: none; one splitter per stream.
#pragma once

#include <cstring>
#include <string>
#include <string_view>

namespace eventbuffer::controller {

class LineSplitter {
 public:
  // Feeds one chunk; calls on_line(std::string_view) for each line it completes. Returns
  // false as soon as on_line returns false (the rest of the chunk is dropped).
  template <typename OnLine>
  bool Feed(std::string_view chunk, OnLine&& on_line) {
    while (!chunk.empty()) {
      const void* nl = std::memchr(chunk.data(), '\n', chunk.size());
      if (nl == nullptr) {
        tail_.append(chunk);
        return true;
      }
      const std::size_t n = static_cast<const char*>(nl) - chunk.data();
      bool keep_going;
      if (tail_.empty()) {
        keep_going = on_line(chunk.substr(0, n));  // fast path: no copy
      } else {
        tail_.append(chunk.substr(0, n));
        keep_going = on_line(std::string_view(tail_));
        tail_.clear();
      }
      chunk.remove_prefix(n + 1);
      if (!keep_going) return false;
    }
    return true;
  }
  // True when bytes after the last newline are pending (a cut line if the stream ended).
  bool HasPartial() const { return !tail_.empty(); }
  void Reset() { tail_.clear(); }

 private:
  std::string tail_;
};

}  // namespace eventbuffer::controller
