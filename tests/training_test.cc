// Training jobs end to end: the coordinator's parameter server, artel-ml on
// sandboxed workers and the CLI, checked against single-process PyTorch
// (tests/training_reference.py), through coordinator and worker crashes.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ml/safetensors.h"
#include "training_test_util.h"

namespace artel::testing {
namespace {

std::vector<uint32_t> RoundNumbers(const v1::TrainingJob& job) {
  std::vector<uint32_t> rounds;
  for (const auto& r : job.history()) rounds.push_back(r.round());
  return rounds;
}

std::vector<uint32_t> OneTo(uint32_t n) {
  std::vector<uint32_t> v(n);
  for (uint32_t i = 0; i < n; ++i) v[i] = i + 1;
  return v;
}

// Checks the job's parameters against one single-process SGD step (lr 0.05)
// from `model`'s own parameters over rows [0, 32) of shards 0 and 1 of the
// data set in `train` (samples 0..31 and 500..531). Returns the reference's
// loss.
double ExpectOneSgdStepOnTheFirstRowsOfTwoShards(Client& client, const std::filesystem::path& dir,
                                                 const std::filesystem::path& model,
                                                 const std::filesystem::path& train,
                                                 const v1::TrainingJob& job,
                                                 const std::string& lr) {
  const auto params = dir / "params.safetensors";
  EXPECT_TRUE(client.blobs().DownloadToFile(job.params_digest(), params).ok());
  const std::string second = std::to_string(kShardSize) + ":" + std::to_string(kShardSize + 32);
  const nlohmann::json ref = ReferenceJson(RunReference(
      {"sgd-step", model.string(), train.string(), params.string(), lr, "0:32", second}));
  if (!ref.is_object()) {
    ADD_FAILURE() << "the reference did not run";
    return 0;
  }
  EXPECT_TRUE(ref["missing"].empty()) << ref.dump();
  EXPECT_TRUE(ref["extra"].empty()) << ref.dump();
  EXPECT_TRUE(ref["shape_mismatch"].empty()) << ref.dump();
  EXPECT_LT(ref["max_abs_diff"].get<double>(), 1e-5) << ref.dump();
  // The step moved some parameter by far more than the tolerance.
  EXPECT_GT(ref["step_size"].get<double>(), 1e-3) << ref.dump();
  return ref["loss"].get<double>();
}

// Writes the reference's CNN with BatchNorm2d and Dropout(`dropout`) to
// `path`; false with a test failure if it could not.
bool MakeBatchNormModel(const std::filesystem::path& path, const std::string& dropout) {
  return ReferenceJson(RunReference({"model", path.string(), "bn", dropout})).is_object();
}

// Uploads `model` and starts a job with `spec` on the data set "small";
// returns its id, 0 with a test failure on error.
uint64_t StartJobWithModel(Client& client, const std::filesystem::path& model,
                           v1::TrainingSpec spec) {
  absl::StatusOr<std::string> digest = client.blobs().UploadFile(model);
  EXPECT_TRUE(digest.ok()) << digest.status();
  if (!digest.ok()) return 0;
  spec.set_model_digest(*digest);
  spec.set_dataset("small");
  absl::StatusOr<v1::TrainingJob> job = client.StartTraining(spec);
  EXPECT_TRUE(job.ok()) << job.status();
  return job.ok() ? job->id() : 0;
}

// The tensors of the job's current params (parameters and "buffers/...").
ml::TensorMap JobParams(Client& client, const std::filesystem::path& dir,
                        const v1::TrainingJob& job) {
  const auto path = dir / ("params-" + std::to_string(job.id()) + ".safetensors");
  EXPECT_TRUE(client.blobs().DownloadToFile(job.params_digest(), path).ok());
  absl::StatusOr<ml::TensorMap> params = ml::ReadSafetensors(path);
  EXPECT_TRUE(params.ok()) << params.status();
  return params.ok() ? *params : ml::TensorMap();
}

TEST_F(TrainingTest, SyncStepEqualsSingleProcessStep) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  CommandResult train;
  const uint64_t id = TrainWithCli({"--mode", "sync", "--workers", "2", "--batch-size", "32",
                                    "--rounds", "1", "--optimizer", "sgd", "--lr", "0.05"},
                                   &train);
  ASSERT_EQ(train.exit_code, 0) << train.out << train.err;
  const v1::TrainingJob job = WaitJobDone(id);
  ASSERT_EQ(job.round(), 1u);
  ASSERT_EQ(job.history_size(), 1);
  EXPECT_EQ(job.history(0).samples(), 64u);

