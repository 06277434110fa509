#include "controller/durable/event_store.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "controller/durable/record_codec.h"
#include "eventbuffer/dedup_index.h"

namespace eventbuffer::controller {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kBudgetDeleteMin = 16;

// The schema this code writes (PRAGMA user_version). 0 is the first schema (text primary
// key, time index), which carried no version.
constexpr std::int64_t kSchemaVersion = 2;

// 64 KiB pages: a batch's rows fill whole pages at the end of the table, and the random
// inserts into the key index touch few, large pages (a fraction of the WAL volume and of
// the B-tree work of 4 KiB pages; see docs/durable.md, Cost).
constexpr int kPageSize = 65536;

// The writer commits before its interval ends once this many operations are queued: under
// a burst the batches stay moderate (and the queue far from full), and a Flush finds
// little left to write.
std::size_t EarlyCommitOps(std::size_t queue_capacity) {
  return std::max<std::size_t>(1, queue_capacity / 8);
}

// The row's identity key: 64-bit FNV-1a over uid, a 0xff byte (never in either) and
// resourceVersion, as a signed SQLite integer. Fixed by this definition, so it is the same
// in every build that reads the file.
std::int64_t IdentityKey(std::string_view uid, std::string_view rv) {
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

std::int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsCorruption(int code) {
  const int primary = code & 0xff;
  return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

// Renames the database and its WAL and shared-memory files to <name>.<tag>-<time>[-wal|-shm];
// returns the new name.
std::string MoveAside(const std::string& path, const std::string& tag) {
  const std::string target = path + "." + tag + "-" + std::to_string(UnixSeconds());
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::error_code ec;
    if (!fs::exists(path + suffix, ec)) continue;
    fs::rename(path + suffix, target + suffix, ec);
    if (ec) spdlog::error("durable store: cannot move {}{} aside: {}", path, suffix, ec.message());
  }
  return target;
}

}  // namespace

EventStore::EventStore(EventStoreOptions options, std::string path)
    : options_(std::move(options)), path_(std::move(path)) {}

std::unique_ptr<EventStore> EventStore::Open(const EventStoreOptions& options, std::string* error) {
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) {
    *error = "data directory " + options.dir + ": " + ec.message();
    return nullptr;
  }
  std::unique_ptr<EventStore> store(
      new EventStore(options, (fs::path(options.dir) / kFileName).string()));
  bool corrupt = false;
  std::int64_t old_schema = -1;
  if (store->OpenDatabase(error, &corrupt, &old_schema)) return store;
  store->CloseDatabase();
  if (old_schema >= 0) {
    const std::string target =
        MoveAside(store->path_, "schema" + std::to_string(old_schema));
    spdlog::warn(
        "durable store: {} has schema version {}, this controller writes version {}: moved "
        "aside to {}, starting empty",
        store->path_, old_schema, kSchemaVersion, target);
    store->schema_moved_.fetch_add(1, std::memory_order_relaxed);
  } else if (corrupt) {
    spdlog::error("durable store: {}", *error);
    const std::string target = MoveAside(store->path_, "corrupt");
    spdlog::error("durable store: {} is corrupt: moved aside to {}, starting empty",
                  store->path_, target);
    store->corrupt_.fetch_add(1, std::memory_order_relaxed);
  } else {
    return nullptr;
  }
  error->clear();
  if (store->OpenDatabase(error, &corrupt, &old_schema)) return store;
  store->CloseDatabase();
  return nullptr;
}

