// artel-bench-train: time to a test accuracy for one training configuration
// on a real local grid (docs/BENCHMARKS.md). Starts a coordinator and N
// worker processes (one core each) in a temporary directory, registers
// Fashion-MNIST (IDX, 2,000-image shards) and artel-ml, runs one training
// job and reports the wall-clock time from submitting the job until the
// client sees a test accuracy at or above the target, with the bytes the job
// moved (params down, updates up; cached shards are not counted).
//
// Each worker can be placed as a separate machine would be (bench/volunteers.sh
// does this): in cgroups that cap its CPU (--worker-cgroup) and in its own
// network namespace (--worker-netns, --worker-coordinator-host). Its sandboxed
// apps and executors inherit both; the coordinator and the client stay outside.
//
// Prints one line per evaluation and a summary; --json prints the summary as
// one JSON object instead (and the progress lines to stderr). Exit codes: 0
// target reached, 3 not reached within --epochs or --time-limit, 1 the job or
// the cluster failed, 130 interrupted (SIGINT or SIGTERM; the cluster is
// stopped first).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/local_cluster.h"
#include "common/subprocess.h"

namespace artel {
namespace {

using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_interrupted = 0;

void OnTerminate(int) { g_interrupted = 1; }

struct Flags {
  std::string model;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string mode = "local";
  uint32_t workers = 2;
  uint32_t batch_size = 64;
  double lr = 0.002;
  std::string optimizer = "adam";
  uint32_t local_steps = 32;   // 0: the coordinator's default
  double outer_lr = 0;         // 0: the coordinator's default
  double outer_momentum = -1;  // < 0: the coordinator's default
  std::string inner_state;     // "": the coordinator's default
  std::string lr_scale;        // "": the coordinator's default (auto)
  uint32_t backup = 0;
  uint32_t eval_every = 0;       // 0: from evals_per_epoch
  uint32_t evals_per_epoch = 4;  // 0 (and eval_every 0): the coordinator's default
  uint32_t max_staleness = 0;
  uint32_t shard_size = 2000;
  double target = 0.90;
  uint32_t epochs = 10;
  double time_limit_s = 1800;
  bool json = false;
  bool keep = false;
  std::string aggregate;   // "": the coordinator's default (mean)
  uint32_t attackers = 0;  // the first N workers run --inject-fault ATTACK
  std::string attack = "sign-flip";
  // Placement of worker i (1..workers); "{i}" in each becomes i.
  std::string coordinator_host = "127.0.0.1";  // what the coordinator listens on
  std::vector<std::string> worker_cgroups;     // cgroup directories to join
  std::string worker_netns;                    // `ip netns` name
  std::string worker_coordinator_host;         // host the worker dials
};

std::string ForWorker(std::string pattern, uint32_t i) {
  const std::string n = std::to_string(i);
  for (size_t at = pattern.find("{i}"); at != std::string::npos; at = pattern.find("{i}", at)) {
    pattern.replace(at, 3, n);
    at += n.size();
  }
  return pattern;
}

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<v1::TrainMode> Mode(const std::string& m) {
  if (m == "sync") return v1::TRAIN_MODE_SYNC;
  if (m == "local") return v1::TRAIN_MODE_LOCAL;
  if (m == "async") return v1::TRAIN_MODE_ASYNC;
  if (m == "fullbatch") return v1::TRAIN_MODE_FULLBATCH;
  return absl::InvalidArgumentError("unknown mode \"" + m +
                                    "\"; use sync, local, async or fullbatch");
}

// Rounds between evaluations so that the test set is measured about
// `evals_per_epoch` times per pass over Fashion-MNIST's 60,000 images, as the
// single-process baseline does (every 235 steps of 64). 0 leaves it to the
// coordinator.
uint32_t EvalEvery(const Flags& f, v1::TrainMode mode) {
  if (f.eval_every > 0) return f.eval_every;
  if (f.evals_per_epoch == 0) return 0;
  constexpr double kTrainSamples = 60000;
  double per_round = static_cast<double>(f.workers) * f.batch_size;
  if (mode == v1::TRAIN_MODE_LOCAL) per_round *= f.local_steps;
  if (mode == v1::TRAIN_MODE_FULLBATCH) per_round = kTrainSamples;
  const double rounds = kTrainSamples / per_round / std::max<uint32_t>(1, f.evals_per_epoch);
  return static_cast<uint32_t>(std::max(1.0, rounds + 0.5));
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Outcome {
  bool reached = false;
  double time_to_target_s = -1;
  double epochs_to_target = -1;
  uint64_t bytes_to_target = 0;
  // At the target (or at the end when it was not reached): the job's
  // training compute and the wall clock (Unix ms), for compute utilization.
  uint64_t compute_ms = 0;
  int64_t end_ms = 0;
  v1::TrainingJob job;
  double elapsed_s = 0;
  bool interrupted = false;
};

absl::Status RegisterData(LocalCluster& cluster, const Flags& f) {
  const std::filesystem::path d = f.data_dir;
  const std::filesystem::path artel = SelfDirectory() / "artel";
  ASSIGN_OR_RETURN(Subprocess p,
                   Subprocess::Start({artel.string(), "data", "add", "fmnist", "--idx-images",
                                      (d / "train-images-idx3-ubyte.gz").string(), "--idx-labels",
                                      (d / "train-labels-idx1-ubyte.gz").string(), "--test-images",
                                      (d / "t10k-images-idx3-ubyte.gz").string(), "--test-labels",
                                      (d / "t10k-labels-idx1-ubyte.gz").string(), "--shard-size",
                                      std::to_string(f.shard_size)},
                                     cluster.root() / "data.log",
                                     {"ARTEL_COORDINATOR=" + cluster.address(),
                                      "ARTEL_TOKEN=" + cluster.admin_token()}));
  if (p.Wait() != 0) {
    return absl::InternalError("`artel data add` failed; see " +
                               (cluster.root() / "data.log").string());
  }
  return absl::OkStatus();
}

absl::StatusOr<Outcome> Run(const Flags& f, const std::filesystem::path& root) {
  ASSIGN_OR_RETURN(v1::TrainMode mode, Mode(f.mode));
  const std::filesystem::path bin = SelfDirectory();
  LocalClusterOptions options;
  options.artel_binary = bin / "artel";
  options.root = root;
  options.coordinator_args = {"--heartbeat-interval", "500ms", "--worker-timeout", "5s"};
  options.coordinator_host = f.coordinator_host;
  ASSIGN_OR_RETURN(std::unique_ptr<LocalCluster> cluster, LocalCluster::Start(options));
  Client& client = cluster->client();
  RETURN_IF_ERROR(
      client.AddApp("artel-ml", "1", bin / "artel-ml", cluster->signing_key()).status());
  RETURN_IF_ERROR(RegisterData(*cluster, f));
  for (uint32_t i = 1; i <= f.workers; ++i) {
    WorkerPlacement placement;
    for (const std::string& cg : f.worker_cgroups) placement.cgroups.push_back(ForWorker(cg, i));
    placement.netns = ForWorker(f.worker_netns, i);
    placement.coordinator_host = ForWorker(f.worker_coordinator_host, i);
    std::vector<std::string> extra = {"--cores", "1"};
    if (i <= f.attackers) extra.insert(extra.end(), {"--inject-fault", f.attack});
    RETURN_IF_ERROR(
        cluster->AddWorker("worker-" + std::to_string(i), extra, placement).status());
  }
  v1::TrainingSpec spec;
  spec.set_name("bench-" + f.mode);
  ASSIGN_OR_RETURN(std::string model, client.blobs().UploadFile(f.model));
  spec.set_model_digest(model);
  spec.set_dataset("fmnist");
  spec.set_mode(mode);
  spec.set_workers(f.workers);
  spec.set_batch_size(f.batch_size);
  spec.set_lr(f.lr);
  spec.set_optimizer(f.optimizer);
  spec.set_lr_scale(f.lr_scale);
  spec.set_aggregate(f.aggregate);
  spec.set_local_steps(f.local_steps);
  if (mode == v1::TRAIN_MODE_LOCAL && f.local_steps == 0 && f.eval_every == 0 &&
      f.evals_per_epoch > 0) {
    return absl::InvalidArgumentError(
        "--local-steps 0 (the coordinator's default H) needs --eval-every N or "
        "--evals-per-epoch 0 (the coordinator's default), since evaluations are counted in "
        "rounds of H steps");
  }
  if (mode == v1::TRAIN_MODE_LOCAL) {
    spec.set_outer_lr(f.outer_lr);
    if (f.outer_momentum >= 0) spec.set_outer_momentum(f.outer_momentum);
    spec.set_inner_state(f.inner_state);
  }
  spec.set_backup(f.backup);
  spec.set_eval_every(EvalEvery(f, mode));
  spec.set_max_staleness(f.max_staleness);
  spec.set_epochs(f.epochs);
  spec.set_target_accuracy(f.target);

  Outcome out;
  const auto start = Clock::now();
  ASSIGN_OR_RETURN(v1::TrainingJob job, client.StartTraining(spec));
  uint32_t printed = 0;
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    if (g_interrupted) {
      out.interrupted = true;
      break;
    }
    out.elapsed_s = Seconds(Clock::now() - start);
    absl::StatusOr<v1::TrainingJob> j = client.GetTrainingJob(job.id());
    if (!j.ok()) return j.status();
    job = *std::move(j);
    if (!out.reached) {
      out.compute_ms = job.compute_ms();
      out.end_ms = UnixMs();
    }
    for (const v1::RoundRecord& r : job.history()) {
      if (r.round() <= printed || r.accuracy() < 0) continue;
      printed = r.round();
      // Progress goes to stderr under --json, so that stdout is the summary.
      FILE* progress = f.json ? stderr : stdout;
      std::fprintf(progress,
                   "%7.1f s  round %5u  epoch %5.2f  loss %.4f  test accuracy %.2f%%  %.1f MiB\n",
                   out.elapsed_s, r.round(), r.epoch(), r.loss(), r.accuracy() * 100,
                   job.bytes_moved() / 1048576.0);
      std::fflush(progress);
      if (!out.reached && r.accuracy() >= f.target) {
        out.reached = true;
        out.time_to_target_s = out.elapsed_s;
        out.epochs_to_target = r.epoch();
        out.bytes_to_target = job.bytes_moved();
      }
    }
    if (job.state() == v1::TRAINING_STATE_FAILED) {
      return absl::AbortedError("training job failed: " + job.reason());
    }
    if (job.state() == v1::TRAINING_STATE_DONE || out.reached || out.elapsed_s > f.time_limit_s) {
      break;
    }
  }
  out.job = job;
  return out;
}

int Main(int argc, char** argv) {
  CLI::App app("artel-bench-train: time to a test accuracy on a local artel grid");
  Flags f;
  app.add_option("--model", f.model, "TorchScript file (torch.jit.script(m).save)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--data-dir", f.data_dir, "directory with the four *-ubyte.gz IDX files")
      ->capture_default_str();
  app.add_option("--mode", f.mode, "sync, local, async or fullbatch")->capture_default_str();
  app.add_option("--workers", f.workers, "worker processes (one core each) and tasks per round")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--batch-size", f.batch_size, "samples per step and task")->capture_default_str();
  app.add_option("--lr", f.lr, "learning rate (local: of the inner optimizer)")
      ->capture_default_str();
  app.add_option("--optimizer", f.optimizer, "sgd, momentum or adam")->capture_default_str();
  app.add_option("--lr-scale", f.lr_scale,
                 "sync and local: none, sqrt or linear growth of --lr with the workers "
                 "(empty: the coordinator's default)");
  app.add_option("--local-steps", f.local_steps, "local: steps H per task")->capture_default_str();
  app.add_option("--outer-lr", f.outer_lr, "local: outer step (0: default)")->capture_default_str();
  app.add_option("--outer-momentum", f.outer_momentum, "local: outer momentum (< 0: default)")
      ->capture_default_str();
  app.add_option("--inner-state", f.inner_state, "local: carry or reset (empty: default)");
  app.add_option("--backup", f.backup, "sync: extra tasks per round")->capture_default_str();
  app.add_option("--eval-every", f.eval_every, "rounds between evaluations (0: --evals-per-epoch)")
      ->capture_default_str();
  app.add_option("--evals-per-epoch", f.evals_per_epoch, "test-set evaluations per epoch")
      ->capture_default_str();
  app.add_option("--max-staleness", f.max_staleness, "async: oldest update applied (0: default)")
      ->capture_default_str();
  app.add_option("--shard-size", f.shard_size, "images per shard")->capture_default_str();
  app.add_option("--target-accuracy", f.target, "stop at this test accuracy")
      ->capture_default_str();
  app.add_option("--epochs", f.epochs, "most passes over the data")->capture_default_str();
  app.add_option("--time-limit", f.time_limit_s, "give up after this many seconds")
      ->capture_default_str();
  app.add_flag("--json", f.json, "print the summary as one JSON object");
  app.add_option("--aggregate", f.aggregate,
                 "mean, trimmed-mean, median or centered-clip (empty: the coordinator's default)");
  app.add_option("--attackers", f.attackers, "the first N workers attack with --attack")
      ->capture_default_str();
  app.add_option("--attack", f.attack,
                 "an artel worker --inject-fault: sign-flip, noise, scale:K, label-flip")
      ->capture_default_str();
  app.add_flag("--keep", f.keep, "keep the work directory (logs, databases)");
  app.add_option("--coordinator-host", f.coordinator_host,
                 "host the coordinator listens on (0.0.0.0 for workers in network namespaces)")
      ->capture_default_str();
  app.add_option("--worker-cgroup", f.worker_cgroups,
                 "cgroup directory each worker joins before it starts, {i} = worker number "
                 "(repeatable; needs root)");
  app.add_option("--worker-netns", f.worker_netns,
                 "network namespace (`ip netns add`) each worker runs in, {i} = worker number");
  app.add_option("--worker-coordinator-host", f.worker_coordinator_host,
                 "host each worker dials on the coordinator's port, {i} = worker number");
  CLI11_PARSE(app, argc, argv);
  // Stop the cluster (the destructors kill it) rather than leave it running.
  struct sigaction sa {};
  sa.sa_handler = OnTerminate;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  char tmpl[] = "/tmp/artel-bench-train-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::cerr << "artel-bench-train: cannot create a temporary directory under /tmp\n";
    return 1;
  }
  const std::filesystem::path root = tmpl;
  absl::StatusOr<Outcome> out = Run(f, root);
  if (!f.keep) std::filesystem::remove_all(root);
  if (!out.ok()) {
    std::cerr << "artel-bench-train: " << out.status().message()
              << (f.keep ? " (logs in " + root.string() + ")" : " (rerun with --keep for logs)")
              << "\n";
    return 1;
  }
  if (out->interrupted) {
    std::cerr << "artel-bench-train: interrupted; the cluster is stopped\n";
    return 130;
  }
  const v1::TrainingJob& job = out->job;
  const double epochs = job.history().empty() ? 0 : job.history().rbegin()->epoch();
  const double mib_per_epoch = epochs > 0 ? job.bytes_moved() / 1048576.0 / epochs : 0;
  // compute_ms / (running time * workers); -1 when the coordinator does not
  // report compute.
  const int64_t running_ms = out->end_ms - job.running_since_ms();
  const double utilization =
      out->compute_ms > 0 && job.running_since_ms() > 0 && running_ms > 0
          ? static_cast<double>(out->compute_ms) / (static_cast<double>(running_ms) * f.workers)
          : -1;
  if (f.json) {
    std::printf(
        "{\"run\": \"artel\", \"mode\": \"%s\", \"inner_state\": \"%s\", \"outer_lr\": %g, "
        "\"outer_momentum\": %g, \"lr_scale\": \"%s\", \"workers\": %u, \"optimizer\": \"%s\", "
        "\"batch_size\": %u, \"lr\": %g, \"local_steps\": %u, \"target\": %g, \"reached\": %s, "
        "\"time_to_target_s\": %.1f, \"epochs_to_target\": %.2f, \"bytes_to_target\": %llu, "
        "\"elapsed_s\": %.1f, \"rounds\": %u, \"epochs\": %.2f, \"accuracy\": %.4f, "
        "\"bytes_moved\": %llu, \"mib_per_epoch\": %.1f, \"local_steps_used\": %u, "
        "\"eval_every\": %u, \"compute_ms\": %llu, \"running_since_ms\": %lld, "
        "\"end_ms\": %lld, \"utilization\": %.3f, \"aggregate\": \"%s\", \"attackers\": %u, "
        "\"attack\": \"%s\", \"excluded\": %d, \"coordinator_ms\": %.1f}\n",
        f.mode.c_str(), job.spec().inner_state().c_str(), job.spec().outer_lr(),
        job.spec().outer_momentum(), job.spec().lr_scale().c_str(), f.workers, f.optimizer.c_str(),
        f.batch_size, f.lr, f.local_steps, f.target, out->reached ? "true" : "false",
        out->time_to_target_s, out->epochs_to_target,
        static_cast<unsigned long long>(out->bytes_to_target), out->elapsed_s, job.round(), epochs,
        job.accuracy(), static_cast<unsigned long long>(job.bytes_moved()), mib_per_epoch,
        job.spec().local_steps(), job.spec().eval_every(),
        static_cast<unsigned long long>(out->compute_ms),
        static_cast<long long>(job.running_since_ms()), static_cast<long long>(out->end_ms),
        utilization, job.spec().aggregate().c_str(), f.attackers,
        f.attackers > 0 ? f.attack.c_str() : "none", job.excluded_size(), job.coordinator_ms());
  } else if (out->reached) {
    std::printf(
        "artel %s, %u workers: %.2f%% test accuracy after %.1f s (%.2f epochs, %u rounds); "
        "%.1f MiB moved to get there, %.1f MiB per epoch\n",
        f.mode.c_str(), f.workers, job.accuracy() * 100, out->time_to_target_s,
        out->epochs_to_target, job.round(), out->bytes_to_target / 1048576.0, mib_per_epoch);
  } else {
    std::printf(
        "artel %s, %u workers: target %.2f%% not reached; %s test accuracy after %.1f s "
        "(%.2f epochs, %u rounds), %.1f MiB per epoch\n",
        f.mode.c_str(), f.workers, f.target * 100,
        job.accuracy() < 0 ? "no"
                           : (std::to_string(job.accuracy() * 100).substr(0, 5) + "%").c_str(),
        out->elapsed_s, epochs, job.round(), mib_per_epoch);
  }
  if (!f.json && utilization >= 0) {
    std::printf("compute utilization %.0f%% (%.1f s of training compute over %u workers)\n",
                utilization * 100, out->compute_ms / 1000.0, f.workers);
  }
  return out->reached ? 0 : 3;
}

}  // namespace
}  // namespace artel

int main(int argc, char** argv) { return artel::Main(argc, argv); }