  // Round 1's two tasks: position p -> shard p % 4, batch (p / 4): rows
  // [0, 32) of shard 0 and of shard 1. An SGD step on 2 workers' batches
  // takes twice --lr by default (--lr-scale auto: linear for SGD).
  EXPECT_EQ(job.spec().lr_scale(), "linear");
  CommandResult shown = RunArtel({"job", "show", std::to_string(id), "--json"}, Env());
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(nlohmann::json::parse(Lines(shown.out).at(0)).at("lr_scale"), "linear") << shown.out;
  const double loss = ExpectOneSgdStepOnTheFirstRowsOfTwoShards(client(), dir(), ModelFile(),
                                                                TrainFile(), job, "0.1");
  EXPECT_NEAR(job.history(0).loss(), loss, 1e-5);
}

// With one inner SGD step per task and the outer optimizer reduced to plain
// averaging (outer lr 1, momentum 0), a local round is the sync step over the
// same 64 rows: the same single-process reference must hold.
TEST_F(TrainingTest, LocalModeWithoutOuterMomentumAveragesTheDeltas) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  CommandResult train;
  const uint64_t id =
      TrainWithCli({"--mode",        "local", "--workers",  "2", "--batch-size",     "32",
                    "--local-steps", "1",     "--rounds",   "1", "--optimizer",      "sgd",
                    "--lr",          "0.05",  "--outer-lr", "1", "--outer-momentum", "0",
                    "--lr-scale",    "none"},
                   &train);
  ASSERT_EQ(train.exit_code, 0) << train.out << train.err;
  const v1::TrainingJob job = WaitJobDone(id);
  ASSERT_EQ(job.round(), 1u);
  EXPECT_DOUBLE_EQ(job.spec().outer_lr(), 1.0);
  ASSERT_TRUE(job.spec().has_outer_momentum());
  EXPECT_EQ(job.spec().outer_momentum(), 0.0);

  // Task j starts at batch 0 of shard j: rows [0, 32) of shards 0 and 1.
  EXPECT_EQ(job.spec().lr_scale(), "none");
  ExpectOneSgdStepOnTheFirstRowsOfTwoShards(client(), dir(), ModelFile(), TrainFile(), job, "0.05");

  // The outer settings belong to local mode; elsewhere they are refused.
  CommandResult refused = RunArtel({"train", "--model", ModelFile().string(), "--data", "small",
                                    "--mode", "sync", "--outer-momentum", "0"},
                                   Env());
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--mode local only"), std::string::npos) << refused.err;
}

// A local task whose H * B samples exceed one shard trains on as many
// shards as it needs, one after another, and so sees that many distinct
// samples: with 2 steps of 300 on shards of 500, the second step takes the
// rest of shard 0 and the start of shard 1.
TEST_F(TrainingTest, LocalTaskTrainsOnAsManyShardsAsItsStepsNeed) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(1));
  const uint64_t id = TrainWithCli({"--mode", "local", "--workers", "1", "--batch-size", "300",
                                    "--local-steps", "2", "--rounds", "1", "--optimizer", "sgd",
                                    "--lr", "0.05", "--outer-lr", "1", "--outer-momentum", "0"});
  const v1::TrainingJob job = WaitJobDone(id);
  ASSERT_EQ(job.round(), 1u);
  const auto params = dir() / "params.safetensors";
  ASSERT_TRUE(client().blobs().DownloadToFile(job.params_digest(), params).ok());
  const nlohmann::json ref =
      ReferenceJson(RunReference({"sgd-steps", ModelFile().string(), TrainFile().string(),
                                  params.string(), "0.05", "0:300", "300:600"}));
  ASSERT_TRUE(ref.is_object());
  EXPECT_TRUE(ref["missing"].empty()) << ref.dump();
  EXPECT_LT(ref["max_abs_diff"].get<double>(), 1e-5) << ref.dump();
  EXPECT_GT(ref["step_size"].get<double>(), 1e-3) << ref.dump();
}

TEST_F(TrainingTest, EveryModeLowersTheLoss) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  struct Case {
    v1::TrainMode mode;
    uint32_t rounds;
    std::string inner_state = "";  // local mode only
  };
  const std::vector<Case> cases = {{v1::TRAIN_MODE_SYNC, 6},
                                   {v1::TRAIN_MODE_LOCAL, 3},
                                   {v1::TRAIN_MODE_LOCAL, 3, "carry"},
                                   {v1::TRAIN_MODE_ASYNC, 6},
                                   {v1::TRAIN_MODE_FULLBATCH, 3}};
  std::vector<uint64_t> ids;
  for (const Case& c : cases) {  // all at once: the workers stay busy
    v1::TrainingSpec spec;
    spec.set_mode(c.mode);
    spec.set_workers(2);
    spec.set_batch_size(64);
    spec.set_local_steps(c.mode == v1::TRAIN_MODE_LOCAL ? 8 : 0);
    spec.set_rounds(c.rounds);
    spec.set_eval_every(std::max<uint32_t>(1, c.rounds / 3));
    spec.set_lr(0.1);
    spec.set_optimizer("momentum");
    spec.set_inner_state(c.inner_state);
    ids.push_back(StartJob(spec));
    ASSERT_NE(ids.back(), 0u);
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    const v1::TrainingJob job = WaitJobDone(ids[i], std::chrono::seconds(120));
    SCOPED_TRACE("mode " + v1::TrainMode_Name(cases[i].mode) + " " + cases[i].inner_state);
    ASSERT_EQ(job.state(), v1::TRAINING_STATE_DONE) << job.reason();
    // Evaluated during training, not only at the end.
    int evaluated = 0;
    for (const v1::RoundRecord& r : job.history()) evaluated += r.accuracy() >= 0 ? 1 : 0;
    EXPECT_GE(evaluated, 2) << job.ShortDebugString();
    // Only a job that carries the inner optimizer's state keeps one.
    EXPECT_EQ(job.inner_state_digest().empty(), cases[i].inner_state != "carry");
    EXPECT_EQ(job.round(), cases[i].rounds);
    ASSERT_EQ(RoundNumbers(job), OneTo(cases[i].rounds));
    EXPECT_LT(job.history(job.history_size() - 1).loss(), job.history(0).loss())
        << job.ShortDebugString();
    EXPECT_GE(job.accuracy(), 0) << "the final parameters were not evaluated";
    const auto out = dir() / ("model-" + std::to_string(ids[i]) + ".pt");
    CommandResult exp =
        RunArtel({"job", "export", std::to_string(ids[i]), "--out", out.string()}, Env());
    EXPECT_EQ(exp.exit_code, 0) << exp.err;
    EXPECT_GT(std::filesystem::file_size(out), 0u);
    EXPECT_EQ(ReadFile(out).substr(0, 2), "PK") << "not a TorchScript (zip) file";
  }
}

