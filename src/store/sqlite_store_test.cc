#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/store_test_util.h"

namespace artel {
namespace {

using store_test::AsSnapshot;
using store_test::ExpectSnapshotEq;
using store_test::FullTask;
using store_test::FullWorker;
using store_test::OneOfEach;
using ::testing::HasSubstr;

// A second, plain connection to the same file: how the tests look at and
// tamper with what SqliteStore wrote.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK) << path;
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  void Exec(const std::string& sql) {
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << sql << ": " << (err != nullptr ? err : "");
    sqlite3_free(err);
  }
  // The first column of the first row of `sql`, as text.
  std::string Query(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
    std::string value;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return value;
  }

 private:
  sqlite3* db_ = nullptr;
};

std::unique_ptr<SqliteStore> MustOpen(const std::string& path) {
  auto store = SqliteStore::Open(path);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

TEST(SqliteStore, ReopeningAFileKeepsEveryRecord) {
  store_test::TempDir dir;
  WriteBatch want = OneOfEach(1);
  want.Append(OneOfEach(2));
  {
    auto store = MustOpen(dir.File("db"));
    ASSERT_TRUE(store->Apply(OneOfEach(1)).ok());
    ASSERT_TRUE(store->Apply(OneOfEach(2)).ok());
  }
  for (int i = 0; i < 2; ++i) {  // the second open sees a migrated schema
    auto store = MustOpen(dir.File("db"));
    auto snapshot = store->Load();
    ASSERT_TRUE(snapshot.ok()) << snapshot.status();
    ExpectSnapshotEq(*snapshot, AsSnapshot(want));
  }
}

// A database written before tokens had owners, expiry and revocation
// (schema version 2) opens with its tokens intact and the new fields empty.
TEST(SqliteStore, TokensOfASchemaTwoDatabaseGainEmptyOwnerExpiryAndRevocation) {
  store_test::TempDir dir;
  {
    RawDb db(dir.File("db"));
    db.Exec(
        "CREATE TABLE tasks(id INTEGER PRIMARY KEY, job_id INTEGER, state INTEGER, record BLOB);"
        "CREATE TABLE replicas(id INTEGER PRIMARY KEY, task_id INTEGER, worker_id TEXT,"
        "  state INTEGER, record BLOB);"
        "CREATE INDEX replicas_by_task ON replicas(task_id);"
        "CREATE TABLE workers(id TEXT PRIMARY KEY, record BLOB);"
        "CREATE TABLE jobs(id INTEGER PRIMARY KEY, record BLOB);"
        "CREATE TABLE apps(name TEXT, version TEXT, record BLOB, PRIMARY KEY(name, version));"
        "CREATE TABLE tokens(token_hash TEXT PRIMARY KEY, role INTEGER, created_at_ms INTEGER);"
        "CREATE TABLE datasets(name TEXT PRIMARY KEY, record BLOB);"
        "CREATE TABLE training_jobs(id INTEGER PRIMARY KEY, record BLOB);"
        "INSERT INTO tokens VALUES('" +
        std::string(64, 'a') + "', " + std::to_string(v1::ROLE_WORKER) +
        ", 1700000000000);"
        "PRAGMA user_version=2;");
  }
  auto store = MustOpen(dir.File("db"));
  auto snapshot = store->Load();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_EQ(snapshot->tokens.size(), 1u);
  const TokenRecord& t = snapshot->tokens[0];
  EXPECT_EQ(t.token_hash, std::string(64, 'a'));
  EXPECT_EQ(t.role, v1::ROLE_WORKER);
  EXPECT_EQ(t.created_at_ms, 1'700'000'000'000);
  EXPECT_EQ(t.owner, "");
  EXPECT_EQ(t.expires_at_ms, 0);
  EXPECT_EQ(t.revoked_at_ms, 0);
}

TEST(SqliteStore, FileDatabaseRunsInWalMode) {
  store_test::TempDir dir;
  auto store = MustOpen(dir.File("db"));
  EXPECT_EQ(RawDb(dir.File("db")).Query("PRAGMA journal_mode"), "wal");
}

TEST(SqliteStore, UserVersionIsTheLatestMigration) {
  store_test::TempDir dir;
  auto store = MustOpen(dir.File("db"));
  EXPECT_GE(SqliteStore::LatestSchemaVersion(), 1);
  EXPECT_EQ(RawDb(dir.File("db")).Query("PRAGMA user_version"),
            std::to_string(SqliteStore::LatestSchemaVersion()));
}

TEST(SqliteStore, NewerSchemaVersionIsRefusedWithUpgradeAdvice) {
  store_test::TempDir dir;
  const int newer = SqliteStore::LatestSchemaVersion() + 1;
  RawDb(dir.File("db")).Exec("PRAGMA user_version=" + std::to_string(newer));
  auto store = SqliteStore::Open(dir.File("db"));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      std::string(store.status().message()),
      HasSubstr("database schema version " + std::to_string(newer) + " is newer than this artel (" +
                std::to_string(SqliteStore::LatestSchemaVersion()) + "); upgrade artel"));
}

TEST(SqliteStore, NegativeSchemaVersionIsRefusedAsDataLoss) {
  store_test::TempDir dir;
  RawDb(dir.File("db")).Exec("PRAGMA user_version=-1");
  auto store = SqliteStore::Open(dir.File("db"));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("invalid schema version -1"));
}

