// EventStore: the durable copy of the EventBuffer's occurrences (--data-dir), so the history
// survives restarts.
//
// Storage: one SQLite database DIR/eventbuffer.db in WAL mode, 64 KiB pages. SQLite because
// it is small, well kept and packaged by Debian; its write-ahead log makes an append batch
// one atomic, crash-safe commit (a torn tail of the log is ignored on the next open: the
// database is what the last complete commit left); and its B-trees give the deletes
// retention needs (by identity, oldest first) without a hand-written file format.
//
// Schema (version 2, PRAGMA user_version): table occurrences, one row per occurrence: seq
// (INTEGER PRIMARY KEY, the rowid: write order, so a batch appends at the end of the
// table), key (a 64-bit FNV-1a hash of uid and resourceVersion), uid, resource_version and
// record (the whole EventRecord, record_codec.h). One index, UNIQUE on key: a repeated
// write of an occurrence is a no-op; another occurrence whose key is taken (a hash
// collision) is stored with key NULL and found by uid and resourceVersion. A database of
// another schema version (version 0: the first schema, text primary key and time index) is
// renamed to DIR/eventbuffer.db.schema<N>-<unix time>, never deleted; the store starts
// empty and logs a warning (Stats().schema_moved_aside).
//
// Off the hot path. Append only pushes the record (a shared reference) onto an in-memory
// queue; a writer thread commits everything queued once per sync_interval in one
// transaction, or sooner once an eighth of queue_capacity is queued. The queue is bounded
// (queue_capacity occurrences, counting a batch waiting for a retry): when it is full — the
// disk is slower than ingest, or failing — Append drops the occurrence and counts it
// (Stats().dropped_queue_full; the writer logs it, rate-limited). It never blocks the watch
// thread beyond one short mutex. A dropped occurrence stays in memory; it is only missing
// from the next restart.
//
// Durability: synchronous=NORMAL. A killed process loses only what was still queued (at most
// one sync interval): every committed batch is in the OS page cache and survives. A power
// loss or kernel crash may also lose the last committed batches not yet checkpointed (the
// WAL is not fsynced per commit), never the database's consistency.
//
// Retention: Remove deletes occurrences the buffer evicted (queued in order with the
// appends), by identity. After each batch, when the database's used pages exceed max_bytes,
// the oldest occurrences (in write order, seq) are deleted until it is under 90% of
// max_bytes, and the freed pages are returned to the file system (auto_vacuum=INCREMENTAL).
// The WAL file comes on top (truncated to 64 MiB after checkpoints).
//
// Faults:
//   - a torn or corrupt WAL tail: SQLite's recovery keeps the last good commit;
//   - a database that does not open or fails PRAGMA quick_check: its files are renamed to
//     DIR/eventbuffer.db.corrupt-<unix time> (plus -wal, -shm), never deleted; the store
//     starts empty, logs an error and counts it (Stats().corrupt_moved_aside);
//   - a full disk (SQLITE_FULL) or another write error: the batch is rolled back and kept,
//     retried at the next interval; counted, logged rate-limited; serving goes on from
//     memory. Nothing throws.
//   - the database locked by another process: Open fails (two controllers on one DIR).
//
// Thread safety: Append and Remove from any thread; Restore before Start, from one thread;
// Flush, Stop and Stats from any thread. The database is used by one thread at a time
// (the writer or a Flush caller, under one mutex).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller/rate_limiter.h"
#include "eventbuffer/event_record.h"
#include "eventbuffer/revision_cache.h"

struct sqlite3;
struct sqlite3_stmt;

