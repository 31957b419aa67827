#include "store/postgres_store.h"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "store/pg_util.h"

namespace artel {
namespace {

// kMigrations[i] takes the schema from version i to version i + 1. Append
// only: a step that has been released is never edited.
constexpr const char* kMigrations[] = {
    R"sql(
      CREATE TABLE tasks(id BIGINT PRIMARY KEY, job_id BIGINT NOT NULL, state INTEGER NOT NULL,
                         record BYTEA NOT NULL);
      CREATE TABLE replicas(id BIGINT PRIMARY KEY, task_id BIGINT NOT NULL,
                            worker_id TEXT NOT NULL, state INTEGER NOT NULL,
                            record BYTEA NOT NULL);
      CREATE INDEX replicas_by_task ON replicas(task_id);
      CREATE TABLE workers(id TEXT PRIMARY KEY, record BYTEA NOT NULL);
      CREATE TABLE jobs(id BIGINT PRIMARY KEY, record BYTEA NOT NULL);
      CREATE TABLE apps(name TEXT, version TEXT, record BYTEA NOT NULL,
                        PRIMARY KEY(name, version));
      CREATE TABLE tokens(token_hash TEXT PRIMARY KEY, role INTEGER NOT NULL,
                          created_at_ms BIGINT NOT NULL, owner TEXT NOT NULL,
                          expires_at_ms BIGINT NOT NULL, revoked_at_ms BIGINT NOT NULL);
      CREATE TABLE datasets(name TEXT PRIMARY KEY, record BYTEA NOT NULL);
      CREATE TABLE training_jobs(id BIGINT PRIMARY KEY, record BYTEA NOT NULL);
    )sql",
    // Leadership of coordinators sharing the database: one lease row with a
    // term; artel_fence(term) fails unless that term holds an unexpired
    // lease, and keeps the row share-locked to the end of the transaction,
    // so no successor can take over between a leader's fence and COMMIT.
    R"sql(
      CREATE TABLE artel_leader(id INTEGER PRIMARY KEY CHECK (id = 1), term BIGINT NOT NULL,
                                holder TEXT NOT NULL, address TEXT NOT NULL,
                                expires_at TIMESTAMPTZ NOT NULL);
      INSERT INTO artel_leader VALUES (1, 0, '', '', 'epoch');
      CREATE FUNCTION artel_fence(t BIGINT) RETURNS void AS $$
      BEGIN
        PERFORM 1 FROM artel_leader WHERE id = 1 AND term = t AND expires_at > now() FOR SHARE;
        IF NOT FOUND THEN
          RAISE EXCEPTION 'artel_fenced: term % no longer holds the leader lease', t;
        END IF;
      END $$ LANGUAGE plpgsql;
    )sql",
};
constexpr int kLatestVersion = static_cast<int>(std::size(kMigrations));
// Serializes migrations of coordinators starting together (any constant).
constexpr char kMigrationLock[] = "SELECT pg_advisory_xact_lock(7346001)";
// Statements sent before their results are read: bounded so that neither
// side's socket buffer fills while the other waits.
constexpr size_t kPipelineChunk = 1000;

struct Upsert {
  const char* name;
  const char* sql;
};
constexpr Upsert kTask = {"artel_upsert_task",
                          "INSERT INTO tasks(id, job_id, state, record) VALUES($1, $2, $3, $4) "
                          "ON CONFLICT(id) DO UPDATE SET job_id = EXCLUDED.job_id, "
                          "state = EXCLUDED.state, record = EXCLUDED.record"};
constexpr Upsert kReplica = {
    "artel_upsert_replica",
    "INSERT INTO replicas(id, task_id, worker_id, state, record) VALUES($1, $2, $3, $4, $5) "
    "ON CONFLICT(id) DO UPDATE SET task_id = EXCLUDED.task_id, worker_id = EXCLUDED.worker_id, "
    "state = EXCLUDED.state, record = EXCLUDED.record"};
constexpr Upsert kWorker = {"artel_upsert_worker",
                            "INSERT INTO workers(id, record) VALUES($1, $2) "
                            "ON CONFLICT(id) DO UPDATE SET record = EXCLUDED.record"};
