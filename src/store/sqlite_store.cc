#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace artel {
namespace {

// kMigrations[i] takes the schema from version i to version i + 1. Append
// only: a step that has been released is never edited.
constexpr const char* kMigrations[] = {
    R"sql(
      CREATE TABLE tasks(id INTEGER PRIMARY KEY, job_id INTEGER, state INTEGER, record BLOB);
      CREATE TABLE replicas(id INTEGER PRIMARY KEY, task_id INTEGER, worker_id TEXT,
                            state INTEGER, record BLOB);
      CREATE INDEX replicas_by_task ON replicas(task_id);
      CREATE TABLE workers(id TEXT PRIMARY KEY, record BLOB);
      CREATE TABLE jobs(id INTEGER PRIMARY KEY, record BLOB);
      CREATE TABLE apps(name TEXT, version TEXT, record BLOB, PRIMARY KEY(name, version));
      CREATE TABLE tokens(token_hash TEXT PRIMARY KEY, role INTEGER, created_at_ms INTEGER);
    )sql",
    R"sql(
      CREATE TABLE datasets(name TEXT PRIMARY KEY, record BLOB);
      CREATE TABLE training_jobs(id INTEGER PRIMARY KEY, record BLOB);
    )sql",
    R"sql(
      ALTER TABLE tokens ADD COLUMN owner TEXT NOT NULL DEFAULT '';
      ALTER TABLE tokens ADD COLUMN expires_at_ms INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE tokens ADD COLUMN revoked_at_ms INTEGER NOT NULL DEFAULT 0;
    )sql",
};
constexpr int kLatestVersion = static_cast<int>(std::size(kMigrations));
constexpr int kBusyTimeoutMs = 5000;

// A Status for SQLite result `rc` of `what` on database `path`, saying what
// to do where the cause is one an operator can fix.
absl::Status SqliteError(sqlite3* db, const std::string& path, int rc, absl::string_view what) {
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string msg = absl::StrCat("sqlite database '", path, "': ", what, ": ", detail);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(
          absl::StrCat(msg, "; another process holds the database, stop it or retry"));
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(absl::StrCat(msg, "; free disk space"));
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
      return absl::FailedPreconditionError(
          absl::StrCat(msg, "; check that the file and its directory exist and are writable"));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(absl::StrCat(
          msg, "; the file is damaged or not an artel database, restore it from a backup"));
    default:
      return absl::InternalError(msg);
  }
}

// Binds `s` as text (not copied: `s` must outlive the step).
int BindText(sqlite3_stmt* stmt, int index, const std::string& s) {
  return sqlite3_bind_text(stmt, index, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
}
int BindBlob(sqlite3_stmt* stmt, int index, const std::string& s) {
  return sqlite3_bind_blob(stmt, index, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
}
// uint64 keys are stored as the int64 with the same bits.
int BindId(sqlite3_stmt* stmt, int index, uint64_t id) {
  return sqlite3_bind_int64(stmt, index, static_cast<sqlite3_int64>(id));
}

std::string ColumnText(sqlite3_stmt* stmt, int col) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
  return text == nullptr ? std::string() : std::string(text, sqlite3_column_bytes(stmt, col));
}

std::string ColumnKey(sqlite3_stmt* stmt, int col) {
  if (sqlite3_column_type(stmt, col) == SQLITE_INTEGER) {
    return std::to_string(static_cast<uint64_t>(sqlite3_column_int64(stmt, col)));
  }
  return ColumnText(stmt, col);
}

template <typename Msg>
std::string Serialize(const Msg& msg) {
  std::string out;
  ARTEL_CHECK(msg.SerializeToString(&out), "protobuf record over 2 GiB");
  return out;
}

std::string SerializeTask(const v1::TaskInfo& task) {
  if (task.replicas_size() == 0) return Serialize(task);
  v1::TaskInfo copy = task;
  copy.clear_replicas();  // replicas are rows of their own
  return Serialize(copy);
}

}  // namespace

void SqliteStore::StmtDeleter::operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }

int SqliteStore::LatestSchemaVersion() { return kLatestVersion; }

SqliteStore::SqliteStore(PassKey, std::string path, sqlite3* db)
    : path_(std::move(path)), db_(db) {}