namespace eventbuffer::controller {

struct EventStoreOptions {
  std::string dir;                                   // created if missing
  std::chrono::milliseconds sync_interval{1000};     // one commit per interval
  std::uint64_t max_bytes = std::uint64_t{1} << 30;  // database budget; 0 = unlimited
  std::size_t queue_capacity = 1 << 18;              // occurrences waiting for the writer
  // Restore rebuilds revisions against their base with a RevisionCache of this size (as
  // the watch decoder's: RevisionCache::SizeFor the buffer's retention).
  RevisionCache::Size revision_cache;
  // Tests only: caps the database at this many pages (SQLite's max_page_count), so a
  // "disk full" (SQLITE_FULL) can be provoked without a small file system. 0 = no cap.
  std::int64_t max_page_count_for_testing = 0;
};

// Counters since Open, for metrics.
struct EventStoreStats {
  std::uint64_t restored = 0;             // occurrences read back by Restore
  std::uint64_t restore_skipped = 0;      // rows that did not decode
  std::uint64_t written = 0;              // rows inserted (duplicates not counted)
  std::uint64_t deleted = 0;              // rows deleted for Remove
  std::uint64_t budget_deleted = 0;       // rows deleted to stay within max_bytes
  std::uint64_t batches = 0;              // committed transactions
  std::uint64_t dropped_queue_full = 0;   // appends dropped: the queue was full
  std::uint64_t disk_full = 0;            // commits that failed with SQLITE_FULL
  std::uint64_t write_errors = 0;         // commits that failed otherwise
  std::uint64_t corrupt_moved_aside = 0;  // databases renamed to *.corrupt-<time> at Open
  std::uint64_t schema_moved_aside = 0;   // ... to *.schema<N>-<time>: another schema version
  std::size_t queued = 0;                 // occurrences waiting (queue plus retried batch)
  std::uint64_t database_bytes = 0;       // used pages times page size, at the last batch
};

class EventStore {
 public:
  static constexpr const char* kFileName = "eventbuffer.db";

  // Opens (or creates) DIR/eventbuffer.db, moving a corrupt one aside. Returns null and sets
  // *error when the directory or a fresh database cannot be used.
  static std::unique_ptr<EventStore> Open(const EventStoreOptions& options, std::string* error);
  ~EventStore();  // Stop()
  EventStore(const EventStore&) = delete;
  EventStore& operator=(const EventStore&) = delete;

  // Calls fn with every stored occurrence, oldest first (RecordTimeMs, then write order); reads
  // the table in one scan and sorts in memory (the records go to the buffer anyway).
  // Returns the number read. REQUIRES: before Start.
  std::size_t Restore(const std::function<void(EventRef)>& fn);

  // Starts the writer thread.
  void Start();

  // Queues record for the next batch. Returns false when the queue is full (dropped, counted).
  bool Append(EventRef record);

  // Queues the deletion of evicted occurrences (never dropped: they come from retention,
  // which may wait).
  void Remove(std::vector<EventRef> evicted);

  // Commits everything queued before the call, in the calling thread. Returns false when
  // the commit failed (the batch stays queued for a retry).
  bool Flush();

  // Stops the writer thread after a final Flush. Idempotent.
  void Stop();

  EventStoreStats Stats() const;
  const std::string& path() const { return path_; }

  // Implementation details follow.
 private:
  struct Op {
    EventRef record;
    bool insert = true;  // else delete
  };

  EventStore(EventStoreOptions options, std::string path);
  // Opens path_ and checks it; false with *error (and *corrupt when it is damaged).
  // *old_schema: the user_version of a database of another schema version, else -1.
  bool OpenDatabase(std::string* error, bool* corrupt, std::int64_t* old_schema);
  void CloseDatabase();
  bool Exec(const char* sql, std::string* error = nullptr);
  std::int64_t PragmaInt(const char* sql);
  // Swaps the queue into pending_ and commits pending_. REQUIRES: db_mu_ held.
  bool WriteLocked();
  bool CommitLocked(std::string* error, int* code);
  void EnforceBudgetLocked();
  void WriterLoop();

  const EventStoreOptions options_;
  const std::string path_;

  mutable std::mutex db_mu_;  // guards the database, the statements, pending_, log limiter
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* find_ = nullptr;
  sqlite3_stmt* delete_ = nullptr;
  sqlite3_stmt* delete_unkeyed_ = nullptr;
  std::vector<Op> pending_;  // the batch being written or waiting for a retry
  std::string encode_buffer_;
  WindowRateLimiter error_log_limit_{5, 60'000'000'000};
  std::uint64_t dropped_logged_ = 0;

  mutable std::mutex queue_mu_;  // guards queue_, stop_
  std::condition_variable queue_cv_;
  std::vector<Op> queue_;
  bool stop_ = false;
  std::atomic<std::size_t> pending_size_{0};
  std::thread writer_;

  std::atomic<std::uint64_t> restored_{0}, restore_skipped_{0}, written_{0}, deleted_{0},
      budget_deleted_{0}, batches_{0}, dropped_{0}, disk_full_{0}, write_errors_{0}, corrupt_{0},
      schema_moved_{0}, database_bytes_{0};
};

}  // namespace eventbuffer::controller
