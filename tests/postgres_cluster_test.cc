// A coordinator whose state and blobs live in a real PostgreSQL server
// (started for the test): tasks run and survive a coordinator restart that
// lost its data directory's blobs; a second coordinator on the same data
// directory is refused.
#include <iostream>

#include "cluster_test_util.h"
#include "common/subprocess.h"
#include "store/pg_test_server.h"

namespace artel::testing {
namespace {

constexpr char kEchoApp[] = "#!/bin/sh\necho \"task $1\"\n";

class PostgresCluster : public ClusterTest {
 protected:
  void SetUp() override {
    auto server = PgTestServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    pg_ = *std::move(server);
  }
  std::unique_ptr<PgTestServer> pg_;
};

TEST_F(PostgresCluster, TasksAndBlobsSurviveACoordinatorRestartWithoutItsDataDirectory) {
  StartCluster({"--store", pg_->Url()});
  AddScriptApp("echo", kEchoApp);
  AddWorker("w1");
  std::vector<uint64_t> ids;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<v1::SubmitResponse> r = client().Submit(OneTask("echo", {std::to_string(i)}));
    ASSERT_TRUE(r.ok()) << r.status();
    ids.push_back(r->task_ids(0));
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_EQ(WaitDone(ids[i]).outcome(), v1::OUTCOME_SUCCESS);
    EXPECT_EQ(Output(ids[i], "stdout"), "task " + std::to_string(i) + "\n");
  }

