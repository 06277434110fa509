// BoundedBodyBuffer: writes wait past the limit until the reader brings the unread bytes
// down to half of it; Stop() fails a waiting write and every later one; the closed write
// side ends the stream. Also a two-thread stream through it (run under ThreadSanitizer by
// scripts/test.sh).
#include "controller/kube/bounded_body_buffer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace eventbuffer::controller {
namespace {

using Buffer = concurrency::streams::streambuf<std::uint8_t>;

// A buffer with the given limit (raw, for its own calls) and the streambuf handle on it
// that cpprestsdk and the reader use.
struct Bounded {
  explicit Bounded(std::size_t limit)
      : raw(std::make_shared<BoundedBodyBuffer>(limit)), buffer(raw) {}
  std::shared_ptr<BoundedBodyBuffer> raw;
  Buffer buffer;
};

const std::uint8_t* Bytes(const std::string& s) {
  return reinterpret_cast<const std::uint8_t*>(s.data());
}

// Reads and releases up to n bytes of the front block; returns how many.
std::size_t ReleaseFront(Buffer& buffer, std::size_t n) {
  std::uint8_t* data = nullptr;
  std::size_t count = 0;
  if (!buffer.acquire(data, count) || count == 0) return 0;
  const std::size_t take = std::min(n, count);
  buffer.release(data, take);
  return take;
}

// Reads the stream to its end as the API client does (blocks as they come, a one-byte getn
// when none is buffered), checking each byte against the writers' pattern (position % 251).
// Counts into *received; a read error is thrown.
void ReadPattern(Buffer& buffer, std::size_t* received, bool* in_order) {
  std::uint8_t one = 0;
  for (;;) {
    std::uint8_t* data = nullptr;
    std::size_t count = 0;
    if (buffer.acquire(data, count) && count > 0) {
      for (std::size_t i = 0; i < count; ++i) {
        *in_order = *in_order && data[i] == static_cast<std::uint8_t>((*received + i) % 251);
      }
      *received += count;
      buffer.release(data, count);
      continue;
    }
    if (buffer.getn(&one, 1).get() == 0) return;
    *in_order = *in_order && one == static_cast<std::uint8_t>(*received % 251);
    ++*received;
  }
}

// A task that is not done yet stays so for a moment (it is completed by another call only).
bool StaysPending(const pplx::task<std::size_t>& task) {
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return !task.is_done();
}

TEST(BoundedBodyBufferTest, AWriteWithinTheLimitCompletesAtOnce) {
  auto [raw, buffer] = Bounded(100);
  const std::string data(100, 'a');
  auto write = buffer.putn_nocopy(Bytes(data), data.size());
  ASSERT_TRUE(write.is_done());
  EXPECT_EQ(write.get(), 100u);
  EXPECT_FALSE(raw->writer_waiting());
}

TEST(BoundedBodyBufferTest, AWritePastTheLimitWaitsUntilHalfIsRead) {
  auto [raw, buffer] = Bounded(100);
  const std::string first(60, 'a');
  const std::string second(60, 'b');
  ASSERT_TRUE(buffer.putn_nocopy(Bytes(first), first.size()).is_done());
  auto write = buffer.putn_nocopy(Bytes(second), second.size());  // 120 unread > 100
  EXPECT_TRUE(StaysPending(write));
  EXPECT_TRUE(raw->writer_waiting());
  EXPECT_EQ(ReleaseFront(buffer, 30), 30u);  // 90 unread: still over half (50)
  EXPECT_TRUE(StaysPending(write));
  EXPECT_EQ(ReleaseFront(buffer, 35), 35u);  // 55 unread
  EXPECT_TRUE(StaysPending(write));
  EXPECT_EQ(ReleaseFront(buffer, 5), 5u);  // 50 unread: room again
  EXPECT_EQ(write.get(), 60u);
  EXPECT_FALSE(raw->writer_waiting());
  EXPECT_EQ(raw->peak_unread_bytes(), 120u);
}

TEST(BoundedBodyBufferTest, GetnCountsWhatItReads) {
  auto [raw, buffer] = Bounded(10);
  const std::string data(30, 'x');
  auto write = buffer.putn_nocopy(Bytes(data), data.size());
  EXPECT_TRUE(StaysPending(write));
  std::vector<std::uint8_t> out(25);
  EXPECT_EQ(buffer.getn(out.data(), out.size()).get(), 25u);  // 5 unread
  EXPECT_EQ(write.get(), 30u);
}

TEST(BoundedBodyBufferTest, StopFailsAWaitingWriteAndEveryLaterOne) {
  auto [raw, buffer] = Bounded(10);
  const std::string data(20, 'x');
  auto waiting = buffer.putn_nocopy(Bytes(data), data.size());
  EXPECT_TRUE(StaysPending(waiting));
  raw->Stop();
  EXPECT_THROW(waiting.get(), std::runtime_error);
  EXPECT_THROW(buffer.putn_nocopy(Bytes(data), 1).get(), std::runtime_error);
  raw->Stop();  // idempotent
}

TEST(BoundedBodyBufferTest, StopFailsTheNextWriteWhenNoneIsWaiting) {
  auto [raw, buffer] = Bounded(1000);
  const std::string data(20, 'x');
  ASSERT_EQ(buffer.putn_nocopy(Bytes(data), data.size()).get(), 20u);
  raw->Stop();
  EXPECT_THROW(buffer.putn_nocopy(Bytes(data), data.size()).get(), std::runtime_error);
}

// Keeps every thread of pplx's pool busy (more waiting tasks than it has threads) until
// Release(): a continuation scheduled meanwhile does not run.
class BusyPool {
 public:
  BusyPool() {
    const std::shared_future<void> gate = gate_.get_future().share();
    for (int i = 0; i < 64; ++i) tasks_.push_back(pplx::create_task([gate] { gate.wait(); }));
  }
  ~BusyPool() { Release(); }
  void Release() {
    if (released_) return;
    released_ = true;
    gate_.set_value();
    for (auto& task : tasks_) task.wait();
  }

