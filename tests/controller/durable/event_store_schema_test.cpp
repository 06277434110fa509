// The store's on-disk schema: a database of another schema version is moved aside whole,
// and two occurrences whose 64-bit identity keys collide are both kept, de-duplicated and
// deleted by their uid and resourceVersion.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "controller/durable/event_store.h"
#include "controller/durable/record_codec.h"

namespace eventbuffer::controller {
namespace {

namespace fs = std::filesystem;
using F = EventRecord::Field;

EventRef Event(const std::string& uid, const std::string& rv, std::int64_t time_ms) {
  EventRecord::Builder b;
  b.Set(F::kUid, uid)
      .Set(F::kResourceVersion, rv)
      .Set(F::kNamespace, "default")
      .Set(F::kName, "web." + uid)
      .Set(F::kReason, "BackOff")
      .Set(F::kMessage, "Back-off restarting failed container " + uid);
  b.numbers().last_seen_unix_ms = time_ms;
  return b.Build();
}

// The documented identity key: 64-bit FNV-1a over uid, 0xff, resourceVersion.
std::int64_t Key(const std::string& uid, const std::string& rv) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  const auto add = [&h](unsigned char c) {
    h ^= c;
    h *= 0x100000001b3ULL;
  };
  for (const char c : uid) add(static_cast<unsigned char>(c));
  add(0xff);
  for (const char c : rv) add(static_cast<unsigned char>(c));
  return static_cast<std::int64_t>(h);
}

void Sql(sqlite3* db, const std::string& sql) {
  char* message = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message), SQLITE_OK)
      << sql << ": " << (message != nullptr ? message : "");
}

class EventStoreSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("event_store_schema_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<EventStore> OpenStore() {
    EventStoreOptions o;
    o.dir = dir_.string();
    std::string error;
    auto store = EventStore::Open(o, &error);
    EXPECT_NE(store, nullptr) << error;
    return store;
  }
  std::vector<std::string> RestoredUids(EventStore* store) {
    std::vector<std::string> out;
    store->Restore([&](EventRef r) { out.emplace_back(r->uid()); });
    return out;
  }
  // Files in dir_ whose names start with prefix.
  std::vector<fs::path> FilesStartingWith(const std::string& prefix) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
    }
    return out;
  }

  fs::path dir_;
};

TEST_F(EventStoreSchemaTest, FirstSchemaIsMovedAsideNotDeleted) {
  {  // A database as the first schema wrote it (no user_version).
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / EventStore::kFileName).c_str(), &db), SQLITE_OK);
    Sql(db,
        "CREATE TABLE occurrences (uid TEXT NOT NULL, resource_version TEXT NOT NULL,"
        " namespace TEXT NOT NULL, time_ms INTEGER NOT NULL, record BLOB NOT NULL,"
        " PRIMARY KEY (uid, resource_version))");
    Sql(db, "CREATE INDEX occurrences_by_time ON occurrences (time_ms)");
    Sql(db, "INSERT INTO occurrences VALUES ('u-old', '1', 'default', 5, x'01')");
    sqlite3_close(db);
  }
  const auto old_size = fs::file_size(dir_ / EventStore::kFileName);
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->Stats().schema_moved_aside, 1u);
    EXPECT_EQ(store->Stats().corrupt_moved_aside, 0u);
    EXPECT_TRUE(RestoredUids(store.get()).empty());
    const auto aside = FilesStartingWith("eventbuffer.db.schema0-");
    ASSERT_EQ(aside.size(), 1u);
    EXPECT_EQ(fs::file_size(aside[0]), old_size);  // the bytes are kept
    store->Append(Event("u-new", "1", 10));
    ASSERT_TRUE(store->Flush());
  }
  // The new database is of the current schema: the next open keeps it.
  auto store = OpenStore();
  EXPECT_EQ(store->Stats().schema_moved_aside, 0u);
  EXPECT_EQ(RestoredUids(store.get()), std::vector<std::string>{"u-new"});
}

TEST_F(EventStoreSchemaTest, NewerSchemaIsMovedAsideToo) {
  {
    auto store = OpenStore();
    store->Append(Event("u", "1", 1));
    ASSERT_TRUE(store->Flush());
  }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / EventStore::kFileName).c_str(), &db), SQLITE_OK);
    Sql(db, "PRAGMA user_version=99");
    sqlite3_close(db);
  }
  auto store = OpenStore();
  EXPECT_EQ(store->Stats().schema_moved_aside, 1u);
  EXPECT_EQ(FilesStartingWith("eventbuffer.db.schema99-").size(), 1u);
  EXPECT_TRUE(RestoredUids(store.get()).empty());
}

TEST_F(EventStoreSchemaTest, CollidingKeysKeepBothOccurrences) {
  { auto store = OpenStore(); }  // creates the schema
  {
    // Another occurrence already holds the key of ("u-b", "1"): what a 64-bit collision
    // would look like.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / EventStore::kFileName).c_str(), &db), SQLITE_OK);
    std::string bytes;
    EncodeRecord(*Event("u-other", "9", 1), &bytes);
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db,
                                 "INSERT INTO occurrences (key, uid, resource_version, record)"
                                 " VALUES (?1, 'u-other', '9', ?2)",
                                 -1, &stmt, nullptr),
              SQLITE_OK);
    sqlite3_bind_int64(stmt, 1, Key("u-b", "1"));
    sqlite3_bind_blob(stmt, 2, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
  }
  auto store = OpenStore();
  const EventRef b = Event("u-b", "1", 2);
  ASSERT_TRUE(store->Append(b));
  ASSERT_TRUE(store->Flush());
  EXPECT_EQ(store->Stats().written, 1u);
  EXPECT_EQ(RestoredUids(store.get()), (std::vector<std::string>{"u-other", "u-b"}));
  ASSERT_TRUE(store->Append(b));  // a repeated write of the unkeyed row: a no-op
  ASSERT_TRUE(store->Flush());
  EXPECT_EQ(store->Stats().written, 1u);
  EXPECT_EQ(RestoredUids(store.get()).size(), 2u);
  store->Remove({b});  // deletes u-b only, not the row holding its key
  ASSERT_TRUE(store->Flush());
  EXPECT_EQ(store->Stats().deleted, 1u);
  EXPECT_EQ(RestoredUids(store.get()), std::vector<std::string>{"u-other"});
}

}  // namespace
}  // namespace eventbuffer::controller
