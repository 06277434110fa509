#include "controller/durable/event_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "controller/durable/record_codec.h"

namespace eventbuffer::controller {
namespace {

namespace fs = std::filesystem;
using F = EventRecord::Field;

// A record with every text field and number set, distinct per (uid, rv).
EventRef FullEvent(const std::string& uid, const std::string& rv, std::int64_t time_ms,
                   const std::string& ns = "default") {
  EventRecord::Builder b;
  std::vector<std::string> values;
  values.reserve(EventRecord::kFieldCount);
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
    values.push_back("f" + std::to_string(i) + "-" + uid + "-" + rv);
  }
  values[static_cast<std::size_t>(F::kUid)] = uid;
  values[static_cast<std::size_t>(F::kResourceVersion)] = rv;
  values[static_cast<std::size_t>(F::kNamespace)] = ns;
  values[static_cast<std::size_t>(F::kInvolvedNamespace)] = ns;
  values[static_cast<std::size_t>(F::kMessage)] = std::string(200, 'm') + uid;
  values[static_cast<std::size_t>(F::kInvolvedFieldPath)] = "";  // an empty field too
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) b.Set(F(i), values[i]);
  b.numbers().count = -7;
  b.numbers().series_count = 2'000'000'000;
  b.numbers().last_seen_unix_ms = time_ms;
  b.numbers().receive_unix_ns = -1;
  return b.Build();
}

class EventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("event_store_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<EventStore> OpenStore(EventStoreOptions o = {}) {
    o.dir = dir_.string();
    std::string error;
    auto store = EventStore::Open(o, &error);
    EXPECT_NE(store, nullptr) << error;
    return store;
  }
  std::vector<EventRef> RestoreAll(EventStore* store) {
    std::vector<EventRef> out;
    store->Restore([&](EventRef r) { out.push_back(std::move(r)); });
    return out;
  }

  fs::path dir_;
};

TEST(RecordCodecTest, RoundTripsEveryField) {
  const EventRef e = FullEvent("u1", "42", 1'700'000'000'123);
  std::string bytes;
  EncodeRecord(*e, &bytes);
  EventRef back;
  ASSERT_TRUE(DecodeRecord(bytes, &back));
  EXPECT_TRUE(*back == *e);
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
    EXPECT_EQ(back->Get(F(i)), e->Get(F(i))) << "field " << i;
  }
  EXPECT_EQ(back->numbers().count, -7);
  EXPECT_EQ(back->numbers().series_count, 2'000'000'000);
  EXPECT_EQ(back->numbers().receive_unix_ns, -1);
}

// Restored in write order through a RevisionCache, revisions share their base again.
TEST(RecordCodecTest, RevisionsShareTheirBaseWhenDecodedInOrder) {
  const EventRef first = FullEvent("u1", "1", 1'700'000'000'000);
  // The next revision: a new resourceVersion and count.
  EventRecord::Builder next = EventRecord::Builder::Of(*first);
  next.Set(F::kResourceVersion, "2");
  next.numbers().count = 8;
  const EventRef second = next.Build();
  std::string a, b;
  EncodeRecord(*first, &a);
  EncodeRecord(*second, &b);
  RevisionCache revisions;
  EventRef back1, back2;
  ASSERT_TRUE(DecodeRecord(a, &back1, &revisions));
  ASSERT_TRUE(DecodeRecord(b, &back2, &revisions));
  EXPECT_EQ(back1->base(), nullptr);
  EXPECT_EQ(back2->base(), back1.get());
  EXPECT_TRUE(*back2 == *second);
}

TEST(RecordCodecTest, RefusesDamagedInput) {
  std::string bytes;
  EncodeRecord(*FullEvent("u1", "1", 5), &bytes);
  EventRef out;
  EXPECT_FALSE(DecodeRecord(bytes.substr(0, bytes.size() - 1), &out));  // short
  EXPECT_FALSE(DecodeRecord(bytes + "x", &out));                        // trailing
  EXPECT_FALSE(DecodeRecord("", &out));
  std::string wrong_version = bytes;
  wrong_version[0] = 9;
  EXPECT_FALSE(DecodeRecord(wrong_version, &out));
  EXPECT_EQ(out, nullptr);  // unchanged
}

