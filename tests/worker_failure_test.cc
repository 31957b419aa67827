// Workers that crash, restart, fall silent or lie: every accepted task still
// finishes once, with the right answer, losing at most one checkpoint of work.
#include <gmock/gmock.h>

#include <csignal>
#include <map>
#include <nlohmann/json.hpp>

#include "cluster_test_util.h"
#include "test_apps.h"

namespace artel::testing {
namespace {

class WorkerFailure : public ClusterTest {};

TEST_F(WorkerFailure, WorkerKilledMidTaskIsReplacedByAnotherWorker) {
  StartCluster();
  AddScriptApp("slow", kSlowApp);
  const std::string a = AddWorker("a");
  const std::string marker = UniqueMarker();
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(OneTask("slow", {marker}));
  ASSERT_TRUE(resp.ok()) << resp.status();
  const uint64_t id = resp->task_ids(0);
  ASSERT_TRUE(WaitTask(
      id, [](const auto& t) { return HasReplicaIn(t, v1::REPLICA_STATE_IN_PROGRESS); },
      std::chrono::seconds(20)))
      << "no replica started on worker a";
  ASSERT_TRUE(
      PollUntil([&] { return ProcessWithArgumentExists(marker); }, std::chrono::seconds(10)))
      << "the app never ran on worker a";
  cluster().worker(0).Kill();  // SIGKILL
  // The sandboxed app dies with its worker instead of running on unowned.
  EXPECT_TRUE(
      PollUntil([&] { return !ProcessWithArgumentExists(marker); }, std::chrono::seconds(5)))
      << "the app of the killed worker kept running";
  const std::string b = AddWorker("b");

  v1::TaskInfo t = WaitDone(id);
  ASSERT_EQ(t.outcome(), v1::OUTCOME_SUCCESS) << t.reason();
  ASSERT_EQ(t.replicas_size(), 2);
  EXPECT_EQ(t.replicas(0).worker_id(), a);
  EXPECT_EQ(t.replicas(0).state(), v1::REPLICA_STATE_LOST);
  EXPECT_FALSE(t.replicas(0).error().empty());
  EXPECT_EQ(t.replicas(1).worker_id(), b);
  EXPECT_EQ(t.replicas(1).state(), v1::REPLICA_STATE_REPORTED);
  EXPECT_EQ(t.replicas(1).id(), t.canonical_replica());
  EXPECT_EQ(Output(id, "stdout"), "slept 15 times\n");
}

TEST_F(WorkerFailure, WorkerRestartedMidTaskRunsTheTaskAgain) {
  StartCluster();
  AddScriptApp("slow", kSlowApp);
  const std::string a = AddWorker("a");
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(OneTask("slow"));
  ASSERT_TRUE(resp.ok()) << resp.status();
  const uint64_t id = resp->task_ids(0);
  ASSERT_TRUE(WaitTask(
      id, [](const auto& t) { return HasReplicaIn(t, v1::REPLICA_STATE_IN_PROGRESS); },
      std::chrono::seconds(20)));
  cluster().worker(0).Kill();
  // The same worker (same data directory, so the same id) comes back: its
  // lost replica never voted, so the task may run on it again.
  EXPECT_EQ(AddWorker("a"), a);

  v1::TaskInfo t = WaitDone(id, std::chrono::seconds(20));
  ASSERT_EQ(t.outcome(), v1::OUTCOME_SUCCESS) << t.reason();
  ASSERT_EQ(t.replicas_size(), 2);
  EXPECT_EQ(t.replicas(0).state(), v1::REPLICA_STATE_LOST);
  EXPECT_EQ(t.replicas(1).worker_id(), a);
  EXPECT_EQ(Output(id, "stdout"), "slept 15 times\n");
}

TEST_F(WorkerFailure, WorkerPausedPastTimeoutAndResumedCountsOnce) {
  StartCluster();
  AddScriptApp("slow", kSlowApp);
  const std::string a = AddWorker("a");
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(OneTask("slow"));
  ASSERT_TRUE(resp.ok()) << resp.status();
  const uint64_t id = resp->task_ids(0);
  ASSERT_TRUE(WaitTask(
      id, [](const auto& t) { return HasReplicaIn(t, v1::REPLICA_STATE_IN_PROGRESS); },
      std::chrono::seconds(20)));
  cluster().worker(0).Signal(SIGSTOP);  // a partition: silent, not dead
  ASSERT_TRUE(WaitTask(
      id, [](const auto& t) { return HasReplicaIn(t, v1::REPLICA_STATE_LOST); },
      std::chrono::seconds(10)))
      << "the silent worker's replica was never declared lost";
  AddWorker("b");
  ASSERT_TRUE(WaitTask(
      id, [](const auto& t) { return t.replicas_size() == 2; }, std::chrono::seconds(10)));
  cluster().worker(0).Signal(SIGCONT);

  v1::TaskInfo t = WaitDone(id);
  ASSERT_EQ(t.outcome(), v1::OUTCOME_SUCCESS) << t.reason();
  EXPECT_EQ(Output(id, "stdout"), "slept 15 times\n");
  absl::StatusOr<v1::JobStatus> job = client().GetJob(t.job_id());
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->done(), 1u);
  EXPECT_EQ(job->success(), 1u);
  // Whichever finished second is settled too: nothing stays in progress.
  EXPECT_TRUE(WaitTask(
      id, [](const auto& t) { return !HasReplicaIn(t, v1::REPLICA_STATE_IN_PROGRESS); },
      std::chrono::seconds(5)));
  // The resumed worker heartbeats again and is listed alive, running nothing.
  EXPECT_TRUE(PollUntil(
      [&] {
        absl::StatusOr<v1::ListWorkersResponse> workers = client().ListWorkers();
        if (!workers.ok() || workers->workers_size() != 2) return false;
        for (const auto& w : workers->workers()) {
          if (!w.alive() || w.running() != 0) return false;
        }
        return true;
      },
      std::chrono::seconds(5)));
}

TEST_F(WorkerFailure, CheckpointResumesOnAnotherWorker) {
  StartCluster();
  AddScriptApp("count", kCountingApp);
  AddWorker("a");
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(OneTask("count"));
  ASSERT_TRUE(resp.ok()) << resp.status();
  const uint64_t id = resp->task_ids(0);
  std::optional<v1::TaskInfo> checkpointed = WaitTask(
      id,
      [](const v1::TaskInfo& t) {
        for (const auto& r : t.replicas()) {
          if (!r.checkpoint_digest().empty()) return true;
        }
        return false;
      },
      std::chrono::seconds(20));
  ASSERT_TRUE(checkpointed.has_value()) << "no checkpoint was uploaded";
  ASSERT_NE(checkpointed->state(), v1::TASK_STATE_DONE) << "finished before the kill";
  cluster().worker(0).Kill();
  AddWorker("b");

  v1::TaskInfo t = WaitDone(id);
  ASSERT_EQ(t.outcome(), v1::OUTCOME_SUCCESS) << t.reason();
  ASSERT_EQ(t.replicas_size(), 2);
  EXPECT_EQ(t.replicas(0).state(), v1::REPLICA_STATE_LOST);
  EXPECT_EQ(t.resume_checkpoint(), t.replicas(0).checkpoint_digest());
  const int start = std::stoi(Output(id, "start"));
  EXPECT_GT(start, 0) << "the replacement started from scratch";
  EXPECT_LT(start, 30);
  EXPECT_EQ(Output(id, "final"), "30\n");
  // It computed exactly the numbers after its start, not the ones before.
  std::string expected = "computed:";
  for (int n = start + 1; n <= 30; ++n) expected += " " + std::to_string(n);
  EXPECT_EQ(Output(id, "stdout"), expected + "\n");
}
TEST_F(WorkerFailure, CorruptingWorkerIsOutvotedByHonestQuorum) {
  StartCluster();
  AddScriptApp("square", kSquareApp);
  AddWorker("honest-1");
  AddWorker("honest-2");
  const std::string liar = AddWorker("liar", {"--inject-fault", "corrupt-results"});
  constexpr int kTasks = 6;
  v1::SubmitRequest req;
  for (int i = 0; i < kTasks; ++i) {
    v1::TaskSpec* t = req.add_tasks();
    t->set_app("square");
    t->add_args(std::to_string(i + 2));
    t->mutable_policy()->set_min_quorum(2);
  }
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  int liar_reports = 0;
  for (int i = 0; i < kTasks; ++i) {
    v1::TaskInfo t = WaitDone(resp->task_ids(i));
    ASSERT_EQ(t.outcome(), v1::OUTCOME_SUCCESS) << t.reason();
    EXPECT_EQ(Output(t.id(), "square"), std::to_string((i + 2) * (i + 2)) + "\n");
    for (const auto& r : t.replicas()) {
      if (r.state() != v1::REPLICA_STATE_REPORTED) continue;
      if (r.worker_id() == liar) {
        ++liar_reports;
        EXPECT_EQ(r.validity(), v1::VALIDITY_INVALID) << "task " << t.id() << " replica " << r.id();
        EXPECT_NE(r.id(), t.canonical_replica());
      } else {
        EXPECT_EQ(r.validity(), v1::VALIDITY_VALID) << "task " << t.id() << " replica " << r.id();
      }
    }
  }
  ASSERT_GT(liar_reports, 0) << "the corrupting worker never reported; the test proved nothing";

  // Late reports of the liar are judged too, so its count may only grow.
  CommandResult workers = RunArtel({"workers", "--json", "--coordinator", cluster().address(),
                                    "--token", cluster().admin_token()});
  ASSERT_EQ(workers.exit_code, 0) << workers.err;
  std::map<std::string, uint64_t> invalid;
  for (const std::string& line : Lines(workers.out)) {
    nlohmann::json w = nlohmann::json::parse(line);
    invalid[w.at("name").get<std::string>()] = w.at("invalid").get<uint64_t>();
  }
  ASSERT_EQ(invalid.size(), 3u) << workers.out;
  EXPECT_GE(invalid["liar"], static_cast<uint64_t>(liar_reports));
  EXPECT_EQ(invalid["honest-1"], 0u);
  EXPECT_EQ(invalid["honest-2"], 0u);
}

// Two workers of one owner that corrupt their results alike, beside two
// honest workers of two other owners: replicas of a task never run on two
// workers of one owner, so the liars cannot form a quorum and no canonical
// result is wrong (with one token per worker they won 33 of 60).
TEST_F(WorkerFailure, TwoLiarsOfOneOwnerCannotFormAQuorum) {
  StartCluster();
  AddScriptApp("square", kSquareApp);
  const std::string liar1 =
      AddWorker("mallory-1", {"--inject-fault", "corrupt-results"}, "mallory");
  const std::string liar2 =
      AddWorker("mallory-2", {"--inject-fault", "corrupt-results"}, "mallory");
  AddWorker("honest-a", {}, "alice");
  AddWorker("honest-b", {}, "bob");
  constexpr int kTasks = 60;
  v1::SubmitRequest req;
  for (int i = 0; i < kTasks; ++i) {
    v1::TaskSpec* t = req.add_tasks();
    t->set_app("square");
    t->add_args(std::to_string(i + 2));
    t->mutable_policy()->set_min_quorum(2);
  }
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  int wrong = 0, liar_reports = 0;
  for (int i = 0; i < kTasks; ++i) {
    v1::TaskInfo t = WaitDone(resp->task_ids(i));
    ASSERT_EQ(t.outcome(), v1::OUTCOME_SUCCESS) << t.reason();
    wrong += Output(t.id(), "square") != std::to_string((i + 2) * (i + 2)) + "\n";
    int by_mallory = 0;
    for (const auto& r : t.replicas()) {
      if (r.worker_id() != liar1 && r.worker_id() != liar2) continue;
      ++by_mallory;
      if (r.state() == v1::REPLICA_STATE_REPORTED) ++liar_reports;
    }
    EXPECT_LE(by_mallory, 1) << "task " << t.id() << " ran twice under one owner";
  }
  EXPECT_EQ(wrong, 0);
  ASSERT_GT(liar_reports, 0) << "the liars never reported; the test proved nothing";

  CommandResult workers = RunArtel({"workers", "--json", "--coordinator", cluster().address(),
                                    "--token", cluster().admin_token()});
  ASSERT_EQ(workers.exit_code, 0) << workers.err;
  std::map<std::string, std::string> owner;
  for (const std::string& line : Lines(workers.out)) {
    nlohmann::json w = nlohmann::json::parse(line);
    owner[w.at("name").get<std::string>()] = w.at("owner").get<std::string>();
  }
  EXPECT_EQ(owner["mallory-1"], "mallory");
  EXPECT_EQ(owner["mallory-2"], "mallory");
  EXPECT_EQ(owner["honest-a"], "alice");
  EXPECT_EQ(owner["honest-b"], "bob");
}

// Adaptive replication across real processes: three honest workers earn
// trust and then run tasks alone; a worker that corrupts every result is
// never trusted, so no canonical result is wrong. The CLI shows who is
// trusted, which results are unverified, and the credit of each owner.
TEST_F(WorkerFailure, AdaptiveReplicationRunsTrustedWorkersAloneAndNeverAcceptsALiar) {
  StartCluster();
  AddScriptApp("square", kSquareApp);
  const std::string liar = AddWorker("mallory-1", {"--inject-fault", "corrupt-results"}, "mallory");
  AddWorker("honest-a", {}, "alice");
  AddWorker("honest-b", {}, "bob");
  AddWorker("honest-c", {}, "carol");
  const std::vector<std::string> conn = {"--coordinator", cluster().address(), "--token",
                                         cluster().admin_token()};
  auto with_conn = [&](std::vector<std::string> args) {
    args.insert(args.end(), conn.begin(), conn.end());
    return args;
  };

  CommandResult refused =
      RunArtel(with_conn({"submit", "--app", "square", "--arg", "3", "--spot-check", "0.2"}));
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, ::testing::HasSubstr("add --adaptive")) << refused.err;