SqliteStore::~SqliteStore() {
  absl::MutexLock lock(&mu_);
  upsert_task_.reset();
  upsert_replica_.reset();
  upsert_worker_.reset();
  upsert_job_.reset();
  upsert_app_.reset();
  upsert_token_.reset();
  sqlite3_close_v2(db_);
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteError(db, path, rc, "open");
    sqlite3_close_v2(db);
    return status;
  }
  auto store = std::make_unique<SqliteStore>(PassKey(), path, db);
  absl::MutexLock lock(&store->mu_);
  auto exec = [&](const char* sql) -> absl::Status {
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? absl::OkStatus() : SqliteError(db, path, rc, sql);
  };
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  std::string journal_mode;
  rc = sqlite3_exec(
      db, "PRAGMA journal_mode=WAL",
      [](void* out, int, char** values, char**) {
        *static_cast<std::string*>(out) = values[0] != nullptr ? values[0] : "";
        return 0;
      },
      &journal_mode, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, path, rc, "PRAGMA journal_mode=WAL");
  if (journal_mode != "wal" && journal_mode != "memory") {
    return absl::FailedPreconditionError(
        absl::StrCat("sqlite database '", path, "': cannot enable WAL journal mode (got '",
                     journal_mode, "'); put the database on a local file system"));
  }
  RETURN_IF_ERROR(exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF"));

  // Migrate forward inside one write transaction.
  RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
  absl::Status status = [&]() -> absl::Status {
    int version = -1;
    rc = sqlite3_exec(
        db, "PRAGMA user_version",
        [](void* out, int, char** values, char**) {
          *static_cast<int*>(out) = std::atoi(values[0]);
          return 0;
        },
        &version, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db, path, rc, "PRAGMA user_version");
    if (version < 0) {
      return absl::DataLossError(absl::StrCat(
          "sqlite database '", path, "': invalid schema version ", version,
          "; this is not an artel database, or it is damaged; restore it from a backup"));
    }
    if (version > kLatestVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("sqlite database '", path, "': database schema version ", version,
                       " is newer than this artel (", kLatestVersion, "); upgrade artel"));
    }
    for (int v = version; v < kLatestVersion; ++v) RETURN_IF_ERROR(exec(kMigrations[v]));
    if (version == kLatestVersion) return absl::OkStatus();
    return exec(absl::StrCat("PRAGMA user_version=", kLatestVersion).c_str());
  }();
  if (status.ok()) status = exec("COMMIT");
  if (!status.ok()) {
    if (sqlite3_get_autocommit(db) == 0) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return status;
  }
  RETURN_IF_ERROR(store->PrepareStatements());
  return store;
}

absl::Status SqliteStore::PrepareStatements() {
  auto prepare = [&](Stmt& stmt, const char* sql) -> absl::Status {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    stmt.reset(raw);
    return rc == SQLITE_OK ? absl::OkStatus() : SqliteError(db_, path_, rc, sql);
  };
  RETURN_IF_ERROR(prepare(upsert_task_,
                          "INSERT INTO tasks(id, job_id, state, record) VALUES(?1, ?2, ?3, ?4) "
                          "ON CONFLICT(id) DO UPDATE SET job_id=excluded.job_id, "
                          "state=excluded.state, record=excluded.record"));
  RETURN_IF_ERROR(prepare(upsert_replica_,
                          "INSERT INTO replicas(id, task_id, worker_id, state, record) "
                          "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO UPDATE SET "
                          "task_id=excluded.task_id, worker_id=excluded.worker_id, "
                          "state=excluded.state, record=excluded.record"));
  RETURN_IF_ERROR(prepare(upsert_worker_,
                          "INSERT INTO workers(id, record) VALUES(?1, ?2) "
                          "ON CONFLICT(id) DO UPDATE SET record=excluded.record"));
  RETURN_IF_ERROR(prepare(upsert_job_,
                          "INSERT INTO jobs(id, record) VALUES(?1, ?2) "
                          "ON CONFLICT(id) DO UPDATE SET record=excluded.record"));
  RETURN_IF_ERROR(prepare(upsert_app_,
                          "INSERT INTO apps(name, version, record) VALUES(?1, ?2, ?3) "
                          "ON CONFLICT(name, version) DO UPDATE SET record=excluded.record"));
  RETURN_IF_ERROR(prepare(upsert_dataset_,
                          "INSERT INTO datasets(name, record) VALUES(?1, ?2) "
                          "ON CONFLICT(name) DO UPDATE SET record=excluded.record"));
  RETURN_IF_ERROR(prepare(upsert_training_job_,
                          "INSERT INTO training_jobs(id, record) VALUES(?1, ?2) "
                          "ON CONFLICT(id) DO UPDATE SET record=excluded.record"));
  return prepare(upsert_token_,
                 "INSERT INTO tokens(token_hash, role, created_at_ms, owner, expires_at_ms, "
                 "revoked_at_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
                 "ON CONFLICT(token_hash) DO UPDATE SET role=excluded.role, "
                 "created_at_ms=excluded.created_at_ms, owner=excluded.owner, "
                 "expires_at_ms=excluded.expires_at_ms, revoked_at_ms=excluded.revoked_at_ms");
}