// Replicated ML tasks are compared by the tolerance validator: a worker whose
// every result is corrupted is outvoted, and the job trains the same model as
// without replication.
TEST_F(TrainingTest, QuorumOfTwoOutvotesALyingWorkerAndTrainsTheSameModel) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  v1::TrainingSpec spec;
  spec.set_mode(v1::TRAIN_MODE_SYNC);
  spec.set_workers(2);
  spec.set_batch_size(32);
  spec.set_rounds(2);
  spec.set_eval_every(2);
  spec.set_optimizer("sgd");
  spec.set_lr(0.05);
  const uint64_t single = StartJob(spec);
  ASSERT_NE(single, 0u);
  const v1::TrainingJob plain = WaitJobDone(single);
  ASSERT_EQ(plain.state(), v1::TRAINING_STATE_DONE) << plain.reason();

  AddWorker("liar", {"--inject-fault", "corrupt-results"});
  spec.set_quorum(2);
  const uint64_t voted_id = StartJob(spec);
  ASSERT_NE(voted_id, 0u);
  const v1::TrainingJob voted = WaitJobDone(voted_id, std::chrono::seconds(180));
  ASSERT_EQ(voted.state(), v1::TRAINING_STATE_DONE) << voted.reason();
  EXPECT_EQ(voted.round(), 2u);

  absl::StatusOr<v1::ListWorkersResponse> workers = client().ListWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  uint64_t liar_invalid = 0, honest_invalid = 0;
  for (const v1::WorkerInfo& w : workers->workers()) {
    (w.name() == "liar" ? liar_invalid : honest_invalid) += w.invalid();
  }
  EXPECT_GT(liar_invalid, 0u) << "the corrupting worker was never outvoted";
  EXPECT_EQ(honest_invalid, 0u);

  v1::ListTasksRequest list;
  list.set_limit(1000);
  absl::StatusOr<v1::ListTasksResponse> tasks = client().ListTasks(list);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  ASSERT_GT(tasks->tasks_size(), 0);
  for (const v1::TaskInfo& t : tasks->tasks()) {
    EXPECT_EQ(t.spec().validator(), "tolerance") << "task " << t.id();
  }

  // The outvoted results left no trace: the parameters are those of the
  // unreplicated job.
  const auto a = dir() / "plain.safetensors", b = dir() / "voted.safetensors";
  ASSERT_TRUE(client().blobs().DownloadToFile(plain.params_digest(), a).ok());
  ASSERT_TRUE(client().blobs().DownloadToFile(voted.params_digest(), b).ok());
  absl::StatusOr<ml::TensorMap> pa = ml::ReadSafetensors(a), pb = ml::ReadSafetensors(b);
  ASSERT_TRUE(pa.ok() && pb.ok());
  ASSERT_EQ(pa->tensors.size(), pb->tensors.size());
  double worst = 0;
  for (const auto& [name, t] : pa->tensors) {
    ASSERT_TRUE(pb->tensors.contains(name)) << name;
    const ml::Tensor& u = pb->tensors.at(name);
    ASSERT_EQ(t.shape, u.shape) << name;
    for (int64_t i = 0; i < t.numel(); ++i)
      worst = std::max<double>(worst, std::abs(t.f32()[i] - u.f32()[i]));
  }
  EXPECT_LT(worst, 1e-6);
  EXPECT_NEAR(voted.accuracy(), plain.accuracy(), 1e-9);
}