  constexpr int kTasks = 60;
  CommandResult submit = RunArtel(
      with_conn({"submit", "--app", "square", "--arg", "{i}", "--count", std::to_string(kTasks),
                 "--quorum", "2", "--adaptive", "--spot-check", "0.2", "--json"}));
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  std::vector<uint64_t> ids;
  for (const std::string& line : Lines(submit.out)) {
    ids.push_back(nlohmann::json::parse(line).at("id").get<uint64_t>());
  }
  ASSERT_EQ(ids.size(), static_cast<size_t>(kTasks));

  int wrong = 0, solo = 0, replicas = 0;
  for (int i = 0; i < kTasks; ++i) {
    v1::TaskInfo t = WaitDone(ids[i]);
    ASSERT_EQ(t.outcome(), v1::OUTCOME_SUCCESS) << t.reason();
    wrong += Output(t.id(), "square") != std::to_string(i * i) + "\n";
    replicas += t.replicas_size();
    if (t.solo_replica() != 0) {
      ++solo;
      for (const auto& r : t.replicas()) {
        if (r.id() == t.solo_replica()) {
          EXPECT_NE(r.worker_id(), liar) << "the liar ran alone";
        }
      }
    }
  }
  EXPECT_EQ(wrong, 0);
  // The three honest workers need 30 confirmed results to be trusted, some
  // 15 tasks; the liar's first replicas cost three each. The rest run alone.
  EXPECT_GE(solo, kTasks / 4) << replicas << " replicas";

