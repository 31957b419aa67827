// A coordinator whose state and blobs live in a real PostgreSQL server
// (started for the test): tasks run and survive a coordinator restart that
// lost its data directory's blobs; a second coordinator on the same data
// directory is refused.
#include "cluster_test_util.h"
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