  cluster().KillCoordinator();  // SIGKILL: only what PostgreSQL holds survives
  // The blobs too: the restarted coordinator finds apps and outputs in the
  // database, as a coordinator on another machine would.
  std::filesystem::remove_all(cluster().root() / "coordinator" / "blobs");
  ASSERT_TRUE(cluster().RestartCoordinator().ok());
  for (size_t i = 0; i < ids.size(); ++i) {
    v1::TaskInfo t = WaitDone(ids[i]);
    EXPECT_EQ(t.outcome(), v1::OUTCOME_SUCCESS);
    EXPECT_EQ(Output(ids[i], "stdout"), "task " + std::to_string(i) + "\n");
  }
  absl::StatusOr<v1::SubmitResponse> later = client().Submit(OneTask("echo", {"after"}));
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_GT(later->task_ids(0), ids.back());  // ids continue, never reused
  EXPECT_EQ(WaitDone(later->task_ids(0)).outcome(), v1::OUTCOME_SUCCESS);
  // A worker that never saw the app downloads it from the new coordinator.
  AddWorker("w2", {}, "other-owner");
  v1::SubmitRequest both = OneTask("echo", {"both"});
  both.mutable_tasks(0)->mutable_policy()->set_min_quorum(2);
  absl::StatusOr<v1::SubmitResponse> quorum = client().Submit(both);
  ASSERT_TRUE(quorum.ok()) << quorum.status();
  EXPECT_EQ(WaitDone(quorum->task_ids(0)).outcome(), v1::OUTCOME_SUCCESS);
}

// Two coordinators on one database: the second stands by (not listening)
// and takes over within 10 s once the leader is SIGKILLed: it serves what
// the leader had committed, and new work runs through it.
TEST_F(PostgresCluster, AStandbyTakesOverFromAKilledLeaderWithItsState) {
  StartCluster({"--store", pg_->Url()});
  AddScriptApp("echo", kEchoApp);
  AddWorker("w1");
  const auto leader_dir = cluster().root() / "coordinator";
  const auto standby_dir = dir() / "standby";
  absl::StatusOr<Subprocess> standby =
      Subprocess::Start({ArtelBinary().string(), "coordinator", "--data", standby_dir.string(),
                         "--listen", "127.0.0.1:0", "--http", "off", "--store", pg_->Url(),
                         "--tls-cert", (leader_dir / "tls" / "cert.pem").string(), "--tls-key",
                         (leader_dir / "tls" / "key.pem").string(), "--app-key",
                         (cluster().root() / "project-key" / "artel-app.pub").string()},
                        dir() / "standby.log");
  ASSERT_TRUE(standby.ok()) << standby.status();
  ASSERT_TRUE(PollUntil(
      [&] { return ReadFile(dir() / "standby.log").find("standing by") != std::string::npos; },
      std::chrono::seconds(20)))
      << ReadFile(dir() / "standby.log");
  EXPECT_FALSE(std::filesystem::exists(standby_dir / "coordinator.addr"));  // not listening

  absl::StatusOr<v1::SubmitResponse> before = client().Submit(OneTask("echo", {"before"}));
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_EQ(WaitDone(before->task_ids(0)).outcome(), v1::OUTCOME_SUCCESS);

  cluster().KillCoordinator();
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(PollUntil([&] { return !ReadFile(standby_dir / "coordinator.addr").empty(); },
                        std::chrono::seconds(20)))
      << ReadFile(dir() / "standby.log");
  const double takeover_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_LT(takeover_s, 10.0);
  std::cout << "the standby listened " << takeover_s << " s after the leader was killed\n";

  std::string address = ReadFile(standby_dir / "coordinator.addr");
  address.erase(address.find_last_not_of(" \n") + 1);
  Client successor(address, cluster().admin_token());  // the same certificate: the pin holds
  absl::StatusOr<v1::TaskInfo> old_task = successor.GetTask(before->task_ids(0));
  ASSERT_TRUE(old_task.ok()) << old_task.status();
  EXPECT_EQ(old_task->outcome(), v1::OUTCOME_SUCCESS);

  absl::StatusOr<Subprocess> worker = Subprocess::Start(
      {ArtelBinary().string(), "worker", "--coordinator", address, "--token",
       cluster().worker_token(), "--data", (dir() / "w2").string(), "--name", "w2"},
      dir() / "w2.log");
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<v1::SubmitResponse> after = successor.Submit(OneTask("echo", {"after"}));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_GT(after->task_ids(0), before->task_ids(0));
  ASSERT_TRUE(PollUntil(
      [&] {
        auto t = successor.GetTask(after->task_ids(0));
        return t.ok() && t->state() == v1::TASK_STATE_DONE;
      },
      std::chrono::seconds(60)))
      << ReadFile(dir() / "w2.log");
  EXPECT_EQ(successor.GetTask(after->task_ids(0))->outcome(), v1::OUTCOME_SUCCESS);
}

TEST_F(PostgresCluster, AWrongStoreUrlStopsTheCoordinatorSayingWhatToCheck) {
  CommandResult r =
      RunArtel({"coordinator", "--data", (dir() / "c").string(), "--listen", "127.0.0.1:0",
                "--http", "off", "--store", "postgres://artel:secret@127.0.0.1:1/none"},
               {}, std::chrono::seconds(30));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cannot connect"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("check --store"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("secret"), std::string::npos) << r.err;

  CommandResult scheme = RunArtel({"coordinator", "--data", (dir() / "c").string(), "--listen",
                                   "127.0.0.1:0", "--http", "off", "--store", "mysql://x/y"});
  EXPECT_NE(scheme.exit_code, 0);
  EXPECT_NE(scheme.err.find("is not a PostgreSQL URL"), std::string::npos) << scheme.err;
}

TEST(SameDataDirectory, ASecondCoordinatorIsRefusedWithAClearError) {
  TempDir dir;
  LocalClusterOptions options;
  options.artel_binary = ArtelBinary();
  options.root = dir.path() / "cluster";
  auto cluster = LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  CommandResult second =
      RunArtel({"coordinator", "--data", ((*cluster)->root() / "coordinator").string(), "--listen",
                "127.0.0.1:0", "--http", "off"});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("another coordinator is running on data directory"), std::string::npos)
      << second.err;
}

}  // namespace
}  // namespace artel::testing