TEST_F(EventStoreTest, RoundTripsThroughTheDatabase) {
  const EventRef a = FullEvent("ua", "1", 1000), b = FullEvent("ub", "2", 2000, "kube-system");
  {
    auto store = OpenStore();
    ASSERT_TRUE(store->Append(a));
    ASSERT_TRUE(store->Append(b));
    ASSERT_TRUE(store->Flush());
    EXPECT_EQ(store->Stats().written, 2u);
    EXPECT_EQ(store->Stats().batches, 1u);
  }
  auto store = OpenStore();
  const auto got = RestoreAll(store.get());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(*got[0] == *a);
  EXPECT_TRUE(*got[1] == *b);
  EXPECT_EQ(store->Stats().restored, 2u);
}

TEST_F(EventStoreTest, DuplicateWriteIsANoOp) {
  auto store = OpenStore();
  store->Append(FullEvent("u", "1", 1000));
  store->Append(FullEvent("u", "1", 1000));
  ASSERT_TRUE(store->Flush());
  store->Append(FullEvent("u", "1", 1000));
  ASSERT_TRUE(store->Flush());
  EXPECT_EQ(store->Stats().written, 1u);
  EXPECT_EQ(RestoreAll(store.get()).size(), 1u);
}

TEST_F(EventStoreTest, RestoresInTimeOrderThenWriteOrder) {
  auto store = OpenStore();
  store->Append(FullEvent("u3", "1", 3000));
  store->Append(FullEvent("u1", "1", 1000));
  store->Append(FullEvent("u2b", "1", 2000));
  store->Append(FullEvent("u2a", "1", 2000));
  ASSERT_TRUE(store->Flush());
  std::vector<std::string> uids;
  for (const auto& r : RestoreAll(store.get())) uids.emplace_back(r->uid());
  EXPECT_EQ(uids, (std::vector<std::string>{"u1", "u2b", "u2a", "u3"}));
}

TEST_F(EventStoreTest, RemoveDeletesEvictedOccurrencesInOrderWithAppends) {
  auto store = OpenStore();
  const EventRef a = FullEvent("ua", "1", 1000), b = FullEvent("ub", "1", 2000);
  store->Append(a);
  store->Append(b);
  store->Remove({a});  // same batch: the insert comes first, then the delete
  ASSERT_TRUE(store->Flush());
  auto got = RestoreAll(store.get());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->uid(), "ub");
  store->Remove({b});
  ASSERT_TRUE(store->Flush());
  EXPECT_TRUE(RestoreAll(store.get()).empty());
  EXPECT_EQ(store->Stats().deleted, 2u);
}

TEST_F(EventStoreTest, WriterThreadCommitsEachInterval) {
  EventStoreOptions o;
  o.sync_interval = std::chrono::milliseconds(20);
  auto store = OpenStore(o);
  store->Start();
  store->Append(FullEvent("u", "1", 1000));
  for (int i = 0; i < 500 && store->Stats().written == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(store->Stats().written, 1u);
  store->Stop();
}

TEST_F(EventStoreTest, ConcurrentAppendsAreAllWritten) {
  EventStoreOptions o;
  o.sync_interval = std::chrono::milliseconds(5);
  auto store = OpenStore(o);
  store->Start();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        EXPECT_TRUE(store->Append(FullEvent("u" + std::to_string(t), std::to_string(i), i)));
      }
    });
  }
  for (auto& t : threads) t.join();
  store->Stop();
  EXPECT_EQ(store->Stats().written, 8000u);
  EXPECT_EQ(RestoreAll(store.get()).size(), 8000u);
}

TEST_F(EventStoreTest, FullQueueDropsAndCounts) {
  EventStoreOptions o;
  o.queue_capacity = 4;
  auto store = OpenStore(o);  // not started: nothing drains the queue
  for (int i = 0; i < 6; ++i) store->Append(FullEvent("u", std::to_string(i), i));
  EXPECT_EQ(store->Stats().dropped_queue_full, 2u);
  EXPECT_EQ(store->Stats().queued, 4u);
  ASSERT_TRUE(store->Flush());
  EXPECT_EQ(store->Stats().written, 4u);
  EXPECT_TRUE(store->Append(FullEvent("u", "9", 9)));  // room again
}

