#include "coordinator/training_driver.h"

#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "ml/aggregate.h"
#include "ml/buffers.h"
#include "ml/compress.h"
#include "ml/optimizer.h"
#include "ml/safetensors.h"

namespace artel {
namespace {

constexpr uint64_t kMlTaskMemory = 2ull << 30;  // libtorch maps ~1 GiB of address space

v1::InputFile Input(const std::string& name, const std::string& digest) {
  v1::InputFile f;
  f.set_name(name);
  f.set_digest(digest);
  return f;
}

// The worker whose result a finished task accepted ("" if unknown).
std::string WorkerOf(const v1::TaskInfo& t) {
  for (const v1::ReplicaInfo& r : t.replicas()) {
    if (r.id() == t.canonical_replica()) return r.worker_id();
  }
  return "";
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

constexpr uint32_t kExcludeAfter = 3;    // rounds in a row far from the aggregate
constexpr double kFarFactor = 2.0;       // "far": beyond this x the median distance
constexpr size_t kAsyncNormWindow = 20;  // async: norms remembered
constexpr size_t kAsyncNormMinimum = 3;  // async: norms needed before clipping

double MetaNumber(const ml::TensorMap& m, const std::string& key, double fallback = 0) {
  auto it = m.metadata.find(key);
  if (it == m.metadata.end()) return fallback;
  try {
    return std::stod(it->second);
  } catch (const std::exception&) {
    return fallback;
  }
}

bool Succeeded(const v1::TaskInfo& t) {
  return t.state() == v1::TASK_STATE_DONE && t.outcome() == v1::OUTCOME_SUCCESS;
}

// --lr grown with the workers whose batches one step covers, as
// spec.lr_scale says (proto: TrainingSpec.lr_scale).
double ScaledLr(const v1::TrainingSpec& spec) {
  const double w = std::max<double>(1, spec.workers());
  if (spec.lr_scale() == "sqrt") return spec.lr() * std::sqrt(w);
  if (spec.lr_scale() == "linear") return spec.lr() * w;
  return spec.lr();
}

ml::OptimizerConfig InnerConfig(const v1::TrainingSpec& spec) {
  ml::OptimizerConfig c;
  c.kind = spec.optimizer();
  c.lr = ScaledLr(spec);
  return c;
}

// The optimizer the coordinator applies: the job's, or DiLoCo's outer one
// (Nesterov momentum; plain SGD, i.e. scaled averaging, at momentum 0). Jobs
// stored before the outer settings existed get DiLoCo's 0.7 and 0.9.
ml::OptimizerConfig ServerConfig(const v1::TrainingSpec& spec) {
  if (spec.mode() != v1::TRAIN_MODE_LOCAL) return InnerConfig(spec);
  ml::OptimizerConfig c;
  c.lr = spec.outer_lr() > 0 ? spec.outer_lr() : 0.7;
  c.momentum = spec.has_outer_momentum() ? spec.outer_momentum() : 0.9;
  c.kind = c.momentum > 0 ? "nesterov" : "sgd";
  return c;
}

// Every digit of `v`, so that small learning rates such as 1e-7 survive.
std::string FullPrecision(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string Tail(const std::string& s, size_t n) {
  return s.size() <= n ? s : s.substr(s.size() - n);
}

// Compute time of a task's replicas whose results were used (the agreeing
// class): the app's own measure where it gave one, else the run time.
uint64_t UsedComputeMs(const v1::TaskInfo& t) {
  uint64_t ms = 0;
  for (const v1::ReplicaInfo& r : t.replicas()) {
    if (r.validity() != v1::VALIDITY_VALID && r.id() != t.canonical_replica()) continue;
    ms += r.compute_ms() > 0 ? r.compute_ms() : r.runtime_ms();
  }
  return ms;
}

double MsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

std::string ExecutorKey(const v1::TrainingJob& job) { return "train-" + std::to_string(job.id()); }

void TrainingDriver::Start(uint64_t interval_ms) {
  thread_ = std::thread([this, interval_ms] {
    // Wakes as soon as any task changes state, so that a round closes the
    // moment its last task is done; at least every interval_ms otherwise.
    uint64_t seen = coordinator_.TaskChanges();
    while (!stop_.load()) {
      Step();
      seen = coordinator_.WaitForTaskChange(seen, static_cast<int64_t>(interval_ms));
    }
  });
}

void TrainingDriver::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void TrainingDriver::Step() {
  v1::ListTrainingJobsResponse jobs = coordinator_.ListTrainingJobs();
  for (v1::TrainingJob job : jobs.jobs()) {
    if (job.state() == v1::TRAINING_STATE_DONE || job.state() == v1::TRAINING_STATE_FAILED) {
      coordinator_.RetireExecutor(ExecutorKey(job));
      continue;
    }
    const v1::TrainingJob before = job;
    absl::Status s = Advance(job);
    if (!s.ok()) {
      spdlog::warn("training job {} failed: {}", job.id(), std::string(s.message()));
      for (uint64_t id : job.round_tasks()) (void)coordinator_.Cancel(id);
      for (uint64_t id : job.eval_tasks()) (void)coordinator_.Cancel(id);
      job.clear_round_tasks();
      job.clear_eval_tasks();
      job.set_state(v1::TRAINING_STATE_FAILED);
      job.set_reason(std::string(s.message()));
      job.set_finished_at_ms(coordinator_.clock().NowMs());
    }
    if (!google::protobuf::util::MessageDifferencer::Equals(before, job)) {
      (void)coordinator_.SaveTrainingJob(job);
    }
  }
}

absl::Status TrainingDriver::Advance(v1::TrainingJob& job) {
  switch (job.state()) {
    case v1::TRAINING_STATE_INIT:
      return AdvanceInit(job);
    case v1::TRAINING_STATE_EXPORTING:
      return AdvanceExport(job);
    case v1::TRAINING_STATE_RUNNING:
      break;
    default:
      return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(v1::Dataset data, coordinator_.GetDataset(job.spec().dataset()));
  RETURN_IF_ERROR(AdvanceEval(job));
  RETURN_IF_ERROR(AdvanceRound(job, data));
  if (!job.round_tasks().empty()) return absl::OkStatus();
  if (!Finished(job, data)) return StartRound(job, data);
  // Measure the final parameters before exporting them.
  if (!job.eval_tasks().empty()) return absl::OkStatus();
  if (job.eval_round() != job.round() && data.test_size() > 0) return StartEval(job, data);
  job.set_state(v1::TRAINING_STATE_EXPORTING);
  return AdvanceExport(job);
}

bool TrainingDriver::Finished(const v1::TrainingJob& job, const v1::Dataset& data) const {
  const v1::TrainingSpec& spec = job.spec();
  if (spec.target_accuracy() > 0 && job.accuracy() >= spec.target_accuracy()) return true;
  if (spec.rounds() > 0 && job.round() >= spec.rounds()) return true;
  return spec.epochs() > 0 && job.samples_seen() >= uint64_t{spec.epochs()} * data.train_samples();
}

absl::StatusOr<uint64_t> TrainingDriver::SubmitMlTask(const v1::TrainingJob& job,
                                                      std::vector<std::string> args,
                                                      const std::vector<v1::InputFile>& inputs,
                                                      bool side) {
  v1::SubmitRequest req;
  req.set_job_name(job.spec().name());
  v1::TaskSpec* t = req.add_tasks();
  t->set_app(job.spec().app());
  t->set_version(job.spec().app_version());
  for (auto& a : args) t->add_args(std::move(a));
  for (const auto& in : inputs) *t->add_inputs() = in;
  t->mutable_policy()->set_min_quorum(job.spec().quorum());
  // Replicas on different CPUs agree on gradients only up to float rounding.
  t->set_validator("tolerance");
  t->mutable_resources()->set_memory_bytes(kMlTaskMemory);
  t->mutable_resources()->set_side(side);
  // The job's tasks share a warm artel-ml process on each worker.
  t->set_executor(ExecutorKey(job));
  for (const v1::ExcludedWorker& e : job.excluded()) t->add_avoid_workers(e.worker_id());
  ASSIGN_OR_RETURN(v1::SubmitResponse resp, coordinator_.Submit(req));
  return resp.task_ids(0);
}

std::string TrainingDriver::OutputDigest(const v1::TaskInfo& task, const std::string& name) const {
  for (const auto& f : task.outputs()) {
    if (f.name() == name) return f.digest();
  }
  return "";
}

absl::StatusOr<std::string> TrainingDriver::ReadOutput(const v1::TaskInfo& task,
                                                       const std::string& name) const {
  const std::string digest = OutputDigest(task, name);
  if (digest.empty()) {
    return absl::DataLossError("task " + std::to_string(task.id()) + " did not write " + name);
  }
  return ReadOutputBlob(digest);
}

namespace {

absl::Status TaskFailure(const v1::TaskInfo& t, const std::string& what,
                         const std::string& stderr_tail) {
  return absl::AbortedError(what + " failed (task " + std::to_string(t.id()) + "): " + t.reason() +
                            (stderr_tail.empty() ? "" : "; stderr: " + stderr_tail));
}

}  // namespace

absl::Status TrainingDriver::Failure(const v1::TaskInfo& t, const std::string& what) const {
  absl::StatusOr<std::string> err = ReadOutput(t, "stderr");
  return TaskFailure(t, what, err.ok() ? Tail(*err, 600) : "");
}

absl::StatusOr<std::optional<v1::TaskInfo>> TrainingDriver::RunSingleTask(
    v1::TrainingJob& job, std::vector<std::string> args, const std::vector<v1::InputFile>& inputs,
    const std::string& what) {
  if (job.round_tasks().empty()) {
    ASSIGN_OR_RETURN(uint64_t id, SubmitMlTask(job, std::move(args), inputs));
    job.add_round_tasks(id);
    return std::optional<v1::TaskInfo>();
  }
  ASSIGN_OR_RETURN(v1::TaskInfo t, coordinator_.GetTask(job.round_tasks(0)));
  if (t.state() != v1::TASK_STATE_DONE) return std::optional<v1::TaskInfo>();
  if (!Succeeded(t)) {
    return Failure(t, what);
  }
  job.clear_round_tasks();
  return std::optional<v1::TaskInfo>(std::move(t));
}

absl::Status TrainingDriver::AdvanceInit(v1::TrainingJob& job) {
  ASSIGN_OR_RETURN(std::optional<v1::TaskInfo> done,
                   RunSingleTask(job, {"init", "--model", "model.pt"},
                                 {Input("model.pt", job.spec().model_digest())},
                                 "reading the model's parameters"));
  if (!done.has_value()) return absl::OkStatus();
  const v1::TaskInfo& t = *done;
  const std::string params = OutputDigest(t, "params.safetensors");
  if (params.empty()) return absl::DataLossError("the init task wrote no params.safetensors");
  ASSIGN_OR_RETURN(ml::Optimizer opt, ml::Optimizer::Create(ServerConfig(job.spec())));
  ASSIGN_OR_RETURN(std::string opt_digest,
                   coordinator_.blobs().PutBytes(ml::SerializeSafetensors(opt.State())));
  job.set_params_digest(params);
  job.set_optimizer_digest(opt_digest);
  job.set_state(v1::TRAINING_STATE_RUNNING);
  return absl::OkStatus();
}

absl::Status TrainingDriver::StartRound(v1::TrainingJob& job, const v1::Dataset& data) {
  const v1::TrainingSpec& spec = job.spec();
  if (job.running_since_ms() == 0) job.set_running_since_ms(coordinator_.clock().NowMs());
  if (spec.mode() == v1::TRAIN_MODE_ASYNC && job.round_started_ms() == 0) {
    job.set_round_started_ms(coordinator_.clock().NowMs());
  }
  const std::vector<v1::InputFile> base = {Input("model.pt", spec.model_digest()),
                                           Input("params.safetensors", job.params_digest())};
  const uint64_t shards = static_cast<uint64_t>(data.train_size());
  const std::string b = std::to_string(spec.batch_size());
  const bool carry = spec.mode() == v1::TRAIN_MODE_LOCAL && !job.inner_state_digest().empty();
  // `extra` more shards after `shard` (local tasks that cover more samples
  // than one shard holds train on several as one).
  auto submit = [&](uint64_t shard, std::vector<std::string> args,
                    uint64_t extra = 0) -> absl::Status {
    std::vector<v1::InputFile> inputs = base;
    inputs.push_back(Input("shard.safetensors", data.train(static_cast<int>(shard)).digest()));
    std::vector<std::string> all = {
        args[0],  "--model",          "model.pt", "--params", "params.safetensors",
        "--data", "shard.safetensors"};
    for (uint64_t i = 1; i <= extra; ++i) {
      const std::string name = "shard-" + std::to_string(i + 1) + ".safetensors";
      inputs.push_back(Input(name, data.train(static_cast<int>((shard + i) % shards)).digest()));
      all.insert(all.end(), {"--data", name});
    }
    all.insert(all.end(), args.begin() + 1, args.end());
    if (carry) {
      inputs.push_back(Input("state.safetensors", job.inner_state_digest()));
      all.insert(all.end(), {"--state", "state.safetensors"});
    }
    if (!spec.compress().empty() && spec.compress() != "none") {
      all.insert(all.end(), {"--compress", spec.compress()});
      // Error feedback lives in each worker's executor; replicas of one task
      // on two workers would then disagree, so replicated jobs go without.
      if (spec.quorum() <= 1) all.push_back("--error-feedback");
    }
    ASSIGN_OR_RETURN(uint64_t id, SubmitMlTask(job, std::move(all), inputs));
    job.add_round_tasks(id);
    (*job.mutable_task_base_round())[id] = job.round();
    return absl::OkStatus();
  };
  if (spec.mode() != v1::TRAIN_MODE_ASYNC) {
    job.set_round_started_ms(coordinator_.clock().NowMs());
    job.clear_task_base_round();
  }
  switch (spec.mode()) {
    case v1::TRAIN_MODE_FULLBATCH:
      // Seeded (dropout) by the task's position in the job: round and shard.
      for (uint64_t s = 0; s < shards; ++s) {
        RETURN_IF_ERROR(
            submit(s, {"grad", "--all", "--seed", std::to_string(job.round() * shards + s + 1)}));
      }
      return absl::OkStatus();
    case v1::TRAIN_MODE_LOCAL: {
      // Task p trains on shards p*k .. p*k+k-1 (mod the shard count), k
      // enough to hold its H * B samples, so that it sees that many distinct
      // samples; a later pass over the same shards starts further along.
      const uint64_t per_shard = std::max<uint64_t>(1, data.train(0).samples());
      const uint64_t want = uint64_t{spec.local_steps()} * spec.batch_size();
      const uint64_t k = std::clamp<uint64_t>((want + per_shard - 1) / per_shard, 1, shards);
      for (uint64_t j = 0; j < spec.workers(); ++j) {
        const uint64_t p = job.next_batch() + j;
        RETURN_IF_ERROR(
            submit((p * k) % shards,
                   {"local", "--batch-size", b, "--steps", std::to_string(spec.local_steps()),
                    "--lr", FullPrecision(ScaledLr(spec)), "--optimizer", spec.optimizer(),
                    "--start-batch", std::to_string((p * k / shards) * spec.local_steps())},
                   k - 1));
      }
      return absl::OkStatus();
    }
    default: {  // sync and async: one mini-batch per task
      const uint64_t n =
          spec.mode() == v1::TRAIN_MODE_SYNC
              ? spec.workers() + spec.backup()
              : spec.workers() - std::min<uint64_t>(spec.workers(), job.round_tasks_size());
      for (uint64_t j = 0; j < n; ++j) {
        const uint64_t p = job.next_batch() + j;
        const uint64_t shard = p % shards;
        const uint64_t batches = std::max<uint64_t>(
            1, data.train(static_cast<int>(shard)).samples() / spec.batch_size());
        // Seeded by the batch's position: replicas of a task draw the same
        // dropout masks, and every batch of the job draws its own.
        RETURN_IF_ERROR(submit(
            shard, {"grad", "--batch-size", b, "--batch-index",
                    std::to_string((p / shards) % batches), "--seed", std::to_string(p + 1)}));
      }
      if (spec.mode() == v1::TRAIN_MODE_ASYNC) job.set_next_batch(job.next_batch() + n);
      return absl::OkStatus();
    }
  }
}

absl::Status TrainingDriver::AdvanceRound(v1::TrainingJob& job, const v1::Dataset& data) {
  if (job.round_tasks().empty()) return absl::OkStatus();
  const v1::TrainingSpec& spec = job.spec();
  std::vector<v1::TaskInfo> done;
  std::vector<uint64_t> running;
  for (uint64_t id : job.round_tasks()) {
    ASSIGN_OR_RETURN(v1::TaskInfo t, coordinator_.GetTask(id));
    if (t.state() != v1::TASK_STATE_DONE) {
      running.push_back(id);
      continue;
    }
    if (!Succeeded(t)) {
      return Failure(t, "a training task");
    }
    done.push_back(std::move(t));
  }
  std::sort(done.begin(), done.end(), [](const v1::TaskInfo& a, const v1::TaskInfo& b) {
    return a.finished_at_ms() < b.finished_at_ms();
  });
  if (spec.mode() == v1::TRAIN_MODE_ASYNC) {
    // Apply each update on arrival unless it is too stale; keep W in flight.
    for (const v1::TaskInfo& t : done) {
      const uint32_t base =
          job.task_base_round().count(t.id()) ? job.task_base_round().at(t.id()) : 0;
      job.mutable_task_base_round()->erase(t.id());
      if (job.round() - base > spec.max_staleness()) continue;  // refused: too stale
      RETURN_IF_ERROR(TimedCloseRound(job, {t}));
      // Measure every eval_every updates (skipping a due one while another
      // evaluation is still running).
      if (job.round() % spec.eval_every() == 0 && job.eval_tasks().empty() &&
          data.test_size() > 0) {
        RETURN_IF_ERROR(StartEval(job, data));
      }
    }
    job.clear_round_tasks();
    for (uint64_t id : running) job.add_round_tasks(id);
    if (Finished(job, data)) {
      for (uint64_t id : running) (void)coordinator_.Cancel(id);
      job.clear_round_tasks();
      job.clear_task_base_round();
      return absl::OkStatus();
    }
    return StartRound(job, data);
  }
  const size_t needed = spec.mode() == v1::TRAIN_MODE_SYNC
                            ? spec.workers()
                            : static_cast<size_t>(job.round_tasks_size());
  if (done.size() < needed) return absl::OkStatus();
  done.resize(needed);
  // Backup tasks still running are no longer needed.
  for (uint64_t id : running) (void)coordinator_.Cancel(id);
  RETURN_IF_ERROR(TimedCloseRound(job, done));
  job.clear_round_tasks();
  job.clear_task_base_round();
  if (spec.mode() != v1::TRAIN_MODE_FULLBATCH)
    job.set_next_batch(job.next_batch() + spec.workers());
  if (job.round() % spec.eval_every() == 0 && job.eval_tasks().empty() && data.test_size() > 0) {
    return StartEval(job, data);
  }
  return absl::OkStatus();
}

absl::Status TrainingDriver::CloseRound(v1::TrainingJob& job,
                                        const std::vector<v1::TaskInfo>& done) {
  const v1::TrainingSpec& spec = job.spec();
  const std::string file =
      spec.mode() == v1::TRAIN_MODE_LOCAL ? "delta.safetensors" : "grad.safetensors";
  std::vector<ml::TensorMap> parts, buffer_parts;
  std::vector<double> weights;
  std::vector<std::string> workers;
  double loss = 0;
  uint64_t samples = 0, bytes = 0;
  ASSIGN_OR_RETURN(uint64_t params_size, coordinator_.blobs().SizeOf(job.params_digest()));
  for (const v1::TaskInfo& t : done) {
    workers.push_back(WorkerOf(t));
    // A worker excluded while this task ran: its update no longer counts.
    if (done.size() > 1 &&
        std::any_of(job.excluded().begin(), job.excluded().end(),
                    [&](const v1::ExcludedWorker& e) { return e.worker_id() == workers.back(); })) {
      workers.pop_back();
      continue;
    }
    ASSIGN_OR_RETURN(std::string bytes_out, ReadOutput(t, file));
    ASSIGN_OR_RETURN(ml::TensorMap parsed, ml::ParseSafetensors(bytes_out));
    // Updates may travel as fp16 or int8 (--compress; ml/compress.h).
    ASSIGN_OR_RETURN(ml::TensorMap m, ml::Decompress(std::move(parsed)));
    // The model's buffers are values, not part of the update (ml/buffers.h).
    buffer_parts.push_back(ml::SplitBuffers(m));
    RETURN_IF_ERROR(ml::CheckFinite(m));
    const double n = MetaNumber(m, "samples", 1);
    loss += MetaNumber(m, "loss") * n;
    samples += static_cast<uint64_t>(n);
    bytes += bytes_out.size() + params_size;
    weights.push_back(n);
    parts.push_back(std::move(m));
  }
  if (parts.empty()) return absl::OkStatus();  // every update came from an excluded worker
  std::vector<const ml::TensorMap*> ptrs;
  for (const auto& p : parts) ptrs.push_back(&p);
  ASSIGN_OR_RETURN(ml::TensorMap update, Aggregate(job, ptrs, weights, workers));
  std::vector<const ml::TensorMap*> buffer_ptrs;
  for (const auto& b : buffer_parts) buffer_ptrs.push_back(&b);
  ASSIGN_OR_RETURN(ml::TensorMap buffers, ml::AverageBuffers(buffer_ptrs, weights));
  std::string inner_state = job.inner_state_digest();
  // Jobs stored before --inner-state existed have it empty: they reset.
  if (spec.mode() == v1::TRAIN_MODE_LOCAL && spec.inner_state() == "carry" &&
      spec.optimizer() != "sgd") {  // plain SGD keeps no state
    ASSIGN_OR_RETURN(inner_state, AverageInnerState(job, done, weights, bytes));
  }
  ASSIGN_OR_RETURN(std::string params_bytes, ReadOutputBlob(job.params_digest()));
  ASSIGN_OR_RETURN(ml::TensorMap params, ml::ParseSafetensors(params_bytes));
  ASSIGN_OR_RETURN(std::string opt_bytes, ReadOutputBlob(job.optimizer_digest()));
  ASSIGN_OR_RETURN(ml::TensorMap opt_state, ml::ParseSafetensors(opt_bytes));
  ASSIGN_OR_RETURN(ml::Optimizer opt, ml::Optimizer::Create(ServerConfig(spec)));
  RETURN_IF_ERROR(opt.LoadState(opt_state));
  // DiLoCo: the averaged delta, negated, is the outer optimizer's gradient.
  if (spec.mode() == v1::TRAIN_MODE_LOCAL) update = ml::Negate(update);
  ml::TensorMap buffers_before = ml::SplitBuffers(params);  // never stepped
  RETURN_IF_ERROR(opt.Step(params, update));
  // The round's averaged buffers replace the old ones (in async mode, one
  // task's); buffers the tasks did not report keep their values.
  RETURN_IF_ERROR(ml::MergeBuffers(params, buffers_before));
  RETURN_IF_ERROR(ml::MergeBuffers(params, buffers));
  ASSIGN_OR_RETURN(std::string new_params,
                   coordinator_.blobs().PutBytes(ml::SerializeSafetensors(params)));
  ASSIGN_OR_RETURN(std::string new_opt,
                   coordinator_.blobs().PutBytes(ml::SerializeSafetensors(opt.State())));
  const int64_t now = coordinator_.clock().NowMs();
  ASSIGN_OR_RETURN(v1::Dataset data, coordinator_.GetDataset(spec.dataset()));
  job.set_params_digest(new_params);
  job.set_optimizer_digest(new_opt);
  job.set_inner_state_digest(inner_state);
  job.set_round(job.round() + 1);
  job.set_samples_seen(job.samples_seen() + samples);
  job.set_bytes_moved(job.bytes_moved() + bytes);
  v1::RoundRecord* r = job.add_history();
  r->set_round(job.round());
  r->set_loss(samples > 0 ? loss / samples : 0);
  r->set_accuracy(-1);
  r->set_samples(samples);
  const double seconds = std::max<int64_t>(1, now - job.round_started_ms()) / 1000.0;
  r->set_samples_per_s(samples / seconds);
  r->set_bytes_moved(bytes);
  r->set_epoch(data.train_samples() == 0 ? 0 : double(job.samples_seen()) / data.train_samples());
  r->set_finished_at_ms(now);
  if (spec.mode() == v1::TRAIN_MODE_ASYNC) job.set_round_started_ms(now);
  return absl::OkStatus();
}

absl::StatusOr<ml::TensorMap> TrainingDriver::Aggregate(
    v1::TrainingJob& job, const std::vector<const ml::TensorMap*>& parts,
    std::vector<double>& weights, const std::vector<std::string>& workers) {
  const v1::TrainingSpec& spec = job.spec();
  const std::string& rule = spec.aggregate();
  if (rule.empty() || rule == "mean") return ml::WeightedAverage(parts, weights);
  std::vector<bool> far(parts.size(), false);
  std::vector<double> distances;
  ml::TensorMap out;
  if (spec.mode() == v1::TRAIN_MODE_ASYNC) {
    // One update at a time: clip its norm against the recent ones.
    out = *parts.front();
    const double norm = ml::L2Norm(out);
    std::vector<double> recent(job.recent_norms().begin(), job.recent_norms().end());
    double kept = norm;
    if (recent.size() >= kAsyncNormMinimum) {
      const double limit = kFarFactor * Median(recent);
      if (norm > limit && norm > 0) {
        far[0] = true;
        kept = limit;
        RETURN_IF_ERROR(
            ml::AddInPlace(out, *parts.front(), limit / norm - 1));  // out *= limit/norm
      }
    }
    recent.push_back(kept);
    if (recent.size() > kAsyncNormWindow) recent.erase(recent.begin());
    job.clear_recent_norms();
    for (double r : recent) job.add_recent_norms(r);
  } else {
    if (rule == "median") {
      ASSIGN_OR_RETURN(out, ml::CoordinateMedian(parts));
    } else if (rule == "trimmed-mean") {
      ASSIGN_OR_RETURN(out, ml::TrimmedMean(parts, 0.25));
    } else {  // centered-clip (checked when the job started)
      ASSIGN_OR_RETURN(ml::ClipResult clip, ml::CenteredClip(parts, spec.clip_radius()));
      out = std::move(clip.center);
    }
    ASSIGN_OR_RETURN(distances, ml::DistancesTo(parts, out));
    if (parts.size() >= 3) {
      const double limit = kFarFactor * Median(distances);
      for (size_t i = 0; i < parts.size(); ++i) far[i] = limit > 0 && distances[i] > limit;
    }
  }
  // Far updates earn suspicion; three rounds in a row exclude their worker.
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& w = workers[i];
    if (w.empty()) continue;
    if (far[i]) weights[i] = 0;  // nor do its buffers count
    uint32_t& count = (*job.mutable_suspicion())[w];
    count = far[i] ? count + 1 : 0;
    if (count < kExcludeAfter) continue;
    bool already = false;
    for (const v1::ExcludedWorker& e : job.excluded()) already |= e.worker_id() == w;
    if (already) continue;
    // Robust rules hold while fewer than half of the workers attack: never
    // exclude more than that (a diverged job would otherwise lose them all).
    if (static_cast<uint32_t>(job.excluded_size()) + 1 > (spec.workers() - 1) / 2) {
      spdlog::warn(
          "training job {}: worker {} lay far from the aggregate {} times in a row, but {} of {} "
          "workers are excluded already",
          job.id(), w, count, job.excluded_size(), spec.workers());
      continue;
    }
    v1::ExcludedWorker* e = job.add_excluded();
    e->set_worker_id(w);
    e->set_round(job.round() + 1);
    e->set_reason(spec.mode() == v1::TRAIN_MODE_ASYNC
                      ? "its updates were clipped to 2x the recent median norm in " +
                            std::to_string(count) + " rounds in a row"
                      : "its updates lay more than 2x the median distance from the " + rule +
                            " aggregate in " + std::to_string(count) + " rounds in a row");
    spdlog::warn("training job {}: worker {} excluded: {}", job.id(), w, e->reason());
  }
  if (std::all_of(weights.begin(), weights.end(), [](double x) { return x == 0; })) {
    std::fill(weights.begin(), weights.end(), 1.0);  // buffers need some weight
  }
  return out;
}

absl::Status TrainingDriver::TimedCloseRound(v1::TrainingJob& job,
                                             const std::vector<v1::TaskInfo>& done) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t started_ms = job.round_started_ms();
  RETURN_IF_ERROR(CloseRound(job, done));
  uint64_t compute = 0;
  for (const v1::TaskInfo& t : done) compute += UsedComputeMs(t);
  const double ms = MsSince(start);
  job.set_compute_ms(job.compute_ms() + compute);
  job.set_coordinator_ms(job.coordinator_ms() + ms);
  const int64_t wall_ms = coordinator_.clock().NowMs() - job.running_since_ms();
  if (wall_ms > 0 && job.spec().workers() > 0) {
    job.set_compute_utilization(static_cast<double>(job.compute_ms()) /
                                (static_cast<double>(wall_ms) * job.spec().workers()));
  }
  if (!job.history().empty()) {
    v1::RoundRecord& r = *job.mutable_history()->rbegin();
    r.set_compute_ms(compute);
    r.set_coordinator_ms(ms);
    r.set_started_at_ms(started_ms);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> TrainingDriver::AverageInnerState(const v1::TrainingJob& job,
                                                              const std::vector<v1::TaskInfo>& done,
                                                              const std::vector<double>& weights,
                                                              uint64_t& bytes) {
  uint64_t state_in = 0;  // the state each task downloaded
  if (!job.inner_state_digest().empty()) {
    ASSIGN_OR_RETURN(state_in, coordinator_.blobs().SizeOf(job.inner_state_digest()));
  }
  std::vector<ml::TensorMap> states;
  for (const v1::TaskInfo& t : done) {
    ASSIGN_OR_RETURN(std::string raw, ReadOutput(t, "state.safetensors"));
    bytes += state_in + raw.size();
    ASSIGN_OR_RETURN(ml::TensorMap m, ml::ParseSafetensors(raw));
    RETURN_IF_ERROR(ml::CheckFinite(m));
    states.push_back(std::move(m));
  }
  std::vector<const ml::TensorMap*> ptrs;
  for (const auto& s : states) ptrs.push_back(&s);
  ASSIGN_OR_RETURN(ml::TensorMap avg, ml::WeightedAverage(ptrs, weights));
  // Every task of a round took the same number of steps from the same state.
  avg.metadata = {{"step", states.front().metadata["step"]}};
  return coordinator_.blobs().PutBytes(ml::SerializeSafetensors(avg));
}

absl::Status TrainingDriver::StartEval(v1::TrainingJob& job, const v1::Dataset& data) {
  // One task per worker at most, each measuring several test shards: every
  // task pays the ML app's start-up once, however many shards it reads.
  const int shards = data.test_size();
  const int tasks = std::max(1, std::min<int>(shards, static_cast<int>(job.spec().workers())));
  for (int t = 0; t < tasks; ++t) {
    std::vector<std::string> args = {"eval", "--model", "model.pt", "--params",
                                     "params.safetensors"};
    std::vector<v1::InputFile> inputs = {Input("model.pt", job.spec().model_digest()),
                                         Input("params.safetensors", job.params_digest())};
    for (int k = t; k < shards; k += tasks) {
      const std::string name = "test" + std::to_string(k) + ".safetensors";
      args.insert(args.end(), {"--data", name});
      inputs.push_back(Input(name, data.test(k).digest()));
    }
    // Beside training: evaluations never hold up a round.
    ASSIGN_OR_RETURN(uint64_t id, SubmitMlTask(job, std::move(args), inputs, /*side=*/true));
    job.add_eval_tasks(id);
  }
  job.set_eval_round(job.round());
  job.set_eval_params_digest(job.params_digest());
  return absl::OkStatus();
}

absl::Status TrainingDriver::AdvanceEval(v1::TrainingJob& job) {
  if (job.eval_tasks().empty()) return absl::OkStatus();
  double loss = 0, correct = 0, samples = 0;
  for (uint64_t id : job.eval_tasks()) {
    ASSIGN_OR_RETURN(v1::TaskInfo t, coordinator_.GetTask(id));
    if (t.state() != v1::TASK_STATE_DONE) return absl::OkStatus();
    if (!Succeeded(t)) {
      return Failure(t, "an evaluation task");
    }
    ASSIGN_OR_RETURN(std::string bytes, ReadOutput(t, "metrics.safetensors"));
    ASSIGN_OR_RETURN(ml::TensorMap m, ml::ParseSafetensors(bytes));
    const double n = MetaNumber(m, "samples");
    samples += n;
    correct += MetaNumber(m, "correct");
    loss += MetaNumber(m, "loss") * n;
  }
  job.clear_eval_tasks();
  if (samples == 0) return absl::OkStatus();
  job.set_accuracy(correct / samples);
  for (auto& r : *job.mutable_history()) {
    if (r.round() != job.eval_round()) continue;
    r.set_accuracy(correct / samples);
    r.set_test_loss(loss / samples);
  }
  // The target is reached by the parameters just measured: stop training
  // and keep exactly those parameters. Evaluations run beside training, so
  // later rounds may have closed meanwhile; the job goes back to the
  // measured round rather than export parameters nobody measured (which
  // might measure lower).
  const v1::TrainingSpec& spec = job.spec();
  if (spec.target_accuracy() > 0 && job.accuracy() >= spec.target_accuracy()) {
    for (uint64_t id : job.round_tasks()) (void)coordinator_.Cancel(id);
    job.clear_round_tasks();
    job.clear_task_base_round();
    if (job.eval_round() != job.round() && !job.eval_params_digest().empty()) {
      ASSIGN_OR_RETURN(v1::Dataset data, coordinator_.GetDataset(spec.dataset()));
      RollBackTo(job, data);
    }
  }
  return absl::OkStatus();
}

void TrainingDriver::RollBackTo(v1::TrainingJob& job, const v1::Dataset& data) {
  spdlog::info("training job {} reached its target at round {}; rounds {}-{} are dropped", job.id(),
               job.eval_round(), job.eval_round() + 1, job.round());
  job.set_params_digest(job.eval_params_digest());
  auto* history = job.mutable_history();
  while (!history->empty() && history->rbegin()->round() > job.eval_round()) {
    history->RemoveLast();
  }
  job.set_round(job.eval_round());
  const double epoch = history->empty() ? 0.0 : history->rbegin()->epoch();
  job.set_samples_seen(
      static_cast<uint64_t>(epoch * static_cast<double>(data.train_samples()) + 0.5));
}

absl::Status TrainingDriver::AdvanceExport(v1::TrainingJob& job) {
  ASSIGN_OR_RETURN(
      std::optional<v1::TaskInfo> done,
      RunSingleTask(job, {"export", "--model", "model.pt", "--params", "params.safetensors"},
                    {Input("model.pt", job.spec().model_digest()),
                     Input("params.safetensors", job.params_digest())},
                    "exporting the trained model"));
  if (!done.has_value()) return absl::OkStatus();
  const v1::TaskInfo& t = *done;
  const std::string digest = OutputDigest(t, "trained.pt");
  if (digest.empty()) return absl::DataLossError("the export task wrote no trained.pt");
  job.set_trained_model_digest(digest);
  job.set_state(v1::TRAINING_STATE_DONE);
  job.set_finished_at_ms(coordinator_.clock().NowMs());
  return absl::OkStatus();
}

absl::StatusOr<std::string> TrainingDriver::ReadOutputBlob(const std::string& digest) const {
  std::ifstream in(coordinator_.blobs().PathOf(digest), std::ios::binary);
  if (!in) return absl::DataLossError("blob " + digest + " is missing from the coordinator");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace artel