bool EventStore::OpenDatabase(std::string* error, bool* corrupt, std::int64_t* old_schema) {
  *corrupt = false;
  *old_schema = -1;
  int rc =
      sqlite3_open_v2(path_.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    *corrupt = IsCorruption(rc);
    *error = path_ + ": " + (db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    return false;
  }
  sqlite3_extended_result_codes(db_, 1);
  // Another process holding the database gives SQLITE_BUSY: not corruption, Open fails.
  sqlite3_busy_timeout(db_, 2000);
  // The first read: a file that is not a database fails here with SQLITE_NOTADB.
  sqlite3_stmt* check = nullptr;
  rc = sqlite3_prepare_v2(db_, "PRAGMA quick_check", -1, &check, nullptr);
  std::string verdict;
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(check);
    if (rc == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(check, 0);
      verdict = text != nullptr ? reinterpret_cast<const char*>(text) : "";
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(check);
  if (rc != SQLITE_OK) {
    *corrupt = IsCorruption(rc) || IsCorruption(sqlite3_extended_errcode(db_));
    *error = path_ + ": " + sqlite3_errmsg(db_);
    return false;
  }
  if (verdict != "ok") {
    *corrupt = true;
    *error = path_ + ": quick_check: " + verdict;
    return false;
  }
  // A database written by another schema version is set aside whole (Open moves it).
  const std::int64_t version = PragmaInt("PRAGMA user_version");
  const bool has_table =
      PragmaInt("SELECT count(*) FROM sqlite_master WHERE name = 'occurrences'") > 0;
  if (has_table && version != kSchemaVersion) {
    *old_schema = version;
    *error = path_ + ": schema version " + std::to_string(version);
    return false;
  }
  // page_size and auto_vacuum only take effect before the first table is created.
  if (!Exec(("PRAGMA page_size=" + std::to_string(kPageSize)).c_str(), error) ||
      !Exec("PRAGMA auto_vacuum=INCREMENTAL", error)) {
    return false;
  }
  {
    sqlite3_stmt* mode = nullptr;
    sqlite3_prepare_v2(db_, "PRAGMA journal_mode=WAL", -1, &mode, nullptr);
    std::string got;
    if (mode != nullptr && sqlite3_step(mode) == SQLITE_ROW) {
      got = reinterpret_cast<const char*>(sqlite3_column_text(mode, 0));
    }
    sqlite3_finalize(mode);
    if (got != "wal") {
      *corrupt = IsCorruption(sqlite3_extended_errcode(db_));
      *error = path_ + ": cannot switch to WAL mode: " + sqlite3_errmsg(db_);
      return false;
    }
  }
  // Rows go to the table in write order (seq, the rowid: appends at the end of the B-tree);
  // the one index is the 8-byte identity key, small enough that its pages stay in the
  // 32 MiB cache.
  if (!Exec("PRAGMA synchronous=NORMAL", error) || !Exec("PRAGMA cache_size=-32768", error) ||
      !Exec("PRAGMA journal_size_limit=67108864", error) ||
      !Exec("CREATE TABLE IF NOT EXISTS occurrences ("
            " seq INTEGER PRIMARY KEY, key INTEGER, uid TEXT NOT NULL,"
            " resource_version TEXT NOT NULL, record BLOB NOT NULL)",
            error) ||
      !Exec("CREATE UNIQUE INDEX IF NOT EXISTS occurrences_by_key ON occurrences (key)", error) ||
      !Exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str(), error)) {
    *corrupt = IsCorruption(sqlite3_extended_errcode(db_));
    return false;
  }
  if (options_.max_page_count_for_testing > 0) {
    const std::string sql =
        "PRAGMA max_page_count=" + std::to_string(options_.max_page_count_for_testing);
    Exec(sql.c_str(), error);
  }
  const auto prepare = [this](const char* sql, sqlite3_stmt** stmt) {
    return sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, nullptr) ==
           SQLITE_OK;
  };
  if (!prepare("INSERT OR IGNORE INTO occurrences (key, uid, resource_version, record)"
               " VALUES (?1, ?2, ?3, ?4)",
               &insert_) ||
      !prepare("SELECT 1 FROM occurrences WHERE (key = ?1 OR key IS NULL) AND uid = ?2"
               " AND resource_version = ?3",
               &find_) ||
      !prepare("DELETE FROM occurrences WHERE key = ?1 AND uid = ?2 AND resource_version = ?3",
               &delete_) ||
      !prepare("DELETE FROM occurrences WHERE key IS NULL AND uid = ?1 AND resource_version = ?2",
               &delete_unkeyed_)) {
    *error = path_ + ": " + sqlite3_errmsg(db_);
    return false;
  }
  database_bytes_.store(static_cast<std::uint64_t>(
                            (PragmaInt("PRAGMA page_count") - PragmaInt("PRAGMA freelist_count")) *
                            PragmaInt("PRAGMA page_size")),
                        std::memory_order_relaxed);
  return true;
}

