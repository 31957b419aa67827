// The promise under real crashes: workers killed with SIGKILL mid-task,
// checkpoints resumed on another worker, the coordinator killed and
// restarted mid-batch, and a worker that lies outvoted by a quorum.
#include <nlohmann/json.hpp>

#include <map>
#include <set>

#include "cluster_test_util.h"

namespace artel::testing {
namespace {

// About 3 s of work, then a fixed answer.
constexpr char kSlowApp[] = R"(#!/bin/sh
i=0
while [ $i -lt 15 ]; do sleep 0.2; i=$((i+1)); done
echo "slept $i times"
)";

// Counts from the checkpointed value (or 0) to 30, saving each step, and
// reports where it started and every number it computed itself.
constexpr char kCountingApp[] = R"(#!/bin/sh
set -e
n=0
if [ -f "$ARTEL_CHECKPOINT_DIR/n" ]; then n=$(cat "$ARTEL_CHECKPOINT_DIR/n"); fi
echo "$n" > "$ARTEL_OUTPUT_DIR/start"
computed=""
while [ "$n" -lt 30 ]; do
  n=$((n+1))
  computed="$computed $n"
  echo "$n" > "$ARTEL_CHECKPOINT_DIR/n.tmp"
  mv "$ARTEL_CHECKPOINT_DIR/n.tmp" "$ARTEL_CHECKPOINT_DIR/n"
  sleep 0.1
done
echo "$n" > "$ARTEL_OUTPUT_DIR/final"
echo "computed:$computed"
)";

// A short deterministic task: its answer depends only on its argument.
constexpr char kSquareApp[] = R"(#!/bin/sh
sleep 0.2
echo $(($1 * $1)) > "$ARTEL_OUTPUT_DIR/square"
)";

bool HasReplicaIn(const v1::TaskInfo& t, v1::ReplicaState state) {
  for (const auto& r : t.replicas()) {
    if (r.state() == state) return true;
  }
  return false;
}

class FaultTolerance : public ClusterTest {};

TEST_F(FaultTolerance, WorkerKilledMidTaskIsReplacedByAnotherWorker) {
  StartCluster();
  AddScriptApp("slow", kSlowApp);
  const std::string a = AddWorker("a");
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(OneTask("slow"));
  ASSERT_TRUE(resp.ok()) << resp.status();
  const uint64_t id = resp->task_ids(0);
  ASSERT_TRUE(WaitTask(id, [](const auto& t) { return HasReplicaIn(t, v1::REPLICA_STATE_IN_PROGRESS); },
                       std::chrono::seconds(20)))
      << "no replica started on worker a";
  cluster().worker(0).Kill();  // SIGKILL
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

TEST_F(FaultTolerance, CheckpointResumesOnAnotherWorker) {
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

TEST_F(FaultTolerance, CoordinatorKilledAndRestartedMidBatchFinishesEveryTask) {
  StartCluster();
  AddScriptApp("square", kSquareApp);
  AddWorker("a");
  AddWorker("b");
  constexpr int kTasks = 40;
  v1::SubmitRequest req;
  for (int i = 0; i < kTasks; ++i) {
    v1::TaskSpec* t = req.add_tasks();
    t->set_app("square");
    t->add_args(std::to_string(i));
    // Bounds the wait for a replica whose assignment died with the process.
    t->mutable_policy()->set_lease_ms(3000);
  }
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  const uint64_t job = resp->job_id();
  ASSERT_TRUE(PollUntil(
      [&] {
        absl::StatusOr<v1::JobStatus> j = client().GetJob(job);
        return j.ok() && j->done() >= 4;
      },
      std::chrono::seconds(30)));
  absl::StatusOr<v1::JobStatus> before = client().GetJob(job);
  ASSERT_TRUE(before.ok());
  ASSERT_LT(before->done(), static_cast<uint32_t>(kTasks)) << "the batch ended before the kill";

  cluster().KillCoordinator();  // SIGKILL
  absl::Status restarted = cluster().RestartCoordinator();
  ASSERT_TRUE(restarted.ok()) << restarted;

  ASSERT_TRUE(PollUntil(
      [&] {
        absl::StatusOr<v1::JobStatus> j = client().GetJob(job);
        return j.ok() && j->done() == static_cast<uint32_t>(kTasks);
      },
      std::chrono::seconds(60)))
      << "the batch did not finish after the restart";
  absl::StatusOr<v1::JobStatus> j = client().GetJob(job);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->success(), static_cast<uint32_t>(kTasks));
  EXPECT_EQ(j->pending() + j->running() + j->app_error() + j->system_error(), 0u);
  for (int i = 0; i < kTasks; ++i) {
    absl::StatusOr<v1::TaskInfo> t = client().GetTask(resp->task_ids(i));
    ASSERT_TRUE(t.ok()) << "acknowledged task " << resp->task_ids(i) << " was lost: " << t.status();
    EXPECT_EQ(t->outcome(), v1::OUTCOME_SUCCESS) << t->reason();
    int valid = 0;
    for (const auto& r : t->replicas()) valid += r.validity() == v1::VALIDITY_VALID;
    EXPECT_GE(valid, 1);
    EXPECT_LE(valid, t->replicas_size());
    EXPECT_EQ(Output(t->id(), "square"), std::to_string(i * i) + "\n");
  }
  absl::StatusOr<v1::ListTasksResponse> all = client().ListTasks({});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->tasks_size(), kTasks);
  // Successes counted on the workers never exceed the replicas that exist.
  uint64_t replicas = 0, completed = 0;
  for (const auto& task : all->tasks()) {
    absl::StatusOr<v1::TaskInfo> t = client().GetTask(task.id());
    ASSERT_TRUE(t.ok());
    replicas += t->replicas_size();
  }
  absl::StatusOr<v1::ListWorkersResponse> workers = client().ListWorkers();
  ASSERT_TRUE(workers.ok());
  for (const auto& w : workers->workers()) completed += w.completed();
  EXPECT_LE(completed, replicas);
  EXPECT_GE(completed, static_cast<uint64_t>(kTasks));
}

TEST_F(FaultTolerance, CorruptingWorkerIsOutvotedByHonestQuorum) {
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

}  // namespace
}  // namespace artel::testing