absl::Status SqliteStore::Apply(const WriteBatch& batch) {
  absl::MutexLock lock(&mu_);
  int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, path_, rc, "BEGIN IMMEDIATE");
  absl::Status status = WriteAll(batch);
  if (status.ok()) {
    rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) status = SqliteError(db_, path_, rc, "COMMIT");
  }
  if (!status.ok() && sqlite3_get_autocommit(db_) == 0) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return status;
}

absl::Status SqliteStore::WriteAll(const WriteBatch& batch) {
  // Binds every parameter (the bind calls cannot fail for valid indexes),
  // steps once and resets the statement for the next row.
  auto step = [&](sqlite3_stmt* stmt, absl::string_view table) -> absl::Status {
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc == SQLITE_DONE) return absl::OkStatus();
    return SqliteError(db_, path_, rc, absl::StrCat("upsert into ", table));
  };
  std::string record;
  for (const v1::TaskInfo& task : batch.tasks) {
    record = SerializeTask(task);
    sqlite3_stmt* s = upsert_task_.get();
    BindId(s, 1, task.id());
    BindId(s, 2, task.job_id());
    sqlite3_bind_int(s, 3, task.state());
    BindBlob(s, 4, record);
    RETURN_IF_ERROR(step(s, "tasks"));
  }
  for (const v1::ReplicaInfo& replica : batch.replicas) {
    record = Serialize(replica);
    sqlite3_stmt* s = upsert_replica_.get();
    BindId(s, 1, replica.id());
    BindId(s, 2, replica.task_id());
    BindText(s, 3, replica.worker_id());
    sqlite3_bind_int(s, 4, replica.state());
    BindBlob(s, 5, record);
    RETURN_IF_ERROR(step(s, "replicas"));
  }
  for (const v1::WorkerInfo& worker : batch.workers) {
    record = Serialize(worker);
    sqlite3_stmt* s = upsert_worker_.get();
    BindText(s, 1, worker.id());
    BindBlob(s, 2, record);
    RETURN_IF_ERROR(step(s, "workers"));
  }
  for (const v1::JobInfo& job : batch.jobs) {
    record = Serialize(job);
    sqlite3_stmt* s = upsert_job_.get();
    BindId(s, 1, job.id());
    BindBlob(s, 2, record);
    RETURN_IF_ERROR(step(s, "jobs"));
  }
  for (const v1::AppVersion& app : batch.apps) {
    record = Serialize(app);
    sqlite3_stmt* s = upsert_app_.get();
    BindText(s, 1, app.name());
    BindText(s, 2, app.version());
    BindBlob(s, 3, record);
    RETURN_IF_ERROR(step(s, "apps"));
  }
  for (const v1::Dataset& dataset : batch.datasets) {
    record = Serialize(dataset);
    sqlite3_stmt* s = upsert_dataset_.get();
    BindText(s, 1, dataset.name());
    BindBlob(s, 2, record);
    RETURN_IF_ERROR(step(s, "datasets"));
  }
  for (const v1::TrainingJob& job : batch.training_jobs) {
    record = Serialize(job);
    sqlite3_stmt* s = upsert_training_job_.get();
    BindId(s, 1, job.id());
    BindBlob(s, 2, record);
    RETURN_IF_ERROR(step(s, "training_jobs"));
  }
  for (const TokenRecord& token : batch.tokens) {
    sqlite3_stmt* s = upsert_token_.get();
    BindText(s, 1, token.token_hash);
    sqlite3_bind_int(s, 2, token.role);
    sqlite3_bind_int64(s, 3, token.created_at_ms);
    BindText(s, 4, token.owner);
    sqlite3_bind_int64(s, 5, token.expires_at_ms);
    sqlite3_bind_int64(s, 6, token.revoked_at_ms);
    RETURN_IF_ERROR(step(s, "tokens"));
  }
  return absl::OkStatus();
}