void EventStore::CloseDatabase() {
  for (sqlite3_stmt** stmt : {&insert_, &find_, &delete_, &delete_unkeyed_}) {
    sqlite3_finalize(*stmt);
    *stmt = nullptr;
  }
  if (db_ != nullptr) sqlite3_close_v2(db_);
  db_ = nullptr;
}

EventStore::~EventStore() {
  Stop();
  std::lock_guard<std::mutex> lock(db_mu_);
  CloseDatabase();
}

bool EventStore::Exec(const char* sql, std::string* error) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) == SQLITE_OK) return true;
  if (error != nullptr) {
    *error = path_ + ": " + sql + ": " + (message != nullptr ? message : "error");
  }
  sqlite3_free(message);
  return false;
}

std::int64_t EventStore::PragmaInt(const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  std::int64_t value = 0;
  if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    value = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  return value;
}

std::size_t EventStore::Restore(const std::function<void(EventRef)>& fn) {
  std::lock_guard<std::mutex> lock(db_mu_);
  // One sequential scan of the table, sorted in memory: much faster than walking the time
  // index, which visits the table in random order.
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT seq, record FROM occurrences", -1, &stmt,
                         nullptr) != SQLITE_OK) {
    spdlog::error("durable store: restore: {}", sqlite3_errmsg(db_));
    return 0;
  }
  struct Row {
    std::int64_t time_ms, rowid;
    EventRef record;
  };
  std::vector<Row> rows;
  std::size_t skipped = 0;
  // Rows come in write order: revisions share their base again.
  RevisionCache revisions(options_.revision_cache);
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const void* blob = sqlite3_column_blob(stmt, 1);
    const int size = sqlite3_column_bytes(stmt, 1);
    EventRef record;
    if (blob == nullptr ||
        !DecodeRecord(std::string_view(static_cast<const char*>(blob), size), &record,
                      &revisions)) {
      ++skipped;
      continue;
    }
    const std::int64_t time_ms = RecordTimeMs(*record);
    rows.push_back(Row{time_ms, sqlite3_column_int64(stmt, 0), std::move(record)});
  }
  if (rc != SQLITE_DONE) {
    spdlog::error("durable store: restore stopped after {} occurrences: {}", rows.size(),
                  sqlite3_errmsg(db_));
  }
  sqlite3_finalize(stmt);
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return a.time_ms != b.time_ms ? a.time_ms < b.time_ms : a.rowid < b.rowid;
  });
  for (Row& row : rows) fn(std::move(row.record));
  if (skipped > 0) spdlog::error("durable store: {} stored rows did not decode: skipped", skipped);
  restored_.fetch_add(rows.size(), std::memory_order_relaxed);
  restore_skipped_.fetch_add(skipped, std::memory_order_relaxed);
  return rows.size();
}

void EventStore::Start() {
  std::lock_guard<std::mutex> lock(queue_mu_);
  if (writer_.joinable() || stop_) return;
  writer_ = std::thread([this] { WriterLoop(); });
}

bool EventStore::Append(EventRef record) {
  std::lock_guard<std::mutex> lock(queue_mu_);
  if (queue_.size() + pending_size_.load(std::memory_order_relaxed) >= options_.queue_capacity) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  queue_.push_back(Op{std::move(record), true});
  if (queue_.size() == EarlyCommitOps(options_.queue_capacity)) queue_cv_.notify_one();
  return true;
}

void EventStore::Remove(std::vector<EventRef> evicted) {
  std::lock_guard<std::mutex> lock(queue_mu_);
  for (EventRef& r : evicted) queue_.push_back(Op{std::move(r), false});
}

bool EventStore::Flush() {
  std::lock_guard<std::mutex> lock(db_mu_);
  return WriteLocked();
}

void EventStore::Stop() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stop_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  Flush();
}

