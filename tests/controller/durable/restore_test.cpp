// The store wired to the buffer as main.cpp does: BufferSink writes what the buffer stored,
// a restart restores through EventBuffer::Append, a relist's overlap is refused, and
// retention's evictions are deleted from disk.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include "controller/buffer_sink.h"
#include "controller/durable/event_store.h"
#include "eventbuffer/event_buffer.h"
#include "eventbuffer/revision_cache.h"

namespace eventbuffer::controller {
namespace {

namespace fs = std::filesystem;
using F = EventRecord::Field;

constexpr std::int64_t kBase = 1'700'000'000'000;

// With revisions, built as the watch decoder builds it: a revision of an Event seen
// before shares its base.
EventRef Occurrence(const std::string& object, const std::string& uid, int rv,
                    std::int64_t time_ms, RevisionCache* revisions = nullptr) {
  const std::string rv_text = std::to_string(rv), name = object + ".abc";
  EventRecord::Builder b;
  b.Set(F::kUid, uid)
      .Set(F::kResourceVersion, rv_text)
      .Set(F::kNamespace, "default")
      .Set(F::kName, name)
      .Set(F::kInvolvedKind, "Pod")
      .Set(F::kInvolvedNamespace, "default")
      .Set(F::kInvolvedName, object)
      .Set(F::kReason, "BackOff")
      .Set(F::kMessage, "Back-off restarting failed container");
  b.numbers().count = rv;
  b.numbers().last_seen_unix_ms = time_ms;
  if (revisions == nullptr) return b.Build();
  EventRef r = b.Build(revisions->Lookup(uid));
  revisions->Remember(r);
  return r;
}

BufferConfig Config(GrayMode mode) {
  BufferConfig c;
  c.mode = mode;
  c.verify.sample_rate = 0;
  c.retention.max_age = std::chrono::hours(1);
  c.retention.max_events_per_object = 5;
  return c;
}

class RestoreTest : public ::testing::TestWithParam<GrayMode> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("restore_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(static_cast<int>(GetParam())));
    fs::remove_all(dir_);
    options_.dir = dir_.string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<EventStore> Open() {
    std::string error;
    auto store = EventStore::Open(options_, &error);
    EXPECT_NE(store, nullptr) << error;
    return store;
  }
  fs::path dir_;
  EventStoreOptions options_;
};

TEST_P(RestoreTest, RestartKeepsHistoryRelistAddsNothingEvictionsLeaveTheDisk) {
  {
    EventBuffer buffer(Config(GetParam()));
    auto store = Open();
    BufferSink sink(&buffer, store.get());
    // One Event repeated three times (MODIFIED: rv 10, 11, 12) and another once.
    for (int rv = 10; rv <= 12; ++rv) sink.Append(Occurrence("web", "u-web", rv, kBase + rv));
    sink.Append(Occurrence("db", "u-db", 20, kBase + 20));
    sink.Append(Occurrence("db", "u-db", 20, kBase + 20));  // a duplicate: not written again
    store->Stop();
    EXPECT_EQ(store->Stats().written, 4u);
  }
  EventBuffer buffer(Config(GetParam()));
  auto store = Open();
  buffer.SetEvictionSink([&](std::vector<EventRef>&& e) { store->Remove(std::move(e)); });
  std::size_t kept = 0;
  store->Restore([&](EventRef r) {
    if (buffer.Append(r) == EventBuffer::AppendResult::kStored) ++kept;
  });
  EXPECT_EQ(kept, 4u);
  const auto web = buffer.Read("default/Pod/web");
  ASSERT_EQ(web.size(), 3u);
  EXPECT_EQ(web[0]->resource_version(), "10");  // restored in order
  EXPECT_EQ(web[2]->resource_version(), "12");
  EXPECT_EQ(buffer.List(EventQuery{}).items.size(), 4u);  // the query index has them too
  // The relist after the restart returns only the latest revisions: refused as duplicates.
  BufferSink sink(&buffer, store.get());
  sink.Append(Occurrence("web", "u-web", 12, kBase + 12));
  sink.Append(Occurrence("db", "u-db", 20, kBase + 20));
  EXPECT_EQ(buffer.Stats().appended, 4u);
  EXPECT_EQ(buffer.Stats().dedup_hits, 2u);
  // Retention evicts the web Event's revisions (older than the hour); the disk follows.
  sink.Append(Occurrence("db", "u-db", 21, kBase + 3'600'000));
  EXPECT_EQ(buffer.EnforceRetention(kBase + 3'600'000 + 15), 3u);
  ASSERT_TRUE(store->Flush());
  std::set<std::string> on_disk;
  store->Restore([&](EventRef r) {
    on_disk.insert(std::string(r->uid()) + "@" + std::string(r->resource_version()));
  });
  EXPECT_EQ(on_disk, (std::set<std::string>{"u-db@20", "u-db@21"}));
}

INSTANTIATE_TEST_SUITE_P(Modes, RestoreTest,
                         ::testing::Values(GrayMode::kLegacy, GrayMode::kShadow,
                                           GrayMode::kAtomic));

TEST_P(RestoreTest, TheStoreKeepsTheMessageAsTheBufferHoldsIt) {
  BufferConfig config = Config(GetParam());
  config.retention.max_message_bytes = 1024;
  EventBuffer buffer(config);
  auto store = Open();
  BufferSink sink(&buffer, store.get());
  EventRecord::Builder b;
  const std::string message(1 << 20, 'x');  // 1 MiB
  b.Set(F::kUid, "u-big").Set(F::kResourceVersion, "7").Set(F::kNamespace, "default");
  b.Set(F::kName, "big.1").Set(F::kInvolvedKind, "Pod").Set(F::kInvolvedNamespace, "default");
  b.Set(F::kInvolvedName, "big").Set(F::kMessage, message);
  b.numbers().last_seen_unix_ms = kBase;
  sink.Append(b.Build());
  ASSERT_TRUE(store->Flush());
  const auto held = buffer.Read("default/Pod/big");
  ASSERT_EQ(held.size(), 1u);
  EXPECT_LE(held[0]->message().size(), 1024u);
  std::vector<EventRef> on_disk;
  store->Restore([&](EventRef r) { on_disk.push_back(std::move(r)); });
  ASSERT_EQ(on_disk.size(), 1u);
  EXPECT_TRUE(*on_disk[0] == *held[0]);  // truncated, with its marker, as held
}

// The gray release after a restart: a buffer restored from the store holds, routes and
// verifies exactly like the buffer that ingested the same stream live, in every mode.
struct RolloutCase {
  GrayMode mode;
  double rollout_percent;
};

class RestoreRolloutTest : public ::testing::TestWithParam<RolloutCase> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("restore_rollout_test_" + std::to_string(::getpid()) + "_" +
            std::to_string(static_cast<int>(GetParam().mode)));
    fs::remove_all(dir_);
    options_.dir = dir_.string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  BufferConfig RolloutConfig() const {
    BufferConfig c = Config(GetParam().mode);
    c.rollout_percent = GetParam().rollout_percent;
    c.retention.max_events_per_object = 1000;
    return c;
  }
  fs::path dir_;
  EventStoreOptions options_;
};

TEST_P(RestoreRolloutTest, RestoredBufferHoldsRoutesAndVerifiesLikeTheLiveOne) {
  EventBuffer live(RolloutConfig());
  std::vector<std::string> keys;
  {
    std::string error;
    auto store = EventStore::Open(options_, &error);
    ASSERT_NE(store, nullptr) << error;
    BufferSink sink(&live, store.get());
    RevisionCache revisions;
    // 200 objects, each with an Event seen 1..4 times (MODIFIED revisions).
    for (int object = 0; object < 200; ++object) {
      const std::string name = "pod-" + std::to_string(object);
      keys.push_back("default/Pod/" + name);
      for (int rv = 1; rv <= 1 + object % 4; ++rv) {
        sink.Append(Occurrence(name, "u-" + name, 1000 * object + rv, kBase + rv, &revisions));
      }
    }
    store->Stop();
  }
  EventBuffer restored(RolloutConfig());
  {
    std::string error;
    auto store = EventStore::Open(options_, &error);
    ASSERT_NE(store, nullptr) << error;
    store->Restore([&](EventRef r) { restored.Append(r); });
    store->Stop();
  }
  const BufferStats a = live.Stats(), b = restored.Stats();
  for (std::size_t be = 0; be < kBackendCount; ++be) {
    EXPECT_EQ(a.backend[be].objects, b.backend[be].objects) << be;
    EXPECT_EQ(a.backend[be].events, b.backend[be].events) << be;
  }
  EXPECT_EQ(a.appended, b.appended);
  // The restore shares revisions' text with their base as the live decoder did: the same
  // bytes are held.
  EXPECT_EQ(a.record_bytes, b.record_bytes);
  for (const std::string& key : keys) {
    const auto x = live.Read(key), y = restored.Read(key);
    ASSERT_EQ(x.size(), y.size()) << key;
    for (std::size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(*x[i] == *y[i]) << key << " #" << i;
  }
  // Verification: where both backends are written, the restored buffer's agree.
  restored.VerifySweep(keys.size());
  const BufferStats v = restored.Stats();
  for (std::size_t k = 0; k < kMismatchKindCount; ++k) EXPECT_EQ(v.mismatches[k], 0u) << k;
  const bool dual = GetParam().mode == GrayMode::kShadow || GetParam().mode == GrayMode::kCanary;
  EXPECT_EQ(v.verifications[static_cast<std::size_t>(VerifyResult::kMatch)] > 0, dual);
}

INSTANTIATE_TEST_SUITE_P(Modes, RestoreRolloutTest,
                         ::testing::Values(RolloutCase{GrayMode::kLegacy, 0},
                                           RolloutCase{GrayMode::kShadow, 0},
                                           RolloutCase{GrayMode::kCanary, 37.5},
                                           RolloutCase{GrayMode::kAtomic, 100}));

}  // namespace
}  // namespace eventbuffer::controller
