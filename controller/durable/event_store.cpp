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

// Renames the database and its WAL and shared-memory files to <name>.corrupt-<time>[-wal|-shm].
void MoveAside(const std::string& path) {
  const std::string target = path + ".corrupt-" + std::to_string(UnixSeconds());
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::error_code ec;
    if (!fs::exists(path + suffix, ec)) continue;
    fs::rename(path + suffix, target + suffix, ec);
    if (ec) spdlog::error("durable store: cannot move {}{} aside: {}", path, suffix, ec.message());
  }
  spdlog::error("durable store: {} is corrupt: moved aside to {}, starting empty", path, target);
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
  if (store->OpenDatabase(error, &corrupt)) return store;
  store->CloseDatabase();
  if (!corrupt) return nullptr;
  spdlog::error("durable store: {}", *error);
  MoveAside(store->path_);
  store->corrupt_.fetch_add(1, std::memory_order_relaxed);
  error->clear();
  if (store->OpenDatabase(error, &corrupt)) return store;
  store->CloseDatabase();
  return nullptr;
}

bool EventStore::OpenDatabase(std::string* error, bool* corrupt) {
  *corrupt = false;
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
  // auto_vacuum only takes effect before the first table is created.
  if (!Exec("PRAGMA auto_vacuum=INCREMENTAL", error)) return false;
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
  // 32 MiB of page cache: inserts land at random places of the (uid, resourceVersion)
  // index; a small cache rereads its pages from the OS for every batch.
  if (!Exec("PRAGMA synchronous=NORMAL", error) || !Exec("PRAGMA cache_size=-32768", error) ||
      !Exec("PRAGMA journal_size_limit=67108864", error) ||
      !Exec("CREATE TABLE IF NOT EXISTS occurrences ("
            " uid TEXT NOT NULL, resource_version TEXT NOT NULL, namespace TEXT NOT NULL,"
            " time_ms INTEGER NOT NULL, record BLOB NOT NULL,"
            " PRIMARY KEY (uid, resource_version))",
            error) ||
      !Exec("CREATE INDEX IF NOT EXISTS occurrences_by_time ON occurrences (time_ms)", error)) {
    *corrupt = IsCorruption(sqlite3_extended_errcode(db_));
    return false;
  }
  if (options_.max_page_count_for_testing > 0) {
    const std::string sql =
        "PRAGMA max_page_count=" + std::to_string(options_.max_page_count_for_testing);
    Exec(sql.c_str(), error);
  }
  if (sqlite3_prepare_v2(db_, "INSERT OR IGNORE INTO occurrences VALUES (?1, ?2, ?3, ?4, ?5)", -1,
                         &insert_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db_, "DELETE FROM occurrences WHERE uid = ?1 AND resource_version = ?2",
                         -1, &delete_, nullptr) != SQLITE_OK) {
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
  sqlite3_finalize(insert_);
  sqlite3_finalize(delete_);
  insert_ = delete_ = nullptr;
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
  if (sqlite3_prepare_v2(db_, "SELECT time_ms, rowid, record FROM occurrences", -1, &stmt,
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
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const void* blob = sqlite3_column_blob(stmt, 2);
    const int size = sqlite3_column_bytes(stmt, 2);
    EventRecord record;
    if (blob == nullptr ||
        !DecodeRecord(std::string_view(static_cast<const char*>(blob), size), &record)) {
      ++skipped;
      continue;
    }
    rows.push_back(Row{sqlite3_column_int64(stmt, 0), sqlite3_column_int64(stmt, 1),
                       std::make_shared<const EventRecord>(std::move(record))});
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
  if (queue_.size() == options_.queue_capacity / 2) queue_cv_.notify_one();
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
      return stop_ || (queue_.size() >= options_.queue_capacity / 2 &&
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
  for (const Op& op : pending_) {
    const EventRecord& r = *op.record;
    const std::string_view uid = r.uid(), rv = r.resource_version();
    sqlite3_stmt* stmt = op.insert ? insert_ : delete_;
    sqlite3_bind_text(stmt, 1, uid.data(), static_cast<int>(uid.size()), SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, rv.data(), static_cast<int>(rv.size()), SQLITE_STATIC);
    if (op.insert) {
      const std::string_view ns = r.Get(EventRecord::Field::kNamespace);
      encode_buffer_.clear();
      EncodeRecord(r, &encode_buffer_);
      sqlite3_bind_text(stmt, 3, ns.data(), static_cast<int>(ns.size()), SQLITE_STATIC);
      sqlite3_bind_int64(stmt, 4, RecordTimeMs(r));
      sqlite3_bind_blob(stmt, 5, encode_buffer_.data(), static_cast<int>(encode_buffer_.size()),
                        SQLITE_STATIC);
    }
    if (sqlite3_step(stmt) != SQLITE_DONE) return fail(stmt);
    (op.insert ? inserted : deleted) += static_cast<std::uint64_t>(sqlite3_changes(db_));
    sqlite3_reset(stmt);
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
          "DELETE FROM occurrences WHERE rowid IN (SELECT rowid FROM occurrences "
          "ORDER BY time_ms, rowid LIMIT " +
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
  s.database_bytes = database_bytes_.load(std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    s.queued = queue_.size() + pending_size_.load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace eventbuffer::controller