constexpr Upsert kJob = {"artel_upsert_job",
                         "INSERT INTO jobs(id, record) VALUES($1, $2) "
                         "ON CONFLICT(id) DO UPDATE SET record = EXCLUDED.record"};
constexpr Upsert kApp = {"artel_upsert_app",
                         "INSERT INTO apps(name, version, record) VALUES($1, $2, $3) "
                         "ON CONFLICT(name, version) DO UPDATE SET record = EXCLUDED.record"};
constexpr Upsert kToken = {
    "artel_upsert_token",
    "INSERT INTO tokens(token_hash, role, created_at_ms, owner, expires_at_ms, revoked_at_ms) "
    "VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT(token_hash) DO UPDATE SET role = EXCLUDED.role, "
    "created_at_ms = EXCLUDED.created_at_ms, owner = EXCLUDED.owner, "
    "expires_at_ms = EXCLUDED.expires_at_ms, revoked_at_ms = EXCLUDED.revoked_at_ms"};
constexpr Upsert kDataset = {"artel_upsert_dataset",
                             "INSERT INTO datasets(name, record) VALUES($1, $2) "
                             "ON CONFLICT(name) DO UPDATE SET record = EXCLUDED.record"};
constexpr Upsert kTrainingJob = {"artel_upsert_training_job",
                                 "INSERT INTO training_jobs(id, record) VALUES($1, $2) "
                                 "ON CONFLICT(id) DO UPDATE SET record = EXCLUDED.record"};
constexpr Upsert kFence = {"artel_fence", "SELECT artel_fence($1)"};
constexpr Upsert kUpserts[] = {kTask,  kReplica, kWorker, kJob,        kApp,
                               kToken, kDataset, kFence,  kTrainingJob};

using pg::Result;

// One statement to send: a prepared upsert and its parameters. Integers go
// as text, records (bytea) as binary.
struct Command {
  const char* statement;
  std::vector<std::string> values;
  std::vector<int> formats;

  Command& Text(std::string v) {
    values.push_back(std::move(v));
    formats.push_back(0);
    return *this;
  }
  Command& Id(uint64_t id) { return Text(std::to_string(static_cast<int64_t>(id))); }
  Command& Bytes(std::string v) {
    values.push_back(std::move(v));
    formats.push_back(1);
    return *this;
  }
};

template <typename Msg>
std::string Serialize(const Msg& msg) {
  std::string out;
  ARTEL_CHECK(msg.SerializeToString(&out), "protobuf record over 2 GiB");
  return out;
}

template <typename Msg>
void SortById(std::vector<Msg>& records) {
  std::sort(records.begin(), records.end(),
            [](const Msg& a, const Msg& b) { return a.id() < b.id(); });
}

}  // namespace

int PostgresStore::LatestSchemaVersion() { return kLatestVersion; }

PostgresStore::PostgresStore(PassKey, std::string url, std::string where,
                             PostgresStoreOptions options)
    : url_(std::move(url)), where_(std::move(where)), options_(options) {}

PostgresStore::~PostgresStore() {
  absl::MutexLock lock(&mu_);
  if (conn_ != nullptr) PQfinish(conn_);
}

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(const std::string& url,
                                                                   PostgresStoreOptions options) {
  auto store = std::make_unique<PostgresStore>(PassKey(), url, pg::Redact(url), options);
  absl::MutexLock lock(&store->mu_);
  RETURN_IF_ERROR(store->EnsureConnectedLocked());
  return store;
}