void EventStore::WriterLoop() {
  std::unique_lock<std::mutex> lock(queue_mu_);
  while (!stop_) {
    queue_cv_.wait_for(lock, options_.sync_interval, [this] {
      // Early only while no failed batch waits: a failing disk is retried once per interval.
      return stop_ || (queue_.size() >= EarlyCommitOps(options_.queue_capacity) &&
                       pending_size_.load(std::memory_order_relaxed) == 0);
    });
    if (stop_) break;
    lock.unlock();
    {
      std::lock_guard<std::mutex> db_lock(db_mu_);
      WriteLocked();
    }
    lock.lock();
  }
}

bool EventStore::WriteLocked() {
  if (db_ == nullptr) return false;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (pending_.empty()) {
      pending_.swap(queue_);
    } else {
      pending_.insert(pending_.end(), std::make_move_iterator(queue_.begin()),
                      std::make_move_iterator(queue_.end()));
      queue_.clear();
    }
    pending_size_.store(pending_.size(), std::memory_order_relaxed);
  }
  const std::uint64_t dropped = dropped_.load(std::memory_order_relaxed);
  if (dropped != dropped_logged_) {
    spdlog::warn(
        "durable store: {} occurrences not written (queue full: the disk is slower "
        "than ingest); they stay in memory only",
        dropped - dropped_logged_);
    dropped_logged_ = dropped;
  }
  if (pending_.empty()) return true;
  std::string error;
  int code = SQLITE_OK;
  if (!CommitLocked(&error, &code)) {
    if ((code & 0xff) == SQLITE_FULL) {
      disk_full_.fetch_add(1, std::memory_order_relaxed);
    } else {
      write_errors_.fetch_add(1, std::memory_order_relaxed);
    }
    if (error_log_limit_.Admit(SteadyNs()).admitted) {
      spdlog::error("durable store: writing {} changes failed, retrying in {} ms: {}",
                    pending_.size(), options_.sync_interval.count(), error);
    }
    return false;
  }
  pending_.clear();
  pending_size_.store(0, std::memory_order_relaxed);
  batches_.fetch_add(1, std::memory_order_relaxed);
  EnforceBudgetLocked();
  return true;
}

bool EventStore::CommitLocked(std::string* error, int* code) {
  const auto fail = [&](sqlite3_stmt* stmt) {
    *code = sqlite3_extended_errcode(db_);
    *error = sqlite3_errmsg(db_);
    if (stmt != nullptr) sqlite3_reset(stmt);
    if (sqlite3_get_autocommit(db_) == 0) Exec("ROLLBACK");
    return false;
  };
  if (!Exec("BEGIN IMMEDIATE")) return fail(nullptr);
  std::uint64_t inserted = 0, deleted = 0;
  const auto bind_identity = [](sqlite3_stmt* stmt, int first, std::string_view uid,
                                std::string_view rv) {
    sqlite3_bind_text(stmt, first, uid.data(), static_cast<int>(uid.size()), SQLITE_STATIC);
    sqlite3_bind_text(stmt, first + 1, rv.data(), static_cast<int>(rv.size()), SQLITE_STATIC);
  };
  // Runs a bound INSERT or DELETE: the rows it changed, or -1 on an error. A bound SELECT:
  // 1 when it has a row, 0 when not, -1 on an error.
  const auto run = [this](sqlite3_stmt* stmt) -> int {
    const int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return -1;
    const int result = sqlite3_stmt_readonly(stmt) != 0 ? (rc == SQLITE_ROW ? 1 : 0)
                                                        : sqlite3_changes(db_);
    sqlite3_reset(stmt);
    return result;
  };
  for (const Op& op : pending_) {
    const EventRecord& r = *op.record;
    const std::string_view uid = r.uid(), rv = r.resource_version();
    const std::int64_t key = IdentityKey(uid, rv);
    if (op.insert) {
      encode_buffer_.clear();
      EncodeRecord(r, &encode_buffer_);
      sqlite3_bind_int64(insert_, 1, key);
      bind_identity(insert_, 2, uid, rv);
      sqlite3_bind_blob(insert_, 4, encode_buffer_.data(), static_cast<int>(encode_buffer_.size()),
                        SQLITE_STATIC);
      int changed = run(insert_);
      if (changed == 0) {
        // The key is taken: a repeated write (a no-op), or, very rarely, another identity
        // with the same 64-bit key. That one is stored without a key (NULL is never a
        // conflict) and found by uid and resourceVersion.
        sqlite3_bind_int64(find_, 1, key);
        bind_identity(find_, 2, uid, rv);
        const int found = run(find_);
        if (found < 0) return fail(find_);
        if (found == 0) {
          sqlite3_bind_null(insert_, 1);
          changed = run(insert_);
        }
      }
      if (changed < 0) return fail(insert_);
      inserted += static_cast<std::uint64_t>(changed);
    } else {
      sqlite3_bind_int64(delete_, 1, key);
      bind_identity(delete_, 2, uid, rv);
      int changed = run(delete_);
      if (changed < 0) return fail(delete_);
      if (changed == 0) {
        bind_identity(delete_unkeyed_, 1, uid, rv);
        changed = run(delete_unkeyed_);
        if (changed < 0) return fail(delete_unkeyed_);
      }
      deleted += static_cast<std::uint64_t>(changed);
    }
  }
  if (!Exec("COMMIT")) return fail(nullptr);
  written_.fetch_add(inserted, std::memory_order_relaxed);
  deleted_.fetch_add(deleted, std::memory_order_relaxed);
  return true;
}