// A job that reaches its target accuracy stops there, and the accuracy it
// reports (and the model it exports) is that of its final parameters.
TEST_F(TrainingTest, JobStopsAtTheTargetAccuracyWithTheMeasuredParameters) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  for (const v1::TrainMode mode : {v1::TRAIN_MODE_SYNC, v1::TRAIN_MODE_LOCAL}) {
    SCOPED_TRACE(v1::TrainMode_Name(mode));
    v1::TrainingSpec spec;
    spec.set_mode(mode);
    spec.set_workers(2);
    spec.set_batch_size(32);
    spec.set_local_steps(mode == v1::TRAIN_MODE_LOCAL ? 4 : 0);
    spec.set_optimizer("momentum");
    spec.set_lr(0.05);
    spec.set_epochs(20);
    spec.set_eval_every(1);
    spec.set_target_accuracy(0.6);
    const uint64_t id = StartJob(spec);
    ASSERT_NE(id, 0u);
    const v1::TrainingJob job = WaitJobDone(id, std::chrono::seconds(180));
    ASSERT_EQ(job.state(), v1::TRAINING_STATE_DONE) << job.reason();
    EXPECT_GE(job.accuracy(), 0.6);
    ASSERT_GT(job.history_size(), 0);
    const v1::RoundRecord& last = job.history(job.history_size() - 1);
    EXPECT_EQ(last.round(), job.round());
    EXPECT_DOUBLE_EQ(last.accuracy(), job.accuracy()) << "the final parameters were not measured";
    // It stopped at the first evaluation that met the target.
    for (int i = 0; i + 1 < job.history_size(); ++i) {
      EXPECT_LT(job.history(i).accuracy(), 0.6) << "round " << job.history(i).round();
    }
  }
}

TEST_F(TrainingTest, JobResumesAfterCoordinatorSigkill) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  constexpr uint32_t kRounds = 6;
  v1::TrainingSpec spec;
  spec.set_mode(v1::TRAIN_MODE_LOCAL);
  spec.set_workers(2);
  spec.set_batch_size(32);
  spec.set_local_steps(10);
  spec.set_rounds(kRounds);
  spec.set_eval_every(kRounds);
  const uint64_t id = StartJob(spec);
  ASSERT_NE(id, 0u);
  const std::optional<v1::TrainingJob> before = WaitJob(
      id, [](const v1::TrainingJob& j) { return j.round() >= 2; }, std::chrono::seconds(60));
  ASSERT_TRUE(before.has_value()) << "the job never reached round 2";
  ASSERT_LT(before->round(), kRounds) << "the job finished before the coordinator could be killed";
  cluster().KillCoordinator();
  ASSERT_TRUE(cluster().RestartCoordinator().ok());

  const v1::TrainingJob after = WaitJobDone(id);
  ASSERT_EQ(after.state(), v1::TRAINING_STATE_DONE) << after.reason();
  EXPECT_EQ(after.round(), kRounds);
  // Every round once, in order; the rounds committed before the kill kept.
  // The newest round seen may have been visible a few ms before it was
  // durable; if the kill fell into that gap, the restarted driver closed it
  // again from the same task results: same loss, later finish time.
  ASSERT_EQ(RoundNumbers(after), OneTo(kRounds));
  for (int i = 0; i < before->history_size(); ++i) {
    EXPECT_EQ(after.history(i).loss(), before->history(i).loss()) << "round " << i + 1;
    if (i + 1 < before->history_size()) {
      EXPECT_EQ(after.history(i).finished_at_ms(), before->history(i).finished_at_ms());
    }
  }
  EXPECT_EQ(after.samples_seen(), uint64_t{kRounds} * 2 * 32 * 10);
}

TEST_F(TrainingTest, WorkerKilledMidRoundDoesNotStopTheJob) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(3));
  v1::TrainingSpec spec;
  spec.set_mode(v1::TRAIN_MODE_LOCAL);
  spec.set_workers(3);
  spec.set_batch_size(kShardSize);  // whole-shard steps: tasks long enough to hit
  spec.set_local_steps(40);
  spec.set_rounds(2);
  spec.set_eval_every(2);
  const uint64_t id = StartJob(spec);
  ASSERT_NE(id, 0u);
  // A round task with a replica in progress on some worker.
  uint64_t task = 0;
  std::string victim;
  ASSERT_TRUE(PollUntil(
      [&] {
        absl::StatusOr<v1::TrainingJob> j = client().GetTrainingJob(id);
        if (!j.ok() || j->state() != v1::TRAINING_STATE_RUNNING) return false;
        for (uint64_t t : j->round_tasks()) {
          absl::StatusOr<v1::TaskInfo> info = client().GetTask(t);
          if (!info.ok()) continue;
          for (const auto& r : info->replicas()) {
            if (r.state() != v1::REPLICA_STATE_IN_PROGRESS) continue;
            task = t;
            victim = r.worker_id();
            return true;
          }
        }
        return false;
      },
      std::chrono::seconds(60)))
      << "no round task ever ran";
  const auto it = std::find(worker_ids_.begin(), worker_ids_.end(), victim);
  ASSERT_NE(it, worker_ids_.end()) << "unknown worker " << victim;
  cluster().worker(static_cast<size_t>(it - worker_ids_.begin())).Kill();  // SIGKILL

  const v1::TrainingJob job = WaitJobDone(id);
  ASSERT_EQ(job.state(), v1::TRAINING_STATE_DONE) << job.reason();
  EXPECT_EQ(job.round(), 2u);
  EXPECT_EQ(RoundNumbers(job), OneTo(2));
  // The killed worker's replica was lost and the task finished elsewhere.
  absl::StatusOr<v1::TaskInfo> t = client().GetTask(task);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->outcome(), v1::OUTCOME_SUCCESS);
  bool lost_on_victim = false, reported_elsewhere = false;
  for (const auto& r : t->replicas()) {
    lost_on_victim |= r.worker_id() == victim && r.state() == v1::REPLICA_STATE_LOST;
    reported_elsewhere |= r.worker_id() != victim && r.state() == v1::REPLICA_STATE_REPORTED;
  }
  EXPECT_TRUE(lost_on_victim) << t->ShortDebugString();
  EXPECT_TRUE(reported_elsewhere) << t->ShortDebugString();
}