absl::Status PostgresStore::EnsureConnectedLocked() {
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  ASSIGN_OR_RETURN(conn_, pg::Connect(url_, where_, "artel-coordinator"));
  RETURN_IF_ERROR(MigrateLocked());
  // A coordinator paused inside a transaction (its fence holds the leader
  // row) must not block a successor for long, nor wait forever itself.
  Result timeouts(
      PQexec(conn_, "SET idle_in_transaction_session_timeout = 5000; SET lock_timeout = 5000"));
  if (PQresultStatus(timeouts.get()) != PGRES_COMMAND_OK) {
    return pg::Error(where_, "set session timeouts", conn_, timeouts.get());
  }
  for (const Upsert& u : kUpserts) {
    Result r(PQprepare(conn_, u.name, u.sql, 0, nullptr));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      return pg::Error(where_, absl::StrCat("prepare ", u.name), conn_, r.get());
    }
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::MigrateLocked() {
  auto exec = [&](const std::string& sql) -> absl::StatusOr<Result> {
    Result r(PQexec(conn_, sql.c_str()));
    const ExecStatusType st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      return pg::Error(where_, "migrate schema", conn_, r.get());
    }
    return r;
  };
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(exec("BEGIN").status());
    RETURN_IF_ERROR(exec(kMigrationLock).status());
    RETURN_IF_ERROR(
        exec("CREATE TABLE IF NOT EXISTS artel_schema(version INTEGER NOT NULL)").status());
    ASSIGN_OR_RETURN(Result rows, exec("SELECT version FROM artel_schema"));
    int version = 0;
    if (PQntuples(rows.get()) == 0) {
      RETURN_IF_ERROR(exec("INSERT INTO artel_schema(version) VALUES(0)").status());
    } else {
      version = std::atoi(PQgetvalue(rows.get(), 0, 0));
    }
    if (version > kLatestVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("postgres database ", where_, ": database schema version ", version,
                       " is newer than this artel (", kLatestVersion, "); upgrade artel"));
    }
    if (version < 0) {
      return absl::DataLossError(absl::StrCat("postgres database ", where_,
                                              ": invalid schema version ", version,
                                              "; this is not an artel database"));
    }
    for (int v = version; v < kLatestVersion; ++v) RETURN_IF_ERROR(exec(kMigrations[v]).status());
    RETURN_IF_ERROR(
        exec(absl::StrCat("UPDATE artel_schema SET version = ", kLatestVersion)).status());
    return exec("COMMIT").status();
  }();
  if (!status.ok() && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    Result(PQexec(conn_, "ROLLBACK"));
  }
  return status;
}

absl::StatusOr<std::string> PostgresStore::DurabilitySettings() {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(EnsureConnectedLocked());
  std::string out;
  for (const char* name : {"fsync", "synchronous_commit", "wal_sync_method", "server_version"}) {
    Result r(PQexec(conn_, absl::StrCat("SHOW ", name).c_str()));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
      return pg::Error(where_, absl::StrCat("SHOW ", name), conn_, r.get());
    }
    absl::StrAppend(&out, out.empty() ? "" : " ", name, "=", PQgetvalue(r.get(), 0, 0));
  }
  return out;
}

absl::StatusOr<bool> PostgresStore::Empty() {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(EnsureConnectedLocked());
  Result r(PQexec(conn_,
                  "SELECT (SELECT count(*) FROM tokens) + (SELECT count(*) FROM tasks) + "
                  "(SELECT count(*) FROM workers)"));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return pg::Error(where_, "count records", conn_, r.get());
  }
  return std::string(PQgetvalue(r.get(), 0, 0)) == "0";
}

absl::StatusOr<uint64_t> PostgresStore::AcquireLeadership(const std::string& holder,
                                                          const std::string& address,
                                                          int64_t lease_ms) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(EnsureConnectedLocked());
  const std::string lease = std::to_string(lease_ms);
  const char* values[] = {holder.c_str(), address.c_str(), lease.c_str()};
  // Takes a free or expired lease (or our own again) with a new term. The
  // row lock waits for a leader's transaction in flight to end: its fence
  // holds the row shared until its COMMIT.
  Result r(PQexecParams(conn_,
                        "UPDATE artel_leader SET term = term + 1, holder = $1, address = $2, "
                        "expires_at = now() + make_interval(secs => $3::bigint / 1000.0) "
                        "WHERE id = 1 AND (expires_at <= now() OR holder = $1) RETURNING term",
                        3, nullptr, values, nullptr, nullptr, 0));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return pg::Error(where_, "take the leader lease", conn_, r.get());
  }
  if (PQntuples(r.get()) == 0) {
    Result who(PQexec(conn_,
                      "SELECT term, holder, address, "
                      "(extract(epoch FROM expires_at - now()) * 1000)::bigint FROM artel_leader"));
    if (PQresultStatus(who.get()) != PGRES_TUPLES_OK || PQntuples(who.get()) != 1) {
      return pg::Error(where_, "read the leader lease", conn_, who.get());
    }
    return absl::UnavailableError(
        absl::StrCat("another coordinator leads (", PQgetvalue(who.get(), 0, 1), " at ",
                     PQgetvalue(who.get(), 0, 2), ", term ", PQgetvalue(who.get(), 0, 0),
                     ", its lease runs ", PQgetvalue(who.get(), 0, 3), " ms more)"));
  }
  term_ = std::stoull(PQgetvalue(r.get(), 0, 0));
  return term_;
}