void EventStore::EnforceBudgetLocked() {
  const std::int64_t page_size = PragmaInt("PRAGMA page_size");
  const auto used = [&] {
    return static_cast<std::uint64_t>(
        (PragmaInt("PRAGMA page_count") - PragmaInt("PRAGMA freelist_count")) * page_size);
  };
  std::uint64_t bytes = used();
  if (options_.max_bytes > 0 && bytes > options_.max_bytes) {
    // Down to 90% of the budget, so that this runs every few batches, not every one.
    const std::uint64_t target = options_.max_bytes / 10 * 9;
    std::uint64_t removed = 0;
    for (int round = 0; round < 100 && bytes > target; ++round) {
      // Rows in proportion to the excess (rows are of similar size), at least a few.
      const auto rows = static_cast<std::uint64_t>(PragmaInt("SELECT count(*) FROM occurrences"));
      if (rows == 0) break;
      const std::uint64_t n =
          std::max<std::uint64_t>(kBudgetDeleteMin, rows * (bytes - target) / bytes + 1);
      const std::string sql =
          "DELETE FROM occurrences WHERE seq IN (SELECT seq FROM occurrences "
          "ORDER BY seq LIMIT " +
          std::to_string(n) + ")";
      if (!Exec(sql.c_str())) break;
      removed += static_cast<std::uint64_t>(sqlite3_changes(db_));
      bytes = used();
    }
    // Give the freed pages back to the file system (the file shrinks at the checkpoint).
    Exec("PRAGMA incremental_vacuum");
    Exec("PRAGMA wal_checkpoint(TRUNCATE)");
    budget_deleted_.fetch_add(removed, std::memory_order_relaxed);
    if (error_log_limit_.Admit(SteadyNs()).admitted) {
      spdlog::warn(
          "durable store: over the --data-max-bytes budget ({} bytes): deleted the {} "
          "oldest occurrences from disk (they stay in memory until evicted)",
          options_.max_bytes, removed);
    }
  }
  database_bytes_.store(bytes, std::memory_order_relaxed);
}

EventStoreStats EventStore::Stats() const {
  EventStoreStats s;
  s.restored = restored_.load(std::memory_order_relaxed);
  s.restore_skipped = restore_skipped_.load(std::memory_order_relaxed);
  s.written = written_.load(std::memory_order_relaxed);
  s.deleted = deleted_.load(std::memory_order_relaxed);
  s.budget_deleted = budget_deleted_.load(std::memory_order_relaxed);
  s.batches = batches_.load(std::memory_order_relaxed);
  s.dropped_queue_full = dropped_.load(std::memory_order_relaxed);
  s.disk_full = disk_full_.load(std::memory_order_relaxed);
  s.write_errors = write_errors_.load(std::memory_order_relaxed);
  s.corrupt_moved_aside = corrupt_.load(std::memory_order_relaxed);
  s.schema_moved_aside = schema_moved_.load(std::memory_order_relaxed);
  s.database_bytes = database_bytes_.load(std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    s.queued = queue_.size() + pending_size_.load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace eventbuffer::controller