TEST_F(EventStoreTest, BudgetDeletesOldestFirst) {
  EventStoreOptions o;
  o.max_bytes = 1024 * 1024;  // 16 pages of 64 KiB; the 4000 rows take about 2.5 MiB
  auto store = OpenStore(o);
  for (int i = 0; i < 4000; ++i) store->Append(FullEvent("u" + std::to_string(i), "1", 1000 + i));
  ASSERT_TRUE(store->Flush());
  const auto s = store->Stats();
  EXPECT_GT(s.budget_deleted, 0u);
  EXPECT_LE(s.database_bytes, o.max_bytes);
  const auto got = RestoreAll(store.get());
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.size() + s.budget_deleted, 4000u);
  // What is left is the newest: the oldest left follows every deleted one.
  EXPECT_EQ(got.front()->uid(), "u" + std::to_string(s.budget_deleted));
  EXPECT_EQ(got.back()->uid(), "u3999");
  EXPECT_LE(fs::file_size(store->path()), o.max_bytes + 64 * 1024);  // pages given back
}

TEST_F(EventStoreTest, CorruptDatabaseIsMovedAsideNotDeleted) {
  fs::create_directories(dir_);
  const fs::path db = dir_ / EventStore::kFileName;
  {
    std::ofstream f(db, std::ios::binary);
    f << std::string(8192, 'x');  // not a database
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Stats().corrupt_moved_aside, 1u);
  EXPECT_TRUE(RestoreAll(store.get()).empty());
  int aside = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("eventbuffer.db.corrupt-", 0) == 0) {
      ++aside;
      EXPECT_EQ(fs::file_size(entry.path()), 8192u);  // the bytes are kept
    }
  }
  EXPECT_EQ(aside, 1);
  store->Append(FullEvent("u", "1", 1));
  EXPECT_TRUE(store->Flush());  // the fresh database works
}

TEST_F(EventStoreTest, DamagedPagesFailQuickCheckAndAreMovedAside) {
  {
    auto store = OpenStore();
    for (int i = 0; i < 500; ++i) store->Append(FullEvent("u" + std::to_string(i), "1", i));
    ASSERT_TRUE(store->Flush());
  }  // closed: checkpointed into the database file
  const fs::path db = dir_ / EventStore::kFileName;
  {
    std::fstream f(db, std::ios::binary | std::ios::in | std::ios::out);
    // The page size: bytes 16-17 of the header, big-endian; 1 means 65536.
    f.seekg(16);
    unsigned char size_bytes[2] = {};
    f.read(reinterpret_cast<char*>(size_bytes), 2);
    std::uint32_t page_size = (std::uint32_t{size_bytes[0]} << 8) | size_bytes[1];
    if (page_size == 1) page_size = 65536;
    ASSERT_GT(fs::file_size(db), 4u * page_size);
    f.seekp(3 * page_size + 8);  // inside a B-tree page, past the page header's first bytes
    const std::string garbage(3000, '\xa5');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Stats().corrupt_moved_aside, 1u);
  EXPECT_TRUE(RestoreAll(store.get()).empty());
}

TEST_F(EventStoreTest, TornWalTailRecoversToTheLastGoodCommit) {
  const fs::path copy = dir_ / "copy";
  {
    auto store = OpenStore();
    store->Append(FullEvent("first", "1", 1));
    ASSERT_TRUE(store->Flush());
    store->Append(FullEvent("second", "1", 2));
    ASSERT_TRUE(store->Flush());
    // Copy the database and its WAL while open (not checkpointed: both commits in the WAL).
    fs::create_directories(copy);
    fs::copy_file(store->path(), copy / EventStore::kFileName);
    fs::copy_file(store->path() + "-wal", copy / (std::string(EventStore::kFileName) + "-wal"));
  }
  const fs::path wal = copy / (std::string(EventStore::kFileName) + "-wal");
  const auto size = fs::file_size(wal);
  ASSERT_GT(size, 32u + 2 * 4120u);   // header plus at least two frames
  fs::resize_file(wal, size - 1000);  // the last frame torn in the middle
  EventStoreOptions o;
  o.dir = copy.string();
  std::string error;
  auto store = EventStore::Open(o, &error);
  ASSERT_NE(store, nullptr) << error;
  EXPECT_EQ(store->Stats().corrupt_moved_aside, 0u);
  std::vector<std::string> uids;
  store->Restore([&](EventRef r) { uids.emplace_back(r->uid()); });
  EXPECT_EQ(uids, std::vector<std::string>{"first"});
}