absl::Status PostgresStore::RenewLeadership(int64_t lease_ms) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(EnsureConnectedLocked());
  if (term_ == 0) return absl::FailedPreconditionError("this coordinator holds no leader lease");
  const std::string term = std::to_string(term_), lease = std::to_string(lease_ms);
  const char* values[] = {term.c_str(), lease.c_str()};
  Result r(PQexecParams(conn_,
                        "UPDATE artel_leader SET "
                        "expires_at = now() + make_interval(secs => $2::bigint / 1000.0) "
                        "WHERE id = 1 AND term = $1 AND expires_at > now() RETURNING term",
                        2, nullptr, values, nullptr, nullptr, 0));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return pg::Error(where_, "renew the leader lease", conn_, r.get());
  }
  if (PQntuples(r.get()) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("postgres database ", where_, ": the leader lease of term ", term_,
                     " has expired or was taken over; this coordinator must stop writing"));
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::Apply(const WriteBatch& batch) {
  if (batch.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.retry_ms);
  auto pause = std::chrono::milliseconds(50);
  bool warned = false;
  for (;;) {
    absl::Status s = EnsureConnectedLocked();
    if (s.ok()) s = ApplyLocked(batch);
    if (!s.ok() && conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK &&
        PQtransactionStatus(conn_) != PQTRANS_IDLE) {
      Result(PQexec(conn_, "ROLLBACK"));
    }
    if (s.code() != absl::StatusCode::kUnavailable ||
        std::chrono::steady_clock::now() + pause > give_up) {
      if (warned && s.ok()) spdlog::info("postgres database {}: writing again", where_);
      return s;
    }
    if (!warned) {
      spdlog::warn("{}; retrying for up to {} s, acknowledging nothing meanwhile",
                   std::string(s.message()), options_.retry_ms / 1000);
      warned = true;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(2000));
  }
}

