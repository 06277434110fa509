// Concurrency properties of both slice-map backends, meant to run under ThreadSanitizer
// (races) and AddressSanitizer (retention never lets a reader touch freed memory).
//
// Every value encodes (writer, n) where n counts that writer's appends to that key. So any
// read of a key can be checked on its own: per writer, the values must be consecutive
// (no gap, no duplicate, writer order kept); without retention they must also start at 0
// (a prefix), and successive reads of a key by one reader only ever grow.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "eventbuffer/event_record.h"
#include "eventbuffer/mutex_slice_map.h"
#include "eventbuffer/segmented/slice_map.h"

namespace eventbuffer {
namespace {

std::uint64_t Encode(std::uint32_t writer, std::uint32_t n) {
  return (std::uint64_t{writer} << 32) | n;
}
// A value that knows whether it is alive: reading a slot that is not constructed yet, or
// already destroyed, shows up as a bad magic. Its move constructor sometimes yields, which
// widens the window between claiming a slot and committing it.
struct Probe {
  // Yielding only matters where writers collide on keys; wide workloads switch it off.
  static inline std::atomic<bool> yield_in_move{true};
  static constexpr std::uint64_t kLive = 0x5eed5eed5eed5eedULL;
  std::uint64_t x = 0;
  std::uint64_t magic = 0;
  Probe() = default;
  explicit Probe(std::uint64_t v) : x(v), magic(kLive) {}
  Probe(const Probe& o) : x(o.x), magic(o.magic) {}
  // Yields before writing anything, while the slot is claimed but not yet built.
  Probe(Probe&& o) noexcept : x(MaybeYield(o.x)), magic(o.magic) {}
  Probe& operator=(const Probe&) = default;
  Probe& operator=(Probe&&) = default;
  ~Probe() { magic = 0xdeadULL; }
  static std::uint64_t MaybeYield(std::uint64_t v) {
    if (v % 64 == 1 && yield_in_move.load(std::memory_order_relaxed)) std::this_thread::yield();
    return v;
  }
};
constexpr std::uint64_t kBad = ~std::uint64_t{0};

std::uint64_t Decode(std::uint64_t v) { return v; }
std::uint64_t Decode(const Probe& p) { return p.magic == Probe::kLive ? p.x : kBad; }
// The values the buffer holds: counted references to records (x rides in a number).
std::uint64_t Decode(const eventbuffer::EventRef& v) {
  return static_cast<std::uint64_t>(v->numbers().receive_unix_ns);
}
template <class V>
V Make(std::uint64_t x) {
  if constexpr (std::is_same_v<V, std::uint64_t>) {
    return x;
  } else if constexpr (std::is_same_v<V, Probe>) {
    return Probe(x);
  } else {
    eventbuffer::EventRecord::Builder b;
    b.numbers().receive_unix_ns = static_cast<std::int64_t>(x);
    return b.Build();
  }
}

// Small deterministic generator, one per thread.
struct Rng {
  std::uint64_t s;
  std::uint32_t Next(std::uint32_t bound) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::uint32_t>((s >> 33) % bound);
  }
};

// ThreadSanitizer runs about 10x slower: keep its run to seconds.
#if defined(__SANITIZE_THREAD__)
constexpr int kAppendsPerWriter = 8000;
#else
constexpr int kAppendsPerWriter = 20000;
#endif

struct Workload {
  int writers = 4;
  int appends_per_writer = kAppendsPerWriter;
  int keys = 100;
  int readers = 2;
  bool retention = false;  // one thread drops from the front and erases drained keys
};

std::string KeyName(int k) { return "ns-" + std::to_string(k % 7) + "/Pod/p-" + std::to_string(k); }

// Checks one read on its own. Returns "" when fine, else what is wrong.
template <class V>
std::string CheckRead(const std::vector<V>& values, bool from_start) {
  std::unordered_map<std::uint32_t, std::uint32_t> last;
  for (const V& v : values) {
    const std::uint64_t x = Decode(v);
    if (x == kBad) return "a value that is not constructed (or already destroyed)";
    const auto w = static_cast<std::uint32_t>(x >> 32);
    const auto n = static_cast<std::uint32_t>(x);
    auto it = last.find(w);
    if (it == last.end()) {
      if (from_start && n != 0)
        return "writer " + std::to_string(w) + " starts at " + std::to_string(n);
      last.emplace(w, n);
    } else {
      if (n != it->second + 1) {
        return "writer " + std::to_string(w) + ": " + std::to_string(it->second) + " then " +
               std::to_string(n);
      }
      it->second = n;
    }
  }
  return "";
}

template <class Map, class V>
void RunWorkload(Map& m, const Workload& cfg) {
  Probe::yield_in_move.store(cfg.keys <= 100);
  std::vector<std::string> keys;
  for (int k = 0; k < cfg.keys; ++k) keys.push_back(KeyName(k));
  // appended[w][k]: how many values writer w appended to key k (read after join).
  std::vector<std::vector<std::uint32_t>> appended(cfg.writers,
                                                   std::vector<std::uint32_t>(cfg.keys, 0));
  std::atomic<int> writers_left{cfg.writers};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<bool> failed{false};
  std::string failure;  // written once, by whoever sets `failed` first
  auto fail = [&](std::string what) {
    bool expected = false;
    if (failed.compare_exchange_strong(expected, true)) failure = std::move(what);
  };

  std::vector<std::thread> threads;
  for (int w = 0; w < cfg.writers; ++w) {
    threads.emplace_back([&, w] {
      Rng rng{static_cast<std::uint64_t>(w) * 7919 + 1};
      std::vector<std::uint32_t>& mine = appended[w];
      for (int i = 0; i < cfg.appends_per_writer; ++i) {
        const std::uint32_t k = rng.Next(static_cast<std::uint32_t>(cfg.keys));
        m.Append(keys[k], Make<V>(Encode(static_cast<std::uint32_t>(w), mine[k]++)));
      }
      writers_left.fetch_sub(1);
    });
  }
  for (int r = 0; r < cfg.readers; ++r) {
    threads.emplace_back([&, r] {
      Rng rng{static_cast<std::uint64_t>(r) * 104729 + 3};
      // Without retention, a later read of a key must extend an earlier one.
      std::unordered_map<std::uint32_t, std::vector<std::uint64_t>> previous;
      while (writers_left.load() > 0 && !failed.load()) {
        const std::uint32_t k = rng.Next(static_cast<std::uint32_t>(cfg.keys));
        std::vector<V> got = m.Read(keys[k]);
        if (std::string e = CheckRead(got, !cfg.retention); !e.empty()) {
          fail("Read(" + keys[k] + "): " + e);
          return;
        }
        std::vector<V> seen;
        m.ForEach(keys[k], [&seen](const V& v) { seen.push_back(v); });
        if (std::string e = CheckRead(seen, !cfg.retention); !e.empty()) {
          fail("ForEach(" + keys[k] + "): " + e);
          return;
        }
        if (!cfg.retention && k < 16) {
          std::vector<std::uint64_t> now;
          for (const V& v : seen) now.push_back(Decode(v));
          std::vector<std::uint64_t>& before = previous[k];
          if (now.size() < before.size() ||
              !std::equal(before.begin(), before.end(), now.begin())) {
            fail("a later read of " + keys[k] + " is not an extension of an earlier one");
            return;
          }
          before = std::move(now);
        }
        (void)m.Count(keys[k]);
        if (rng.Next(16) == 0) std::this_thread::yield();  // let writers progress on 2 cores
        if (rng.Next(64) == 0) {
          (void)m.Size();
          (void)m.KeyCount();
        }
      }
    });
  }
  if (cfg.retention) {
    threads.emplace_back([&] {
      Rng rng{42};
      while (writers_left.load() > 0 && !failed.load()) {
        const std::uint32_t k = rng.Next(static_cast<std::uint32_t>(cfg.keys));
        if (rng.Next(16) == 0) std::this_thread::yield();
        switch (rng.Next(4)) {
          case 0:
            dropped.fetch_add(m.DropFront(keys[k], 1 + rng.Next(20)));
            break;
          case 1: {
            // Drops this key's values of writer 0 while they lead.
            dropped.fetch_add(
                m.DropFrontWhile(keys[k], [](const V& v) { return Decode(v) >> 32 == 0; }));
            break;
          }
          default:
            dropped.fetch_add(m.DropFront(keys[k], 1u << 30));
            m.EraseIfEmpty(keys[k]);
            break;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_FALSE(failed.load()) << failure;

  // Nothing lost, nothing duplicated: what remains of each key is, per writer, the
  // consecutive run ending at that writer's last append (retention only cuts the front).
  std::uint64_t total = 0, remaining = 0;
  for (int k = 0; k < cfg.keys; ++k) {
    std::vector<V> got = m.Read(keys[k]);
    ASSERT_EQ(CheckRead(got, !cfg.retention), "") << keys[k];
    ASSERT_EQ(m.Count(keys[k]), got.size()) << keys[k];
    std::unordered_map<std::uint32_t, std::uint32_t> last;
    for (const V& v : got)
      last[static_cast<std::uint32_t>(Decode(v) >> 32)] = static_cast<std::uint32_t>(Decode(v));
    for (int w = 0; w < cfg.writers; ++w) {
      const std::uint32_t n = appended[w][k];
      total += n;
      auto it = last.find(static_cast<std::uint32_t>(w));
      if (it != last.end()) {
        ASSERT_EQ(it->second + 1, n) << keys[k] << " writer " << w << ": tail lost";
      } else if (!cfg.retention) {
        ASSERT_EQ(n, 0u) << keys[k] << " writer " << w << ": values lost";
      }
    }
    remaining += got.size();
  }
  EXPECT_EQ(total, static_cast<std::uint64_t>(cfg.writers) * cfg.appends_per_writer);
  EXPECT_EQ(remaining + dropped.load(), total);
  EXPECT_EQ(m.Size(), remaining);
}

// One map configuration per typed test instance.
template <class MapT, class ValueT, unsigned kRootBits = 16, bool kWeakHash = false>
struct Config {
  using Map = MapT;
  using V = ValueT;
  static std::unique_ptr<Map> New() {
    if constexpr (std::is_same_v<Map, SegmentedSliceMap<V>>) {
      typename Map::Options o;
      o.root_bits = kRootBits;
      // A weak hash (the key's last two characters: 100 values for our keys) puts many
      // keys on one full hash, exercising the collision lists and deep tries.
      if (kWeakHash) {
        o.hash = [](std::string_view k) -> std::uint64_t {
          std::uint64_t h = 0;
          for (std::size_t i = k.size() >= 2 ? k.size() - 2 : 0; i < k.size(); ++i) {
            h = h * 0x100000001b3ULL + static_cast<unsigned char>(k[i]);
          }
          return h;
        };
      }
      return std::make_unique<Map>(o);
    } else {
      return std::make_unique<Map>();
    }
  }
};

using Shared = eventbuffer::EventRef;
using Configs = ::testing::Types<
    Config<MutexSliceMap<std::uint64_t>, std::uint64_t>, Config<MutexSliceMap<Shared>, Shared>,
    Config<MutexSliceMap<Probe>, Probe>, Config<SegmentedSliceMap<std::uint64_t>, std::uint64_t>,
    Config<SegmentedSliceMap<Shared>, Shared>, Config<SegmentedSliceMap<Probe>, Probe>,
    Config<SegmentedSliceMap<Shared>, Shared, 2, true>>;
struct ConfigNames {
  template <class T>
  static std::string GetName(int i) {
    const char* names[] = {"Mutex",
                           "MutexShared",
                           "MutexProbe",
                           "Segmented",
                           "SegmentedShared",
                           "SegmentedProbe",
                           "SegmentedSharedWeakHash"};
    return names[i];
  }
};

template <class C>
class SliceMapConcurrencyTest : public ::testing::Test {};
TYPED_TEST_SUITE(SliceMapConcurrencyTest, Configs, ConfigNames);

TYPED_TEST(SliceMapConcurrencyTest, HotKeysNeverLoseOrDuplicate) {
  auto m = TypeParam::New();
  RunWorkload<typename TypeParam::Map, typename TypeParam::V>(*m, Workload{.keys = 100});
}

TYPED_TEST(SliceMapConcurrencyTest, WideKeysNeverLoseOrDuplicate) {
  auto m = TypeParam::New();
  RunWorkload<typename TypeParam::Map, typename TypeParam::V>(*m, Workload{.keys = 10000});
}

TYPED_TEST(SliceMapConcurrencyTest, SingleKeyKeepsEveryWritersOrder) {
  auto m = TypeParam::New();
  RunWorkload<typename TypeParam::Map, typename TypeParam::V>(
      *m, Workload{.writers = 4, .appends_per_writer = kAppendsPerWriter, .keys = 1});
}

TYPED_TEST(SliceMapConcurrencyTest, RetentionRacingAppendsLosesNothing) {
  auto m = TypeParam::New();
  RunWorkload<typename TypeParam::Map, typename TypeParam::V>(
      *m, Workload{.keys = 100, .retention = true});
}

TYPED_TEST(SliceMapConcurrencyTest, RetentionAndErasureOverFewKeys) {
  // Few keys: drains and erasures hit keys that writers are appending to right now.
  auto m = TypeParam::New();
  RunWorkload<typename TypeParam::Map, typename TypeParam::V>(
      *m, Workload{
              .writers = 3, .appends_per_writer = kAppendsPerWriter, .keys = 4, .retention = true});
}

TYPED_TEST(SliceMapConcurrencyTest, RetentionOverWideKeys) {
  auto m = TypeParam::New();
  RunWorkload<typename TypeParam::Map, typename TypeParam::V>(
      *m, Workload{.keys = 10000, .retention = true});
}

}  // namespace
}  // namespace eventbuffer