// Pids of the processes whose command line mentions `needle`.
std::vector<pid_t> ProcessesMentioning(const std::string& needle) {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find(needle) != std::string::npos) pids.push_back(std::stoi(name));
  }
  return pids;
}

// A warm executor killed in the middle of a job costs only the task it
// held: the replica is lost and re-placed, the worker starts a new
// executor, and the job finishes every round.
TEST_F(TrainingTest, KilledExecutorCostsOnlyTheTaskInHand) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  v1::TrainingSpec spec;
  spec.set_mode(v1::TRAIN_MODE_LOCAL);
  spec.set_workers(2);
  spec.set_batch_size(kShardSize);  // whole-shard steps: tasks long enough to hit
  spec.set_local_steps(20);
  spec.set_rounds(4);
  spec.set_eval_every(4);
  const uint64_t id = StartJob(spec);
  ASSERT_NE(id, 0u);
  const std::string executors = (cluster().root() / "w0" / "executors").string();
  ASSERT_TRUE(PollUntil(
      [&] {
        absl::StatusOr<v1::TrainingJob> j = client().GetTrainingJob(id);
        return j.ok() && j->round() >= 1 && !ProcessesMentioning(executors).empty();
      },
      std::chrono::seconds(60)))
      << "w0 never ran a warm executor";
  for (pid_t pid : ProcessesMentioning(executors)) ::kill(pid, SIGKILL);

  const v1::TrainingJob job = WaitJobDone(id);
  ASSERT_EQ(job.state(), v1::TRAINING_STATE_DONE) << job.reason();
  EXPECT_EQ(RoundNumbers(job), OneTo(4));
  EXPECT_GT(job.compute_ms(), 0u);
  EXPECT_GT(job.compute_utilization(), 0);
  EXPECT_LE(job.compute_utilization(), 1.0);
}

TEST_F(TrainingTest, ExportedModelLoadsInPyTorchAndMatchesReportedAccuracy) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  CommandResult train;
  const uint64_t id = TrainWithCli({"--mode", "local", "--workers", "2", "--batch-size", "32",
                                    "--local-steps", "10", "--rounds", "2", "--eval-every", "2"},
                                   &train);
  ASSERT_EQ(train.exit_code, 0) << train.out << train.err;
  const v1::TrainingJob job = WaitJobDone(id);
  ASSERT_GE(job.accuracy(), 0) << "the job reported no test accuracy";
  EXPECT_EQ(job.history(job.history_size() - 1).accuracy(), job.accuracy());

  const auto model = dir() / "m.pt";
  CommandResult exp =
      RunArtel({"job", "export", std::to_string(id), "--out", model.string()}, Env());
  ASSERT_EQ(exp.exit_code, 0) << exp.err;
  const nlohmann::json ref =
      ReferenceJson(RunReference({"eval", model.string(), TestFile().string()}));
  ASSERT_TRUE(ref.is_object());
  EXPECT_EQ(ref["samples"].get<int>(), kTestSamples);
  EXPECT_NEAR(ref["accuracy"].get<double>(), job.accuracy(), 1e-6) << ref.dump();
}

TEST_F(TrainingTest, LocalModeAcceptsASmallLearningRate) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  v1::TrainingSpec spec;
  spec.set_mode(v1::TRAIN_MODE_LOCAL);
  spec.set_workers(2);
  spec.set_batch_size(32);
  spec.set_local_steps(2);
  spec.set_rounds(1);
  spec.set_lr(1e-7);
  spec.set_optimizer("adam");
  const uint64_t id = StartJob(spec);
  ASSERT_NE(id, 0u);
  const v1::TrainingJob job = WaitJobDone(id);
  EXPECT_EQ(job.state(), v1::TRAINING_STATE_DONE) << job.reason();
}