absl::Status PostgresStore::ApplyLocked(const WriteBatch& batch) {
  std::vector<Command> commands;
  commands.reserve(batch.size() + 2);
  commands.push_back({"BEGIN", {}, {}});
  if (term_ != 0) commands.push_back(Command{kFence.name}.Id(term_));
  for (const v1::TaskInfo& t : batch.tasks) {
    v1::TaskInfo copy;
    const v1::TaskInfo* task = &t;
    if (t.replicas_size() > 0) {  // replicas are rows of their own
      copy = t;
      copy.clear_replicas();
      task = &copy;
    }
    commands.push_back(Command{kTask.name}
                           .Id(task->id())
                           .Id(task->job_id())
                           .Text(std::to_string(task->state()))
                           .Bytes(Serialize(*task)));
  }
  for (const v1::ReplicaInfo& r : batch.replicas) {
    commands.push_back(Command{kReplica.name}
                           .Id(r.id())
                           .Id(r.task_id())
                           .Text(r.worker_id())
                           .Text(std::to_string(r.state()))
                           .Bytes(Serialize(r)));
  }
  for (const v1::WorkerInfo& w : batch.workers) {
    commands.push_back(Command{kWorker.name}.Text(w.id()).Bytes(Serialize(w)));
  }
  for (const v1::JobInfo& j : batch.jobs) {
    commands.push_back(Command{kJob.name}.Id(j.id()).Bytes(Serialize(j)));
  }
  for (const v1::AppVersion& a : batch.apps) {
    commands.push_back(Command{kApp.name}.Text(a.name()).Text(a.version()).Bytes(Serialize(a)));
  }
  for (const TokenRecord& t : batch.tokens) {
    commands.push_back(Command{kToken.name}
                           .Text(t.token_hash)
                           .Text(std::to_string(t.role))
                           .Text(std::to_string(t.created_at_ms))
                           .Text(t.owner)
                           .Text(std::to_string(t.expires_at_ms))
                           .Text(std::to_string(t.revoked_at_ms)));
  }
  for (const v1::Dataset& d : batch.datasets) {
    commands.push_back(Command{kDataset.name}.Text(d.name()).Bytes(Serialize(d)));
  }
  for (const v1::TrainingJob& j : batch.training_jobs) {
    commands.push_back(Command{kTrainingJob.name}.Id(j.id()).Bytes(Serialize(j)));
  }
  commands.push_back({"COMMIT", {}, {}});

  if (PQenterPipelineMode(conn_) != 1)
    return pg::Error(where_, "enter pipeline mode", conn_, nullptr);
  absl::Status first_error;
  for (size_t start = 0; start < commands.size(); start += kPipelineChunk) {
    const size_t end = std::min(commands.size(), start + kPipelineChunk);
    for (size_t i = start; i < end; ++i) {
      const Command& c = commands[i];
      int ok;
      if (c.values.empty()) {  // BEGIN, COMMIT
        ok = PQsendQueryParams(conn_, c.statement, 0, nullptr, nullptr, nullptr, nullptr, 0);
      } else {
        std::vector<const char*> values;
        std::vector<int> lengths;
        for (const std::string& v : c.values) {
          values.push_back(v.data());
          lengths.push_back(static_cast<int>(v.size()));
        }
        ok = PQsendQueryPrepared(conn_, c.statement, static_cast<int>(values.size()), values.data(),
                                 lengths.data(), c.formats.data(), 0);
      }
      if (ok != 1) {
        absl::Status s = pg::Error(where_, "send a write", conn_, nullptr);
        PQexitPipelineMode(conn_);
        return s;
      }
    }
    if (PQpipelineSync(conn_) != 1) {
      absl::Status s = pg::Error(where_, "send a write", conn_, nullptr);
      PQexitPipelineMode(conn_);
      return s;
    }
    // One result (then a null) per command, then the sync's result.
    for (size_t i = start; i < end; ++i) {
      Result r(PQgetResult(conn_));
      if (r == nullptr) return pg::Error(where_, "read a write's result", conn_, nullptr);
      const ExecStatusType st = PQresultStatus(r.get());
      if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_PIPELINE_ABORTED &&
          first_error.ok()) {
        const std::string message = PQresultErrorMessage(r.get());
        if (message.find("artel_fenced") != std::string::npos) {
          first_error = absl::FailedPreconditionError(absl::StrCat(
              "postgres database ", where_, ": this coordinator's leadership (term ", term_,
              ") has ended: another coordinator took over, or the lease expired; nothing was "
              "written"));
        } else {
          first_error = pg::Error(where_, absl::StrCat("write (", commands[i].statement, ")"),
                                  conn_, r.get());
        }
      }
      Result(PQgetResult(conn_));  // the null that ends this command's results
    }
    Result sync(PQgetResult(conn_));
    if (sync == nullptr || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) {
      return pg::Error(where_, "finish a write", conn_, sync.get());
    }
  }
  PQexitPipelineMode(conn_);
  if (first_error.ok() && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    return pg::Error(where_, "commit", conn_, nullptr);
  }
  return first_error;
}