TEST_F(EventStoreTest, FullDiskKeepsTheBatchAndRetries) {
  // SQLite's max_page_count stands in for a full file system: a write beyond it fails with
  // SQLITE_FULL, as it does on ENOSPC.
  EventStoreOptions o;
  o.max_page_count_for_testing = 12;  // 768 KiB of 64 KiB pages; 3000 rows need about 2 MiB
  o.max_bytes = 0;
  auto store = OpenStore(o);
  for (int i = 0; i < 3000; ++i) store->Append(FullEvent("u" + std::to_string(i), "1", i));
  EXPECT_FALSE(store->Flush());
  EXPECT_EQ(store->Stats().disk_full, 1u);
  EXPECT_EQ(store->Stats().queued, 3000u);  // kept for the retry
  EXPECT_FALSE(store->Flush());
  EXPECT_EQ(store->Stats().disk_full, 2u);
  EXPECT_EQ(store->Stats().written, 0u);
  EXPECT_TRUE(RestoreAll(store.get()).empty());  // rolled back: nothing half-written
  // Space comes back: the retry writes everything.
  store.reset();
  o.max_page_count_for_testing = 0;
  store = OpenStore(o);
  for (int i = 0; i < 3000; ++i) store->Append(FullEvent("u" + std::to_string(i), "1", i));
  EXPECT_TRUE(store->Flush());
  EXPECT_EQ(RestoreAll(store.get()).size(), 3000u);
}

TEST_F(EventStoreTest, DatabaseHeldByAnotherProcessFailsOpenWithoutMovingIt) {
  {
    auto first = OpenStore();
    first->Append(FullEvent("u", "1", 1));
    ASSERT_TRUE(first->Flush());
  }
  sqlite3* other = nullptr;  // stands in for a second controller on the same directory
  ASSERT_EQ(sqlite3_open((dir_ / EventStore::kFileName).c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  EventStoreOptions o;
  o.dir = dir_.string();
  std::string error;
  EXPECT_EQ(EventStore::Open(o, &error), nullptr);
  EXPECT_NE(error.find("locked"), std::string::npos) << error;
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  auto again = OpenStore();
  EXPECT_EQ(again->Stats().corrupt_moved_aside, 0u);
  EXPECT_EQ(RestoreAll(again.get()).size(), 1u);  // still there, not moved aside
}

// A real full file system: a 4 MiB tmpfs (needs root; skipped otherwise). A filler file
// takes most of it; the store writes until a commit fails with SQLITE_FULL, keeps serving
// what it committed, and writes the kept batch once the filler is gone.
TEST_F(EventStoreTest, FullTmpfsKeepsTheBatchAndRecoversWhenSpaceReturns) {
  fs::create_directories(dir_);
  const std::string mount = "mount -t tmpfs -o size=4m tmpfs " + dir_.string() + " 2>/dev/null";
  if (std::system(mount.c_str()) != 0) GTEST_SKIP() << "cannot mount a tmpfs (not root?)";
  struct Unmount {
    std::string dir;
    ~Unmount() { std::system(("umount " + dir).c_str()); }
  } unmount{dir_.string()};
  {
    std::ofstream filler(dir_ / "filler", std::ios::binary);
    filler << std::string(3 * 1024 * 1024, 'f');  // leaves 1 MiB: 16 pages of 64 KiB
  }
  EventStoreOptions o;
  o.max_bytes = 0;
  auto store = OpenStore(o);
  ASSERT_NE(store, nullptr);
  int appended = 0, committed = 0;
  for (int batch = 0; batch < 200 && store->Stats().disk_full == 0; ++batch) {
    for (int i = 0; i < 20; ++i) store->Append(FullEvent("u" + std::to_string(appended++), "1", i));
    if (store->Flush()) committed = appended;
  }
  ASSERT_GE(store->Stats().disk_full, 1u);
  EXPECT_GT(committed, 0);
  EXPECT_GT(store->Stats().queued, 0u);
  EXPECT_EQ(RestoreAll(store.get()).size(), static_cast<std::size_t>(committed));
  fs::remove(dir_ / "filler");
  EXPECT_TRUE(store->Flush());
  EXPECT_EQ(store->Stats().queued, 0u);
  EXPECT_EQ(RestoreAll(store.get()).size(), static_cast<std::size_t>(appended));
  store.reset();
}

}  // namespace
}  // namespace eventbuffer::controller