TEST_F(TrainingTest, MalformedInputsAreRejected) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(1));
  // Not a zip archive: the CLI refuses before uploading anything.
  const auto text = dir() / "notes.pt";
  WriteFile(text, "this is not a model\n");
  CommandResult refused = RunArtel({"train", "--model", text.string(), "--data", "small"}, Env());
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find(text.string()), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("TorchScript"), std::string::npos) << refused.err;
  absl::StatusOr<v1::ListTrainingJobsResponse> jobs = client().ListTrainingJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->jobs_size(), 0);

  // Robust aggregation flags: a rule the coordinator does not know, or a
  // radius without centered-clip, are refused before any job exists.
  CommandResult rule = RunArtel(
      {"train", "--model", ModelFile().string(), "--data", "small", "--aggregate", "krum"}, Env());
  EXPECT_NE(rule.exit_code, 0) << rule.err;
  EXPECT_NE(rule.err.find("--aggregate"), std::string::npos) << rule.err;
  v1::TrainingSpec radius_only;
  radius_only.set_model_digest(*client().blobs().UploadFile(ModelFile()));
  radius_only.set_dataset("small");
  radius_only.set_clip_radius(1.0);
  absl::StatusOr<v1::TrainingJob> refused_radius = client().StartTraining(radius_only);
  EXPECT_EQ(refused_radius.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused_radius.status().message().find("centered-clip"), std::string::npos)
      << refused_radius.status();
  jobs = client().ListTrainingJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->jobs_size(), 0);

  // A zip archive that is not TorchScript: the job fails reading the model.
  const auto zip = dir() / "fake.pt";
  WriteFile(zip, std::string("PK\x03\x04", 4) + std::string(200, 'x'));
  CommandResult failed = RunArtel(
      {"train", "--model", zip.string(), "--data", "small", "--rounds", "1", "--json"}, Env());
  EXPECT_EQ(failed.exit_code, 1) << failed.out << failed.err;
  jobs = client().ListTrainingJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->jobs_size(), 1);
  const v1::TrainingJob& job = jobs->jobs(0);
  EXPECT_EQ(job.state(), v1::TRAINING_STATE_FAILED);
  EXPECT_NE(job.reason().find("model"), std::string::npos) << job.reason();
  EXPECT_NE(job.reason().find("TorchScript"), std::string::npos) << job.reason();
  EXPECT_NE((failed.out + failed.err).find("TorchScript"), std::string::npos)
      << "the CLI did not show why the job failed:\n"
      << failed.out << failed.err;

  // Data files that are not safetensors, or lack "y": refused, not registered.
  const auto garbage = dir() / "garbage.safetensors";
  WriteFile(garbage, std::string("\xff\xff\xff\xff\x00\x00\x00\x00{", 9));
  ml::TensorMap no_labels;
  no_labels.tensors["x"] = ml::Tensor::F32({2, 1}, {0.5f, 0.25f});
  const auto unlabeled = dir() / "unlabeled.safetensors";
  WriteFile(unlabeled, ml::SerializeSafetensors(no_labels));
  for (const auto& file : {garbage, unlabeled}) {
    CommandResult add = RunArtel({"data", "add", "bad", "--safetensors", file.string()}, Env());
    EXPECT_NE(add.exit_code, 0) << file;
    EXPECT_NE(add.err.find(file.string()), std::string::npos) << add.err;
  }
  absl::StatusOr<v1::ListDatasetsResponse> sets = client().ListDatasets();
  ASSERT_TRUE(sets.ok());
  EXPECT_EQ(sets->datasets_size(), 1) << "a malformed data set was registered";

  // A learning-rate scaling where each step uses one task's batch: refused.
  CommandResult async = RunArtel({"train", "--model", ModelFile().string(), "--data", "small",
                                  "--mode", "async", "--lr-scale", "sqrt"},
                                 Env());
  EXPECT_EQ(async.exit_code, 2) << async.out << async.err;
  EXPECT_NE(async.err.find("--lr-scale none"), std::string::npos) << async.err;
}

// A synchronous step of a BatchNorm model is W workers' passes, each with the
// batch statistics of its own batch, then averaged gradients (one SGD step)
// and averaged buffers: the reference takes the same per-worker batches in
// one process. Dropout is off (p = 0) so that the reference draws no random
// numbers. Tolerance: 1e-5 absolute for parameters and running statistics
// (float rounding of the averages), exact for num_batches_tracked.
TEST_F(TrainingTest, SyncStepOfABatchNormModelAveragesGradientsAndBuffers) {
  const auto model = dir() / "bn.pt";
  ASSERT_TRUE(MakeBatchNormModel(model, "0"));
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  v1::TrainingSpec spec;
  spec.set_mode(v1::TRAIN_MODE_SYNC);
  spec.set_workers(2);
  spec.set_batch_size(32);
  spec.set_rounds(1);
  spec.set_optimizer("sgd");
  spec.set_lr(0.05);
  spec.set_lr_scale("none");
  const uint64_t id = StartJobWithModel(client(), model, spec);
  ASSERT_NE(id, 0u);
  const v1::TrainingJob job = WaitJobDone(id);
  ASSERT_EQ(job.state(), v1::TRAINING_STATE_DONE) << job.reason();
  ASSERT_EQ(job.history_size(), 1);

  // Round 1's two tasks: rows [0, 32) of shard 0 and of shard 1.
  const auto params = dir() / "params.safetensors";
  ASSERT_TRUE(client().blobs().DownloadToFile(job.params_digest(), params).ok());
  const std::string second = std::to_string(kShardSize) + ":" + std::to_string(kShardSize + 32);
  const nlohmann::json ref =
      ReferenceJson(RunReference({"sync-step", model.string(), TrainFile().string(),
                                  params.string(), "0.05", "0:32", second}));
  ASSERT_TRUE(ref.is_object());
  EXPECT_TRUE(ref["missing"].empty()) << ref.dump();
  EXPECT_TRUE(ref["extra"].empty()) << ref.dump();
  EXPECT_TRUE(ref["shape_mismatch"].empty()) << ref.dump();
  EXPECT_LT(ref["max_abs_diff"].get<double>(), 1e-5) << ref.dump();
  EXPECT_LT(ref["buffer_max_abs_diff"].get<double>(), 1e-5) << ref.dump();
  EXPECT_TRUE(ref["integer_buffer_mismatch"].empty()) << ref.dump();
  EXPECT_EQ(ref["integer_buffers"]["buffers/bn1.num_batches_tracked"], 1) << ref.dump();
  // The step moved parameters and running statistics by far more than the
  // tolerance.
  EXPECT_GT(ref["step_size"].get<double>(), 1e-3) << ref.dump();
  EXPECT_GT(ref["buffer_step"].get<double>(), 1e-3) << ref.dump();
  EXPECT_NEAR(job.history(0).loss(), ref["loss"].get<double>(), 1e-5);
}