namespace {

// Runs `sql` (rows: key as text, record as bytea) in binary format and
// appends each parsed record to `out`.
template <typename Msg>
absl::Status ReadRecords(PGconn* conn, const std::string& where, const std::string& table,
                         const std::string& sql, std::vector<Msg>& out) {
  Result r(PQexecParams(conn, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr,
                        /*resultFormat=*/1));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return pg::Error(where, "read " + table, conn, r.get());
  }
  const int rows = PQntuples(r.get());
  out.reserve(out.size() + rows);
  for (int i = 0; i < rows; ++i) {
    Msg msg;
    if (!msg.ParseFromArray(PQgetvalue(r.get(), i, 1), PQgetlength(r.get(), i, 1))) {
      return absl::DataLossError(
          absl::StrCat("postgres database ", where, ": table ", table, ", key ",
                       std::string(PQgetvalue(r.get(), i, 0), PQgetlength(r.get(), i, 0)),
                       ": stored record does not parse as ", Msg::descriptor()->full_name(),
                       "; restore the database from a backup"));
    }
    out.push_back(std::move(msg));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StoreSnapshot> PostgresStore::Load() {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(EnsureConnectedLocked());
  Result begin(PQexec(conn_, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  if (PQresultStatus(begin.get()) != PGRES_COMMAND_OK) {
    return pg::Error(where_, "begin a read", conn_, begin.get());
  }
  StoreSnapshot snapshot;
  absl::Status status = ReadAllLocked(snapshot);
  Result end(PQexec(conn_, status.ok() ? "COMMIT" : "ROLLBACK"));
  if (!status.ok()) return status;
  return snapshot;
}

absl::Status PostgresStore::ReadAllLocked(StoreSnapshot& out) {
  RETURN_IF_ERROR(
      ReadRecords(conn_, where_, "tasks", "SELECT id::text, record FROM tasks", out.tasks));
  RETURN_IF_ERROR(ReadRecords(conn_, where_, "replicas", "SELECT id::text, record FROM replicas",
                              out.replicas));
  RETURN_IF_ERROR(ReadRecords(conn_, where_, "workers",
                              "SELECT id, record FROM workers ORDER BY id COLLATE \"C\"",
                              out.workers));
  RETURN_IF_ERROR(
      ReadRecords(conn_, where_, "jobs", "SELECT id::text, record FROM jobs", out.jobs));
  RETURN_IF_ERROR(ReadRecords(conn_, where_, "apps",
                              "SELECT name || ' version ' || version, record FROM apps "
                              "ORDER BY name COLLATE \"C\", version COLLATE \"C\"",
                              out.apps));
  RETURN_IF_ERROR(ReadRecords(conn_, where_, "datasets",
                              "SELECT name, record FROM datasets ORDER BY name COLLATE \"C\"",
                              out.datasets));
  RETURN_IF_ERROR(ReadRecords(conn_, where_, "training_jobs",
                              "SELECT id::text, record FROM training_jobs", out.training_jobs));
  // Integer keys are unsigned; PostgreSQL orders them signed, so sort here.
  SortById(out.tasks);
  SortById(out.replicas);
  SortById(out.jobs);
  SortById(out.training_jobs);

  Result r(PQexec(conn_,
                  "SELECT token_hash, role, created_at_ms, owner, expires_at_ms, revoked_at_ms "
                  "FROM tokens ORDER BY token_hash COLLATE \"C\""));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return pg::Error(where_, "read tokens", conn_, r.get());
  }
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    TokenRecord t;
    t.token_hash = PQgetvalue(r.get(), i, 0);
    const int role = std::atoi(PQgetvalue(r.get(), i, 1));
    if (!v1::Role_IsValid(role)) {
      return absl::DataLossError(absl::StrCat("postgres database ", where_, ": table tokens, key ",
                                              t.token_hash, ": unknown role ", role,
                                              "; restore the database from a backup"));
    }
    t.role = static_cast<v1::Role>(role);
    t.created_at_ms = std::strtoll(PQgetvalue(r.get(), i, 2), nullptr, 10);
    t.owner = PQgetvalue(r.get(), i, 3);
    t.expires_at_ms = std::strtoll(PQgetvalue(r.get(), i, 4), nullptr, 10);
    t.revoked_at_ms = std::strtoll(PQgetvalue(r.get(), i, 5), nullptr, 10);
    out.tokens.push_back(std::move(t));
  }
  return absl::OkStatus();
}

}  // namespace artel