  // `status --json` tells an unverified result from a verified one.
  int unverified = 0;
  for (uint64_t id : ids) {
    CommandResult status = RunArtel(with_conn({"status", std::to_string(id), "--json"}));
    ASSERT_EQ(status.exit_code, 0) << status.err;
    unverified += !nlohmann::json::parse(status.out).at("verified").get<bool>();
  }
  EXPECT_GT(unverified, 0);
  EXPECT_LE(unverified, solo);

  CommandResult workers = RunArtel(with_conn({"workers", "--json"}));
  ASSERT_EQ(workers.exit_code, 0) << workers.err;
  for (const std::string& line : Lines(workers.out)) {
    nlohmann::json w = nlohmann::json::parse(line);
    const std::string name = w.at("name").get<std::string>();
    if (name == "mallory-1") {
      EXPECT_TRUE(w.at("trusted").empty()) << line;
      EXPECT_GT(w.at("invalid").get<int>(), 0) << line;
      EXPECT_EQ(w.at("credit").get<double>(), 0.0) << line;
    }
  }
  CommandResult credit = RunArtel(with_conn({"credit", "--json"}));
  ASSERT_EQ(credit.exit_code, 0) << credit.err;
  std::map<std::string, double> by_owner;
  for (const std::string& line : Lines(credit.out)) {
    nlohmann::json c = nlohmann::json::parse(line);
    by_owner[c.at("owner").get<std::string>()] = c.at("credit").get<double>();
  }
  EXPECT_EQ(by_owner.count("mallory"), 1u) << credit.out;
  EXPECT_EQ(by_owner["mallory"], 0.0);
  EXPECT_GT(by_owner["alice"] + by_owner["bob"] + by_owner["carol"], 0.0) << credit.out;
}

}  // namespace
}  // namespace artel::testing
