// The coordinator killed with SIGKILL and restarted on the same data: nothing
// acknowledged is lost, and work in flight finishes without a manual step.
#include <sys/wait.h>

#include <nlohmann/json.hpp>
#include <set>

#include "cluster_test_util.h"
#include "test_apps.h"

namespace artel::testing {
namespace {

// True once child `pid` has exited (without reaping it).
bool HasExited(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == pid;
}

class CoordinatorRestart : public ClusterTest {};

TEST_F(CoordinatorRestart, CheckpointSurvivesCoordinatorAndWorkerCrash) {
  StartCluster();
  AddScriptApp("count", kCountingApp);
  AddWorker("a");
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(OneTask("count"));
  ASSERT_TRUE(resp.ok()) << resp.status();
  const uint64_t id = resp->task_ids(0);
  ASSERT_TRUE(WaitTask(
      id,
      [](const v1::TaskInfo& t) {
        return t.replicas_size() > 0 && !t.replicas(0).checkpoint_digest().empty();
      },
      std::chrono::seconds(20)));
  // Both crash: the coordinator first, then the worker while it is down.
  cluster().KillCoordinator();
  cluster().worker(0).Kill();
  absl::Status restarted = cluster().RestartCoordinator();
  ASSERT_TRUE(restarted.ok()) << restarted;
  AddWorker("b");

  v1::TaskInfo t = WaitDone(id);
  ASSERT_EQ(t.outcome(), v1::OUTCOME_SUCCESS) << t.reason();
  ASSERT_EQ(t.replicas_size(), 2);
  EXPECT_EQ(t.replicas(0).state(), v1::REPLICA_STATE_LOST);
  EXPECT_FALSE(t.resume_checkpoint().empty());
  EXPECT_GT(std::stoi(Output(id, "start")), 0) << "the checkpoint was lost with the coordinator";
  EXPECT_EQ(Output(id, "final"), "30\n");
}

TEST_F(CoordinatorRestart, KilledMidBatchFinishesEveryAcknowledgedTask) {
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

  // A researcher's `artel wait` rides through the restart.
  std::vector<std::string> wait_argv = {ArtelBinary().string(),
                                        "wait",
                                        "--json",
                                        "--timeout",
                                        "90s",
                                        "--coordinator",
                                        cluster().address(),
                                        "--token",
                                        cluster().admin_token()};
  for (uint64_t id : resp->task_ids()) wait_argv.push_back(std::to_string(id));
  const auto wait_log = dir() / "wait.out";
  absl::StatusOr<Subprocess> waiter = Subprocess::Start(wait_argv, wait_log);
  ASSERT_TRUE(waiter.ok()) << waiter.status();

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

  ASSERT_TRUE(PollUntil([&] { return HasExited(waiter->pid()); }, std::chrono::seconds(30)))
      << "artel wait did not return after the batch finished";
  EXPECT_EQ(waiter->Wait(), 0) << ReadFile(wait_log);
  std::set<std::string> finished;
  for (const std::string& line : Lines(ReadFile(wait_log))) {
    nlohmann::json e = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (e.is_discarded()) continue;  // a log line
    EXPECT_EQ(e.at("outcome"), "success") << line;
    finished.insert(std::to_string(e.at("id").get<uint64_t>()));
  }
  EXPECT_EQ(finished.size(), static_cast<size_t>(kTasks)) << ReadFile(wait_log);
}

}  // namespace
}  // namespace artel::testing
