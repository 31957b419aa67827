// SqliteStore: the embedded Store, one SQLite database file.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so an
// Apply that returned OK survives SIGKILL of the process and loss of power.
// The schema is versioned (PRAGMA user_version) and migrated forward on Open;
// a database written by a newer artel is refused rather than guessed at.
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "store/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace artel {

class SqliteStore final : public Store {
 public:
  // Opens (creating if missing) the database at `path` and migrates its
  // schema to the newest version. `path` ":memory:" gives a private
  // in-memory database, for tests. Errors name the path: FailedPrecondition
  // when the file was written by a newer artel or cannot be written,
  // DataLoss when it is not a database, Unavailable when another process
  // holds it locked beyond the 5 s busy timeout.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path);

  // The schema version this code writes (PRAGMA user_version after Open).
  static int LatestSchemaVersion();

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // One BEGIN IMMEDIATE ... COMMIT; on any error the transaction is rolled
  // back and the error returned. Thread-safe.
  absl::Status Apply(const WriteBatch& batch) override;
  // Reads every table in one read transaction. DataLoss, naming the table
  // and key, when a stored record does not parse. Thread-safe.
  absl::StatusOr<StoreSnapshot> Load() override;

  const std::string& path() const { return path_; }

 private:
  struct StmtDeleter {
    void operator()(sqlite3_stmt* stmt) const;
  };
  using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;
  class PassKey {
    friend class SqliteStore;
    PassKey() = default;
  };

 public:
  // Use Open().
  SqliteStore(PassKey, std::string path, sqlite3* db);

 private:
  absl::Status PrepareStatements() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteAll(const WriteBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReadAll(StoreSnapshot& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  mutable absl::Mutex mu_;
  sqlite3* const db_;  // owned; every use holds mu_
  Stmt upsert_task_ ABSL_GUARDED_BY(mu_);
  Stmt upsert_replica_ ABSL_GUARDED_BY(mu_);
  Stmt upsert_worker_ ABSL_GUARDED_BY(mu_);
  Stmt upsert_job_ ABSL_GUARDED_BY(mu_);
  Stmt upsert_app_ ABSL_GUARDED_BY(mu_);
  Stmt upsert_token_ ABSL_GUARDED_BY(mu_);
  Stmt upsert_dataset_ ABSL_GUARDED_BY(mu_);
  Stmt upsert_training_job_ ABSL_GUARDED_BY(mu_);
};

}  // namespace artel
