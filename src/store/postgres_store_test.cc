// What PostgresStore does beyond the Store contract: migrations, errors that
// say what to check, and a server that goes away and comes back.
#include "store/postgres_store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <thread>

#include "store/pg_test_server.h"
#include "store/store_test_util.h"

namespace artel {
namespace {

using store_test::OneOfEach;

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = PgTestServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  // Runs one SQL statement on the test database directly.
  void Exec(const std::string& sql) {
    PGconn* conn = PQconnectdb(server_->Url().c_str());
    ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
    PGresult* r = PQexec(conn, sql.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(conn);
  }
  std::unique_ptr<PgTestServer> server_;
};

TEST_F(PostgresStoreTest, OpeningAgainKeepsTheSchemaAndTheData) {
  {
    auto store = PostgresStore::Open(server_->Url());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Apply(OneOfEach(1)).ok());
  }
  auto again = PostgresStore::Open(server_->Url());
  ASSERT_TRUE(again.ok()) << again.status();
  auto snapshot = (*again)->Load();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(snapshot->tasks.size(), 1u);
  EXPECT_EQ(snapshot->tokens.size(), 1u);
}

TEST_F(PostgresStoreTest, ADatabaseFromANewerArtelIsRefused) {
  ASSERT_TRUE(PostgresStore::Open(server_->Url()).ok());
  Exec("UPDATE artel_schema SET version = " +
       std::to_string(PostgresStore::LatestSchemaVersion() + 1));
  auto store = PostgresStore::Open(server_->Url());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("upgrade artel"), std::string::npos);
}

TEST_F(PostgresStoreTest, AnUnreachableServerSaysWhatToCheckWithoutThePassword) {
  auto store = PostgresStore::Open("postgres://artel:hunter2@127.0.0.1:1/artel");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(store.status().message().find("--store"), std::string::npos);
  EXPECT_NE(store.status().message().find("postgres://artel@127.0.0.1:1/artel"), std::string::npos);
  EXPECT_EQ(store.status().message().find("hunter2"), std::string::npos);
}

TEST_F(PostgresStoreTest, AFailedWriteStoresNothingAndTheStoreReconnectsAfterARestart) {
  auto store = PostgresStore::Open(server_->Url(), {.retry_ms = 0});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Apply(OneOfEach(1)).ok());

  ASSERT_TRUE(server_->Stop().ok());
  absl::Status down = (*store)->Apply(OneOfEach(2));
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;

  ASSERT_TRUE(server_->Restart().ok());
  ASSERT_TRUE((*store)->Apply(OneOfEach(3)).ok());
  auto snapshot = (*store)->Load();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_EQ(snapshot->tasks.size(), 2u);  // 1 and 3; the write that failed left nothing
  EXPECT_EQ(snapshot->tasks[0].id(), 1u);
  EXPECT_EQ(snapshot->tasks[1].id(), 3u);
}