// A model with BatchNorm2d and Dropout trains in every mode: its buffers
// travel with the parameters (num_batches_tracked counts every forward pass
// the job kept), and the exported model, loaded in PyTorch, measures exactly
// the accuracy the job reported. The sync job runs with quorum 2: replicas of
// a grad task draw the same dropout masks and agree.
TEST_F(TrainingTest, BatchNormModelTrainsInEveryModeAndExportsWhatItMeasured) {
  const auto model = dir() / "bn.pt";
  ASSERT_TRUE(MakeBatchNormModel(model, "0.25"));
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  struct Case {
    v1::TrainMode mode;
    uint32_t rounds;
    int64_t min_batches, max_batches;  // num_batches_tracked at the end
  };
  const std::vector<Case> cases = {
      {v1::TRAIN_MODE_SYNC, 4, 4, 4},        // one forward pass per round
      {v1::TRAIN_MODE_LOCAL, 2, 10, 10},     // 5 steps per round
      {v1::TRAIN_MODE_ASYNC, 8, 1, 8},       // one more than its task's base
      {v1::TRAIN_MODE_FULLBATCH, 2, 4, 4}};  // 500 rows in micro-batches of 256
  std::vector<uint64_t> ids;
  for (const Case& c : cases) {  // all at once: the workers stay busy
    v1::TrainingSpec spec;
    spec.set_mode(c.mode);
    spec.set_workers(2);
    spec.set_batch_size(64);
    spec.set_local_steps(c.mode == v1::TRAIN_MODE_LOCAL ? 5 : 0);
    spec.set_rounds(c.rounds);
    spec.set_eval_every(c.rounds);
    // Stale gradients with momentum make this small batch-norm model
    // diverge (as in a single process): async takes plain, slower steps.
    spec.set_optimizer(c.mode == v1::TRAIN_MODE_ASYNC ? "sgd" : "momentum");
    spec.set_lr(c.mode == v1::TRAIN_MODE_ASYNC ? 0.02 : 0.05);
    if (c.mode == v1::TRAIN_MODE_SYNC) spec.set_quorum(2);
    ids.push_back(StartJobWithModel(client(), model, spec));
    ASSERT_NE(ids.back(), 0u);
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("mode " + v1::TrainMode_Name(cases[i].mode));
    const v1::TrainingJob job = WaitJobDone(ids[i], std::chrono::seconds(180));
    ASSERT_EQ(job.state(), v1::TRAINING_STATE_DONE) << job.reason();
    EXPECT_EQ(job.round(), cases[i].rounds);
    ASSERT_GE(job.accuracy(), 0) << "the final parameters were not evaluated";
    // Twice chance (0.1) after a few rounds on 2000 samples; the point is
    // what follows.
    EXPECT_GT(job.accuracy(), 0.2) << job.ShortDebugString();

    const ml::TensorMap params = JobParams(client(), dir(), job);
    ASSERT_TRUE(params.tensors.contains("buffers/bn1.num_batches_tracked"));
    const ml::Tensor& batches = params.tensors.at("buffers/bn1.num_batches_tracked");
    ASSERT_EQ(batches.dtype, ml::DType::kI64);
    const int64_t n = *reinterpret_cast<const int64_t*>(batches.data.data());
    EXPECT_GE(n, cases[i].min_batches);
    EXPECT_LE(n, cases[i].max_batches);
    const ml::Tensor& var = params.tensors.at("buffers/bn1.running_var");
    ASSERT_EQ(var.dtype, ml::DType::kF32);
    EXPECT_NE(std::vector<float>(var.f32(), var.f32() + var.numel()),
              std::vector<float>(var.numel(), 1.f))
        << "the running variance never left its initial value";

    const auto out = dir() / ("bn-" + std::to_string(ids[i]) + ".pt");
    CommandResult exp =
        RunArtel({"job", "export", std::to_string(ids[i]), "--out", out.string()}, Env());
    ASSERT_EQ(exp.exit_code, 0) << exp.err;
    const nlohmann::json ref =
        ReferenceJson(RunReference({"eval", out.string(), TestFile().string()}));
    ASSERT_TRUE(ref.is_object());
    EXPECT_EQ(ref["samples"].get<int>(), kTestSamples);
    EXPECT_NEAR(ref["accuracy"].get<double>(), job.accuracy(), 1e-6) << ref.dump();
  }
  // The quorum-2 sync job's replicas agreed: no worker was outvoted.
  absl::StatusOr<v1::ListWorkersResponse> workers = client().ListWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  for (const v1::WorkerInfo& w : workers->workers()) EXPECT_EQ(w.invalid(), 0u) << w.name();
}