 private:
  std::promise<void> gate_;
  std::vector<pplx::task<void>> tasks_;
  bool released_ = false;
};

// A write after Stop() fails, and cpprestsdk then closes the buffer and waits for the
// close on the writing thread, a pool thread: the close must not need another one.
TEST(BoundedBodyBufferTest, AFailedWriteClosesTheBufferWithoutAFreePoolThread) {
  auto [raw, buffer] = Bounded(1000);
  raw->Stop();
  BusyPool busy;
  std::promise<void> done;
  std::future<void> finished = done.get_future();
  std::thread writer([&, buffer = buffer]() mutable {
    const std::string data = "x";
    EXPECT_THROW(buffer.putn_nocopy(Bytes(data), data.size()).get(), std::runtime_error);
    done.set_value();
  });
  const bool in_time = finished.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  busy.Release();  // lets a close that waits on the pool finish, so the thread ends
  writer.join();
  EXPECT_TRUE(in_time) << "the failed write waited for a free pool thread";
  std::uint8_t one = 0;
  EXPECT_THROW(buffer.getn(&one, 1).get(), std::runtime_error);  // closed with the error
}

TEST(BoundedBodyBufferTest, ACloseIsCompleteWhenItReturns) {
  auto [raw, buffer] = Bounded(1000);
  BusyPool busy;
  EXPECT_TRUE(buffer.close(std::ios_base::out).is_done());
  EXPECT_TRUE(raw->close(std::ios_base::in, std::make_exception_ptr(std::runtime_error("x")))
                  .is_done());
  busy.Release();
  EXPECT_FALSE(buffer.can_write());
  EXPECT_FALSE(buffer.can_read());
}

TEST(BoundedBodyBufferTest, NoResponseGivenIsDoneAtOnce) {
  auto [raw, buffer] = Bounded(1000);
  EXPECT_FALSE(raw->response_attached());
  EXPECT_TRUE(raw->WaitResponseDone(std::chrono::milliseconds(0)));
}

TEST(BoundedBodyBufferTest, TheClosedWriteSideEndsTheStreamAfterTheLastByte) {
  auto [raw, buffer] = Bounded(1000);
  const std::string data = "hello";
  ASSERT_EQ(buffer.putn_nocopy(Bytes(data), data.size()).get(), 5u);
  buffer.close(std::ios_base::out).wait();
  std::vector<std::uint8_t> out(16);
  EXPECT_EQ(buffer.getn(out.data(), out.size()).get(), 5u);
  EXPECT_EQ(std::string(out.begin(), out.begin() + 5), "hello");
  EXPECT_EQ(buffer.getn(out.data(), out.size()).get(), 0u);
}

TEST(BoundedBodyBufferTest, AWriteSideClosedWithAnErrorThrowsItToTheReader) {
  auto [raw, buffer] = Bounded(1000);
  buffer.close(std::ios_base::out, std::make_exception_ptr(std::runtime_error("reset")))
      .wait();
  std::uint8_t one = 0;
  EXPECT_THROW(buffer.getn(&one, 1).get(), std::runtime_error);
}

// A writer thread that writes the next piece only when the previous write completed (as
// cpprestsdk does), a reader that takes blocks as they come: every byte arrives, in order,
// and the unread bytes never exceed the limit plus one write.
TEST(BoundedBodyBufferTest, AStreamThroughTheBufferArrivesWholeAndBounded) {
  constexpr std::size_t kLimit = 4096;
  constexpr std::size_t kPiece = 1000;
  constexpr std::size_t kTotal = 4000 * kPiece;
  // pplx creates its scheduler on first use, in the (uninstrumented) library, which
  // ThreadSanitizer cannot see synchronised: create it here before the second thread.
  (void)pplx::get_ambient_scheduler();
  auto [raw, buffer] = Bounded(kLimit);
  std::thread writer([&] {
    std::vector<std::uint8_t> piece(kPiece);
    for (std::size_t sent = 0; sent < kTotal; sent += kPiece) {
      for (std::size_t i = 0; i < kPiece; ++i) piece[i] = static_cast<std::uint8_t>((sent + i) % 251);
      buffer.putn_nocopy(piece.data(), kPiece).get();
    }
    buffer.close(std::ios_base::out).wait();
  });
  std::size_t received = 0;
  bool in_order = true;
  ReadPattern(buffer, &received, &in_order);
  writer.join();
  EXPECT_EQ(received, kTotal);
  EXPECT_TRUE(in_order);
  EXPECT_LE(raw->peak_unread_bytes(), kLimit + kPiece);
}

// Stop() from a third thread while bytes flow: the writer's next (or waiting) write fails,
// which closes the buffer with the error (as cpprestsdk's putn does): the reader gets the
// bytes written before, in order, then the error. Run many times so that Stop() lands
// before, during and after a write's copy.
TEST(BoundedBodyBufferTest, StopWhileAStreamFlowsEndsTheWriterAndTheReader) {
  constexpr std::size_t kLimit = 4096;
  constexpr std::size_t kPiece = 1000;
  (void)pplx::get_ambient_scheduler();
  for (int round = 0; round < 50; ++round) {
    auto [raw, buffer] = Bounded(kLimit);
    std::atomic<std::size_t> written{0};
    std::thread writer([&, buffer = buffer]() mutable {
      std::vector<std::uint8_t> piece(kPiece);
      for (std::size_t sent = 0;; sent += kPiece) {
        for (std::size_t i = 0; i < kPiece; ++i) {
          piece[i] = static_cast<std::uint8_t>((sent + i) % 251);
        }
        try {
          buffer.putn_nocopy(piece.data(), kPiece).get();
        } catch (const std::runtime_error&) {
          return;
        }
        written += kPiece;
      }
    });
    std::thread stopper([&, raw = raw] {
      while (written.load() < static_cast<std::size_t>(round % 10) * kPiece) {
        std::this_thread::yield();
      }
      raw->Stop();
    });
    std::size_t received = 0;
    bool in_order = true;
    bool threw = false;
    try {
      ReadPattern(buffer, &received, &in_order);
    } catch (const std::runtime_error&) {
      threw = true;
    }
    stopper.join();
    writer.join();
    EXPECT_TRUE(threw) << "round " << round;  // the stream ends with the error, never cleanly
    EXPECT_TRUE(in_order) << "round " << round;
    EXPECT_LE(received, written.load() + kPiece) << "round " << round;
  }
}

}  // namespace
}  // namespace eventbuffer::controller