TEST_F(PostgresStoreTest, AWriteWaitsForAServerThatComesBackAndIsAcknowledgedOnlyThen) {
  auto store = PostgresStore::Open(server_->Url(), {.retry_ms = 60'000});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(server_->Stop().ok());
  std::atomic<bool> returned{false};
  absl::Status result;
  std::thread writer([&] {
    result = (*store)->Apply(OneOfEach(7));
    returned = true;
  });
  // Polling the flag, not timing: the write cannot return while the server
  // is down; it returns once the server is back.
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_FALSE(returned.load()) << "acknowledged while the database was down: " << result;
  }
  ASSERT_TRUE(server_->Restart().ok());
  writer.join();
  EXPECT_TRUE(result.ok()) << result;
  auto snapshot = (*store)->Load();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_EQ(snapshot->tasks.size(), 1u);
  EXPECT_EQ(snapshot->tasks[0].id(), 7u);
}

TEST_F(PostgresStoreTest, OneCoordinatorLeadsAtATimeAndTermsGrow) {
  auto a = PostgresStore::Open(server_->Url());
  auto b = PostgresStore::Open(server_->Url());
  ASSERT_TRUE(a.ok() && b.ok());
  auto term = (*a)->AcquireLeadership("a", "10.0.0.1:7700", 60'000);
  ASSERT_TRUE(term.ok()) << term.status();
  EXPECT_EQ(*term, 1u);
  auto refused = (*b)->AcquireLeadership("b", "10.0.0.2:7700", 60'000);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("a at 10.0.0.1:7700, term 1"), std::string::npos)
      << refused.status();
  EXPECT_TRUE((*a)->RenewLeadership(60'000).ok());
  EXPECT_TRUE((*a)->Apply(OneOfEach(1)).ok());
  EXPECT_EQ(*(*a)->AcquireLeadership("a", "10.0.0.1:7700", 60'000), 2u);  // a restart: new term
}

TEST_F(PostgresStoreTest, ADeposedLeaderCanNeverCommitAfterItsSuccessorTookOver) {
  auto a = PostgresStore::Open(server_->Url(), {.retry_ms = 0});
  auto b = PostgresStore::Open(server_->Url(), {.retry_ms = 0});
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->AcquireLeadership("a", "a:1", 300).ok());
  ASSERT_TRUE((*a)->Apply(OneOfEach(1)).ok());
  // a stops renewing (paused, partitioned); b takes over once the lease ends.
  absl::StatusOr<uint64_t> b_term = absl::UnavailableError("not yet");
  for (int i = 0; i < 100 && !b_term.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    b_term = (*b)->AcquireLeadership("b", "b:1", 60'000);
  }
  ASSERT_TRUE(b_term.ok()) << b_term.status();
  EXPECT_EQ(*b_term, 2u);

  absl::Status late = (*a)->Apply(OneOfEach(2));
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition) << late;
  EXPECT_NE(late.message().find("leadership (term 1) has ended"), std::string::npos) << late;
  EXPECT_EQ((*a)->RenewLeadership(60'000).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*b)->Apply(OneOfEach(3)).ok());

  auto snapshot = (*b)->Load();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  ASSERT_EQ(snapshot->tasks.size(), 2u);  // 1 (a, in its term) and 3 (b); never 2
  EXPECT_EQ(snapshot->tasks[0].id(), 1u);
  EXPECT_EQ(snapshot->tasks[1].id(), 3u);
}

TEST_F(PostgresStoreTest, ALeaderPausedBetweenItsFenceAndCommitCannotOutliveItsSuccessor) {
  auto a = PostgresStore::Open(server_->Url());
  auto b = PostgresStore::Open(server_->Url(), {.retry_ms = 0});
  ASSERT_TRUE(a.ok() && b.ok());
  auto a_term = (*a)->AcquireLeadership("a", "a:1", 500);
  ASSERT_TRUE(a_term.ok());
  // The leader's transaction, stopped after its fence: it holds the leader
  // row shared, and the server ends it after the idle-in-transaction timeout.
  PGconn* paused = PQconnectdb(server_->Url().c_str());
  ASSERT_EQ(PQstatus(paused), CONNECTION_OK);
  PGresult* r = PQexec(paused, ("SET idle_in_transaction_session_timeout = 1000; BEGIN; SELECT "
                                "artel_fence(" +
                                std::to_string(*a_term) + ")")
                                   .c_str());
  ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQresultErrorMessage(r);
  PQclear(r);

  absl::StatusOr<uint64_t> b_term = absl::UnavailableError("not yet");
  for (int i = 0; i < 200 && !b_term.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    b_term = (*b)->AcquireLeadership("b", "b:1", 60'000);
  }
  ASSERT_TRUE(b_term.ok()) << b_term.status();  // the pause did not block b for good

  // Resumed, the paused transaction cannot commit anything.
  r = PQexec(paused, "INSERT INTO jobs(id, record) VALUES (99, ''); COMMIT");
  EXPECT_NE(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
  PQfinish(paused);
  auto snapshot = (*b)->Load();
  ASSERT_TRUE(snapshot.ok());
  EXPECT_TRUE(snapshot->jobs.empty());
}

TEST_F(PostgresStoreTest, ABatchLargerThanOnePipelineChunkIsOneTransaction) {
  auto store = PostgresStore::Open(server_->Url());
  ASSERT_TRUE(store.ok()) << store.status();
  WriteBatch big;
  for (uint64_t id = 1; id <= 2500; ++id) big.tasks.push_back(store_test::FullTask(id));
  ASSERT_TRUE((*store)->Apply(big).ok());
  // A batch that fails in its last chunk leaves nothing of its first ones.
  WriteBatch bad;
  for (uint64_t id = 3001; id <= 4500; ++id) bad.tasks.push_back(store_test::FullTask(id));
  TokenRecord token = store_test::FullToken("hash");
  token.owner = "bad\xff";  // not UTF-8: PostgreSQL refuses it
  bad.tokens.push_back(token);
  EXPECT_FALSE((*store)->Apply(bad).ok());
  auto snapshot = (*store)->Load();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(snapshot->tasks.size(), 2500u);
  EXPECT_TRUE(snapshot->tokens.empty());
}

}  // namespace
}  // namespace artel
