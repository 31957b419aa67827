// PostgresStore: the Store in a PostgreSQL database (libpq), for operators
// who run PostgreSQL already and for several coordinators sharing one state.
//
// Durability: every Apply is one transaction committed with the server's
// settings (fsync and synchronous_commit on by default), so an Apply that
// returned OK survives a crash of this process and of the database server.
// The statements of one Apply travel in one pipeline (one round trip).
// The schema is versioned (table artel_schema) and migrated forward on Open
// under an advisory lock, so coordinators starting together migrate once; a
// database written by a newer artel is refused.
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "store/store.h"

struct pg_conn;

namespace artel {

struct PostgresStoreOptions {
  // How long Apply keeps retrying while the server cannot be reached (it
  // went away, or restarts), reconnecting with a growing pause up to 2 s.
  // Meanwhile nothing is acknowledged. 0: fail at once. [5 min]
  int64_t retry_ms = 5 * 60 * 1000;
};

class PostgresStore final : public Store {
 public:
  // Connects to `url` (postgres://USER[:PASSWORD]@HOST[:PORT]/DB or any
  // libpq connection string) and migrates the schema. Errors say what to
  // check: Unavailable when the server cannot be reached, FailedPrecondition
  // when the database is newer than this artel or lacks permissions.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(const std::string& url,
                                                             PostgresStoreOptions options = {});

  // The schema version this code writes.
  static int LatestSchemaVersion();

  ~PostgresStore() override;
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

  // BEGIN, one upsert per record, COMMIT, pipelined; on any error the
  // transaction is rolled back and the error returned. A broken connection
  // is retried (options.retry_ms) by reconnecting and applying the whole
  // batch again: upserts of whole records are idempotent, so a batch whose
  // COMMIT went through before the connection broke is harmless to repeat.
  // Thread-safe.
  absl::Status Apply(const WriteBatch& batch) override;
  // Reads every table in one repeatable-read transaction. DataLoss, naming
  // the table and key, when a stored record does not parse. Thread-safe.
  absl::StatusOr<StoreSnapshot> Load() override;

  // ---- leadership of coordinators sharing the database (a lease row with
  // a term; times are the database server's)
  //
  // Takes the lease for `holder` (at `address`, which standbys report) for
  // `lease_ms` if it is free or expired, with a new term, and from then on
  // fences every Apply by that term: a write whose term no longer holds an
  // unexpired lease fails (FailedPrecondition) and stores nothing.
  // Unavailable, naming the leader and its address, while another holds it.
  absl::StatusOr<uint64_t> AcquireLeadership(const std::string& holder, const std::string& address,
                                             int64_t lease_ms);
  // Extends the lease of our term by `lease_ms` from now. FailedPrecondition
  // when it expired or another coordinator took over: stop writing.
  absl::Status RenewLeadership(int64_t lease_ms);

  // The server's durability settings, e.g. "fsync=on synchronous_commit=on
  // wal_sync_method=fdatasync" (for benchmarks to print). Thread-safe.
  absl::StatusOr<std::string> DurabilitySettings();
  // True if the database holds no artel records yet. Thread-safe.
  absl::StatusOr<bool> Empty();

  // The URL without its password, for messages.
  const std::string& where() const { return where_; }

 private:
  class PassKey {
    friend class PostgresStore;
    PassKey() = default;
  };

 public:
  // Use Open().
  PostgresStore(PassKey, std::string url, std::string where, PostgresStoreOptions options);

 private:
  // Connects (again) if there is no good connection, preparing statements.
  absl::Status EnsureConnectedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status MigrateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ApplyLocked(const WriteBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReadAllLocked(StoreSnapshot& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string url_;
  const std::string where_;
  const PostgresStoreOptions options_;
  mutable absl::Mutex mu_;
  pg_conn* conn_ ABSL_GUARDED_BY(mu_) = nullptr;  // owned
  uint64_t term_ ABSL_GUARDED_BY(mu_) = 0;        // 0: writes are not fenced
};

}  // namespace artel