TEST(SqliteStore, FileThatIsNotADatabaseIsRefusedNamingThePath) {
  store_test::TempDir dir;
  std::ofstream(dir.File("db")) << std::string(8192, 'x');
  auto store = SqliteStore::Open(dir.File("db"));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(dir.File("db")));
}

TEST(SqliteStore, CorruptedRecordMakesLoadFailWithDataLossNamingTableAndKey) {
  store_test::TempDir dir;
  auto store = MustOpen(dir.File("db"));
  ASSERT_TRUE(store->Apply(OneOfEach(42)).ok());
  // 0xff... is a varint longer than ten bytes: no protobuf parses it.
  RawDb(dir.File("db")).Exec("UPDATE tasks SET record = x'ffffffffffffffffffffff01' WHERE id = 42");
  auto snapshot = store->Load();
  ASSERT_FALSE(snapshot.ok());
  EXPECT_EQ(snapshot.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(snapshot.status().message()), HasSubstr("table tasks, key 42"));
}

TEST(SqliteStore, UnknownTokenRoleMakesLoadFailWithDataLoss) {
  store_test::TempDir dir;
  auto store = MustOpen(dir.File("db"));
  ASSERT_TRUE(store->Apply(OneOfEach(1)).ok());
  RawDb(dir.File("db")).Exec("UPDATE tokens SET role = 99");
  auto snapshot = store->Load();
  ASSERT_FALSE(snapshot.ok());
  EXPECT_EQ(snapshot.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(snapshot.status().message()), HasSubstr("table tokens"));
}

TEST(SqliteStore, FailedApplyLeavesNothingHalfWritten) {
  store_test::TempDir dir;
  auto store = MustOpen(dir.File("db"));
  ASSERT_TRUE(store->Apply(OneOfEach(1, /*version=*/1)).ok());
  // Tasks and replicas are written before workers; the trigger makes the
  // update of worker w1 fail in the middle of the transaction.
  RawDb(dir.File("db"))
      .Exec(
          "CREATE TRIGGER fail_workers BEFORE UPDATE ON workers "
          "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  WriteBatch failing = OneOfEach(1, /*version=*/2);
  failing.Append(OneOfEach(2));
  absl::Status status = store->Apply(failing);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("injected failure"));
  auto snapshot = store->Load();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ExpectSnapshotEq(*snapshot, AsSnapshot(OneOfEach(1, 1)));

  // The store is usable again once the cause is gone.
  RawDb(dir.File("db")).Exec("DROP TRIGGER fail_workers");
  ASSERT_TRUE(store->Apply(failing).ok());
  WriteBatch want = OneOfEach(1, 2);
  want.Append(OneOfEach(2));
  snapshot = store->Load();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ExpectSnapshotEq(*snapshot, AsSnapshot(want));
}

TEST(SqliteStore, ConcurrentAppliesAndLoadsAreSafe) {
  auto store = MustOpen(":memory:");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 50; ++i) {
        WriteBatch batch;
        batch.tasks.push_back(FullTask(t * 1000 + i + 1));
        batch.workers.push_back(FullWorker("w" + std::to_string(t), i));
        EXPECT_TRUE(store->Apply(batch).ok());
        if (i % 10 == 0) {
          EXPECT_TRUE(store->Load().ok());
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  auto snapshot = store->Load();
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ(snapshot->tasks.size(), 200u);
  ASSERT_EQ(snapshot->workers.size(), 4u);
  for (const v1::WorkerInfo& w : snapshot->workers) EXPECT_EQ(w.name(), "host-49");
}

}  // namespace
}  // namespace artel
