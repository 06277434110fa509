// BoundedBodyBuffer: a response body buffer for cpprestsdk that holds at most about
// `limit` unread bytes, so a server that streams faster than the body is read cannot make
// the client buffer the stream in memory.
//
// cpprestsdk's HTTP client writes each piece of a response body into the response stream
// with putn and issues its next socket read only when that write's task completes. This
// buffer (a producer/consumer buffer, set with http_request::set_response_stream) completes
// a write at once while the unread bytes stay at or below the limit; past it, the write's
// task completes only when the reader has brought them down to half the limit. So the
// socket is not read while the reader is behind, and TCP flow control holds back the server.
//
// Stop() ends the request from the reader's side without touching the connection: a write
// waiting for room, and every later write, fails, and cpprestsdk then ends the request and
// drops the connection on its own I/O thread. (Cancelling a request instead closes its
// socket from the cancelling thread while the I/O thread may be in a TLS read on it, which
// can crash the process; a cancel while the body flows was also seen to hand the body
// bytes of the chunk framing.) The failed write also closes the buffer with the error
// (cpprestsdk closes a stream whose write fails), so the reader gets what was buffered,
// then the error. A request whose connection is idle when Stop() is called ends when the
// server next sends, closes, or the client's timeout fires; WaitResponseDone tells the
// owner whether it has ended (ApiClient::Cancel cancels one that stays idle).
//
// The end of the body: cpprestsdk does not close a stream it was given, so the owner
// closes the write side when the response completes (CloseWriteWhenDone).
//
// Reads: acquire/release and getn are counted (the ones the API client uses); the other
// read calls of the streambuf interface are not and must not be used.
//
// Thread safety: one writer (cpprestsdk's I/O threads, one write at a time) and one reader;
// Stop() from any thread.
#pragma once

#include <cpprest/http_msg.h>
#include <cpprest/producerconsumerstream.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace eventbuffer::controller {

class BoundedBodyBuffer final
    : public concurrency::streams::details::basic_producer_consumer_buffer<std::uint8_t> {
  using Base = concurrency::streams::details::basic_producer_consumer_buffer<std::uint8_t>;

 public:
  // limit: unread bytes past which a write waits (at least 1).
  explicit BoundedBodyBuffer(std::size_t limit)
      : Base(kMinBlockBytes), limit_(static_cast<std::int64_t>(std::max<std::size_t>(1, limit))) {}

  // Closes the write side when `response` has been read to its end (the reader then sees
  // the end of the stream) or with its error (the reader's next read throws it). From the
  // call on, WaitResponseDone waits for that.
  static void CloseWriteWhenDone(const web::http::http_response& response,
                                 const std::shared_ptr<BoundedBodyBuffer>& buffer) {
    {
      std::lock_guard<std::mutex> lock(buffer->mu_);
      buffer->response_attached_ = true;
    }
    response.content_ready().then([buffer](pplx::task<web::http::http_response> done) {
      try {
        done.get();
        buffer->close(std::ios_base::out).wait();
      } catch (...) {
        try {
          buffer->close(std::ios_base::out, std::current_exception()).wait();
        } catch (...) {
        }
      }
      {
        std::lock_guard<std::mutex> lock(buffer->mu_);
        buffer->response_done_ = true;
      }
      buffer->done_cv_.notify_all();
    });
  }

  // Whether the response given to CloseWriteWhenDone has ended (read to its end or
  // failed), waiting up to `timeout` for it. True at once when none was given.
  bool WaitResponseDone(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return done_cv_.wait_for(lock, timeout,
                             [this] { return !response_attached_ || response_done_; });
  }
  // Whether a response was given to CloseWriteWhenDone (its headers have arrived).
  bool response_attached() const {
    std::lock_guard<std::mutex> lock(mu_);
    return response_attached_;
  }

  // Makes a waiting write and every later one fail. Idempotent.
  void Stop() {
    pplx::task_completion_event<void> room;
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      if (waiting_) {
        waiting_ = false;
        wake = true;
        room = room_;
      }
    }
    if (wake) room.set_exception(std::make_exception_ptr(Stopped()));
  }

  // The most unread bytes the buffer held at once.
  std::uint64_t peak_unread_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<std::uint64_t>(peak_);
  }
  // Whether a write is waiting for the reader (for tests).
  bool writer_waiting() const {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_;
  }

  // Returns a close that is already complete. The base closes both halves on the calling
  // thread (they are synchronous in the producer/consumer buffer) but returns a task that
  // completes in a continuation on cpprestsdk's thread pool, and cpprestsdk waits for it
  // (.get()) on a pool thread whenever a write fails, as every write after Stop() does: with
  // each pool thread in such a wait, nothing is left to run the continuations and the HTTP
  // client hangs (seen with the tests' two threads: two stopped watches failing a write at
  // the same time).
  using Base::close;
  pplx::task<void> close(std::ios_base::openmode mode) override {
    Base::close(mode);
    return pplx::task_from_result();
  }

  void release(std::uint8_t* ptr, std::size_t count) override {
    Base::release(ptr, count);
    if (ptr != nullptr) Consumed(count);
  }

 protected:
  using Base::_putn;
  pplx::task<std::size_t> _putn(const std::uint8_t* ptr, std::size_t count) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return pplx::task_from_exception<std::size_t>(Stopped());
    }
    const std::size_t written = Base::_putn(ptr, count).get();  // copies; completes at once
    std::lock_guard<std::mutex> lock(mu_);
    unread_ += static_cast<std::int64_t>(written);
    peak_ = std::max(peak_, unread_);
    if (unread_ <= limit_ || stopped_) return pplx::task_from_result(written);
    waiting_ = true;
    room_ = pplx::task_completion_event<void>();
    return pplx::create_task(room_).then([written] { return written; });
  }

  pplx::task<std::size_t> _getn(std::uint8_t* ptr, std::size_t count) override {
    // The base completes the read when the data is there (on the writer's thread when it
    // had to wait); the count is taken off after.
    return Base::_getn(ptr, count).then([this](std::size_t n) {
      Consumed(n);
      return n;
    });
  }

 private:
  static constexpr std::size_t kMinBlockBytes = 4096;

  static std::runtime_error Stopped() {
    return std::runtime_error("the reader stopped reading the response body");
  }

  void Consumed(std::size_t count) {
    pplx::task_completion_event<void> room;
    {
      std::lock_guard<std::mutex> lock(mu_);
      unread_ -= static_cast<std::int64_t>(count);
      if (!waiting_ || unread_ > limit_ / 2) return;
      waiting_ = false;
      room = room_;
    }
    room.set();
  }

  const std::int64_t limit_;
  mutable std::mutex mu_;
  // Written minus read; may dip below zero for a moment (a getn's count is taken off in
  // its continuation, which may run before the write that fed it has added its count).
  std::int64_t unread_ = 0;   // guarded by mu_
  std::int64_t peak_ = 0;     // guarded by mu_
  bool waiting_ = false;      // guarded by mu_: room_ has a write waiting on it
  bool stopped_ = false;      // guarded by mu_
  bool response_attached_ = false;  // guarded by mu_
  bool response_done_ = false;      // guarded by mu_
  std::condition_variable done_cv_;
  pplx::task_completion_event<void> room_;  // guarded by mu_
};

}  // namespace eventbuffer::controller
