// The parameter server of training jobs: moves every running TrainingJob
// forward, one durable step at a time.
//
// A job's record (params and optimizer state as blob digests, round, the
// tasks in flight, history) is committed through the Coordinator after
// every step, so a coordinator killed at any instant resumes the job from
// its last committed round; a lost worker only costs its task's replica,
// which the task platform re-places. All tensor math is plain C++ (src/ml);
// the coordinator never links libtorch: workers run the ML app.
//
// Steps per mode (W = spec.workers):
//   sync      W grad tasks on consecutive mini-batches (+ spec.backup extra);
//             the round closes on the first W; averaged gradient -> optimizer.
//   local     W tasks of H local steps each; averaged parameter delta is a
//             pseudo-gradient for an outer Nesterov optimizer (DiLoCo).
//   async     W grad tasks in flight; each update applies as it arrives if
//             at most max_staleness rounds old, else it is refused.
//   fullbatch one grad task per shard over the whole shard; one step per
//             epoch (the baseline the other modes must beat).
// Test accuracy is measured by eval tasks on the test shards; they are side
// tasks that run beside training and never hold up a round. Every task of a
// job names the executor key "train-<job id>", so each worker keeps one
// warm artel-ml process for the job (docs/EXECUTORS.md). The driver wakes
// whenever a task changes state.
//
// Thread-compatible: Run() owns one thread; Step() is for tests.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/coordinator.h"
#include "ml/safetensors.h"

namespace artel {

class TrainingDriver {
 public:
  // `coordinator` must outlive the driver.
  explicit TrainingDriver(Coordinator& coordinator) : coordinator_(coordinator) {}
  ~TrainingDriver() { Stop(); }

  // Starts a thread that calls Step() every `interval_ms`.
  void Start(uint64_t interval_ms = 50);
  void Stop();
  // Advances every unfinished job as far as it can without waiting.
  void Step();

 private:
  // Each returns the error that fails the job (its reason), or OK.
  absl::Status Advance(v1::TrainingJob& job);
  absl::Status AdvanceInit(v1::TrainingJob& job);
  absl::Status AdvanceRound(v1::TrainingJob& job, const v1::Dataset& data);
  absl::Status AdvanceEval(v1::TrainingJob& job);
  absl::Status AdvanceExport(v1::TrainingJob& job);
  absl::Status StartRound(v1::TrainingJob& job, const v1::Dataset& data);
  absl::Status StartEval(v1::TrainingJob& job, const v1::Dataset& data);
  // Applies the averaged updates of finished tasks and closes the round.
  absl::Status CloseRound(v1::TrainingJob& job, const std::vector<v1::TaskInfo>& done);
  // Combines a round's updates by the job's rule (TrainingSpec.aggregate);
  // with a robust rule, tracks how far each worker's update lay from the
  // result and excludes a worker after kExcludeAfter far rounds in a row.
  // Far updates get weight 0 in `weights` (so their buffers do not count).
  absl::StatusOr<ml::TensorMap> Aggregate(v1::TrainingJob& job,
                                          const std::vector<const ml::TensorMap*>& parts,
                                          std::vector<double>& weights,
                                          const std::vector<std::string>& workers);
  // CloseRound, measuring the coordinator's own time and the tasks' compute
  // time into the job and the round's record.
  absl::Status TimedCloseRound(v1::TrainingJob& job, const std::vector<v1::TaskInfo>& done);
  // Local mode: the weighted average of the `done` tasks' state.safetensors
  // (their inner optimizer states), stored as a blob; returns its digest and
  // adds the state bytes moved down and up to `bytes`.
  absl::StatusOr<std::string> AverageInnerState(const v1::TrainingJob& job,
                                                const std::vector<v1::TaskInfo>& done,
                                                const std::vector<double>& weights,
                                                uint64_t& bytes);
  bool Finished(const v1::TrainingJob& job, const v1::Dataset& data) const;
  // Puts the job back to the round its last evaluation measured (params,
  // round, history, samples seen).
  void RollBackTo(v1::TrainingJob& job, const v1::Dataset& data);

  // Submits one task the first time, then returns it once it succeeded
  // (nullopt while it runs; the job's error if it failed).
  absl::StatusOr<std::optional<v1::TaskInfo>> RunSingleTask(
      v1::TrainingJob& job, std::vector<std::string> args, const std::vector<v1::InputFile>& inputs,
      const std::string& what);
  // `side`: a side task (Resources.side) that runs beside training.
  absl::StatusOr<uint64_t> SubmitMlTask(const v1::TrainingJob& job, std::vector<std::string> args,
                                        const std::vector<v1::InputFile>& inputs,
                                        bool side = false);
  absl::StatusOr<std::string> ReadOutput(const v1::TaskInfo& task, const std::string& name) const;
  // The job's error for a failed task: its reason and the tail of its stderr.
  absl::Status Failure(const v1::TaskInfo& task, const std::string& what) const;
  absl::StatusOr<std::string> ReadOutputBlob(const std::string& digest) const;
  std::string OutputDigest(const v1::TaskInfo& task, const std::string& name) const;

  Coordinator& coordinator_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace artel