namespace {

// Runs `sql`, whose rows are (key, serialized record), appending each parsed
// record to `out`.
template <typename Msg>
absl::Status ReadRecords(sqlite3* db, const std::string& path, absl::string_view table,
                         const char* sql, std::vector<Msg>& out) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
  if (rc != SQLITE_OK) return SqliteError(db, path, rc, sql);
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    Msg msg;
    if (!msg.ParseFromArray(sqlite3_column_blob(raw, 1), sqlite3_column_bytes(raw, 1))) {
      return absl::DataLossError(
          absl::StrCat("sqlite database '", path, "': table ", table, ", key ", ColumnKey(raw, 0),
                       ": stored record does not parse as ", Msg::descriptor()->full_name(),
                       "; restore the database from a backup"));
    }
    out.push_back(std::move(msg));
  }
  if (rc != SQLITE_DONE) return SqliteError(db, path, rc, absl::StrCat("read ", table));
  return absl::OkStatus();
}

// Integer keys are unsigned; SQLite orders them signed, so sort here.
template <typename Msg>
void SortById(std::vector<Msg>& records) {
  std::sort(records.begin(), records.end(),
            [](const Msg& a, const Msg& b) { return a.id() < b.id(); });
}

}  // namespace

absl::StatusOr<StoreSnapshot> SqliteStore::Load() {
  absl::MutexLock lock(&mu_);
  int rc = sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, path_, rc, "BEGIN");
  StoreSnapshot snapshot;
  absl::Status status = ReadAll(snapshot);
  if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  if (!status.ok()) return status;
  return snapshot;
}

absl::Status SqliteStore::ReadAll(StoreSnapshot& out) {
  RETURN_IF_ERROR(ReadRecords(db_, path_, "tasks", "SELECT id, record FROM tasks", out.tasks));
  RETURN_IF_ERROR(
      ReadRecords(db_, path_, "replicas", "SELECT id, record FROM replicas", out.replicas));
  RETURN_IF_ERROR(ReadRecords(db_, path_, "workers", "SELECT id, record FROM workers ORDER BY id",
                              out.workers));
  RETURN_IF_ERROR(ReadRecords(db_, path_, "jobs", "SELECT id, record FROM jobs", out.jobs));
  RETURN_IF_ERROR(ReadRecords(db_, path_, "apps",
                              "SELECT name || ' version ' || version, record FROM apps "
                              "ORDER BY name, version",
                              out.apps));
  RETURN_IF_ERROR(ReadRecords(db_, path_, "datasets",
                              "SELECT name, record FROM datasets ORDER BY name", out.datasets));
  RETURN_IF_ERROR(ReadRecords(db_, path_, "training_jobs", "SELECT id, record FROM training_jobs",
                              out.training_jobs));
  SortById(out.tasks);
  SortById(out.replicas);
  SortById(out.jobs);
  SortById(out.training_jobs);

  const char* sql =
      "SELECT token_hash, role, created_at_ms, owner, expires_at_ms, revoked_at_ms FROM tokens "
      "ORDER BY token_hash";
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql, -1, &raw, nullptr);
  Stmt stmt(raw);
  if (rc != SQLITE_OK) return SqliteError(db_, path_, rc, sql);
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    TokenRecord token;
    token.token_hash = ColumnText(raw, 0);
    int role = sqlite3_column_int(raw, 1);
    if (!v1::Role_IsValid(role)) {
      return absl::DataLossError(absl::StrCat("sqlite database '", path_, "': table tokens, key ",
                                              token.token_hash, ": unknown role ", role,
                                              "; restore the database from a backup"));
    }
    token.role = static_cast<v1::Role>(role);
    token.created_at_ms = sqlite3_column_int64(raw, 2);
    token.owner = ColumnText(raw, 3);
    token.expires_at_ms = sqlite3_column_int64(raw, 4);
    token.revoked_at_ms = sqlite3_column_int64(raw, 5);
    out.tokens.push_back(std::move(token));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, path_, rc, "read tokens");
  return absl::OkStatus();
}

}  // namespace artel