// One attacker among three workers sends its gradients times -20. With
// the mean the job climbs the loss; with centered-clip it trains, and the
// attacker is excluded after three rounds far from the aggregate.
TEST_F(TrainingTest, CenteredClipTrainsDespiteAnAttackerAndExcludesIt) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  AddWorker("attacker", {"--inject-fault", "scale:-20"});
  v1::TrainingSpec spec;
  spec.set_mode(v1::TRAIN_MODE_SYNC);
  spec.set_workers(3);
  spec.set_batch_size(32);
  spec.set_rounds(8);
  spec.set_eval_every(8);
  spec.set_optimizer("sgd");
  spec.set_lr(0.05);
  spec.set_lr_scale("none");
  spec.set_aggregate("centered-clip");
  const uint64_t clipped_id = StartJob(spec);
  ASSERT_NE(clipped_id, 0u);
  const v1::TrainingJob clipped = WaitJobDone(clipped_id, std::chrono::seconds(180));
  ASSERT_EQ(clipped.state(), v1::TRAINING_STATE_DONE) << clipped.reason();
  ASSERT_EQ(clipped.history_size(), 8);
  EXPECT_LT(clipped.history(7).loss(), clipped.history(0).loss())
      << "centered-clip did not lower the loss";

  absl::StatusOr<v1::ListWorkersResponse> workers = client().ListWorkers();
  ASSERT_TRUE(workers.ok());
  std::string attacker;
  for (const v1::WorkerInfo& w : workers->workers()) {
    if (w.name() == "attacker") attacker = w.id();
  }
  ASSERT_EQ(clipped.excluded_size(), 1) << "the attacker was not excluded";
  EXPECT_EQ(clipped.excluded(0).worker_id(), attacker);
  EXPECT_NE(clipped.excluded(0).reason().find("3 rounds in a row"), std::string::npos)
      << clipped.excluded(0).reason();
  CommandResult show = RunArtel({"job", "show", std::to_string(clipped_id)}, Env());
  EXPECT_NE(show.out.find("excluded:  worker " + attacker), std::string::npos) << show.out;

  spec.set_aggregate("mean");
  const uint64_t mean_id = StartJob(spec);
  ASSERT_NE(mean_id, 0u);
  const v1::TrainingJob mean = WaitJobDone(mean_id, std::chrono::seconds(180));
  ASSERT_EQ(mean.state(), v1::TRAINING_STATE_DONE) << mean.reason();
  EXPECT_EQ(mean.excluded_size(), 0) << "mean has no defence to exclude anyone with";
  EXPECT_GT(clipped.accuracy(), mean.accuracy() + 0.1)
      << "centered-clip " << clipped.accuracy() << " vs mean " << mean.accuracy();
  std::cout << "accuracy after 8 rounds with one attacker: centered-clip " << clipped.accuracy()
            << ", mean " << mean.accuracy() << "; loss " << clipped.history(0).loss() << " -> "
            << clipped.history(7).loss() << " vs " << mean.history(7).loss() << std::endl;
}

// async applies one update at a time: a robust rule clips each update's
// norm to twice the recent median, so an attacker sending its gradients
// times -20 is clipped every time and excluded after three, and training
// goes on.
TEST_F(TrainingTest, AsyncClipsOversizedUpdatesAndExcludesTheirWorker) {
  ASSERT_NO_FATAL_FAILURE(StartTrainingCluster(2));
  v1::TrainingSpec spec;
  spec.set_mode(v1::TRAIN_MODE_ASYNC);
  spec.set_workers(3);
  spec.set_batch_size(32);
  spec.set_rounds(200);
  spec.set_eval_every(200);
  spec.set_optimizer("sgd");
  spec.set_lr(0.05);
  spec.set_aggregate("median");
  const uint64_t id = StartJob(spec);
  ASSERT_NE(id, 0u);
  // The attacker joins once the window of recent norms is warm (its first
  // updates would otherwise set the scale; docs/ARCHITECTURE.md).
  ASSERT_TRUE(
      WaitJob(
          id, [](const v1::TrainingJob& j) { return j.round() >= 5; }, std::chrono::seconds(60))
          .has_value());
  AddWorker("attacker", {"--inject-fault", "scale:-20"});
  const v1::TrainingJob job = WaitJobDone(id, std::chrono::seconds(180));
  ASSERT_EQ(job.state(), v1::TRAINING_STATE_DONE) << job.reason();
  ASSERT_EQ(job.excluded_size(), 1) << "the attacker was not excluded";
  EXPECT_NE(job.excluded(0).reason().find("clipped"), std::string::npos)
      << job.excluded(0).reason();
  EXPECT_LE(job.recent_norms_size(), 20);
  const int n = job.history_size();
  ASSERT_GE(n, 10);
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) {
    first += job.history(i).loss();
    last += job.history(n - 1 - i).loss();
  }
  EXPECT_LT(last, first) << "the loss of the last 5 updates is not below that of the first 5";
}

}  // namespace
}  // namespace artel::testing
