#include "cli/train_progress.h"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <thread>

#include "common/units.h"

namespace artel::cli {
namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(500);
constexpr int kReplayRounds = 10;  // rounds shown when following a job with history

nlohmann::json OrNull(double value) {
  return value < 0 ? nlohmann::json(nullptr) : nlohmann::json(value);
}

void PrintRound(const v1::TrainingJob& job, const v1::RoundRecord& r, bool json) {
  if (json) {
    std::cout << RoundJson(job, r).dump() << std::endl;
    return;
  }
  char line[256];
  std::snprintf(line, sizeof(line),
                "round %5u  epoch %7.3f  loss %8.4f  test acc %7s  %9.0f samples/s", r.round(),
                r.epoch(), r.loss(), AccuracyString(r.accuracy()).c_str(), r.samples_per_s());
  std::cout << line;
  const int64_t eta = EtaMs(job, r);
  if (eta > 0) std::cout << "  eta " << FormatDurationMs(static_cast<uint64_t>(eta));
  std::cout << std::endl;
}

// Prints the outcome of a finished job; returns the exit code.
int Finish(Client& client, const v1::TrainingJob& job, const FollowOptions& options) {
  const std::string name = "training job " + std::to_string(job.id());
  const int64_t took = job.finished_at_ms() - job.created_at_ms();
  if (options.json) std::cout << TrainingJobJson(job).dump() << std::endl;
  if (job.state() == v1::TRAINING_STATE_FAILED) {
    std::cerr << "artel: " << name << " failed after " << job.round()
              << " round(s): " << (job.reason().empty() ? "no reason given" : job.reason())
              << std::endl;
    return 1;
  }
  if (!options.json) {
    std::cout << name << " done: " << job.round() << " round(s), " << job.samples_seen()
              << " samples, test accuracy " << AccuracyString(job.accuracy());
    if (took > 0) std::cout << ", took " << FormatDurationMs(static_cast<uint64_t>(took));
    std::cout << std::endl;
  }
  if (options.out.empty()) {
    if (!options.json) {
      std::cout << "fetch the trained model with `artel job export " << job.id()
                << " --out trained.pt`" << std::endl;
    }
    return 0;
  }
  absl::Status s = ExportModel(client, job, options.out, options.json);
  if (!s.ok()) {
    std::cerr << "artel: " << s.message() << std::endl;
    return 1;
  }
  return 0;
}

}  // namespace

std::string TrainModeName(v1::TrainMode mode) {
  switch (mode) {
    case v1::TRAIN_MODE_SYNC:
      return "sync";
    case v1::TRAIN_MODE_LOCAL:
      return "local";
    case v1::TRAIN_MODE_ASYNC:
      return "async";
    case v1::TRAIN_MODE_FULLBATCH:
      return "fullbatch";
    default:
      return "default";
  }
}

absl::StatusOr<v1::TrainMode> ParseTrainMode(const std::string& name) {
  for (v1::TrainMode m : {v1::TRAIN_MODE_SYNC, v1::TRAIN_MODE_LOCAL, v1::TRAIN_MODE_ASYNC,
                          v1::TRAIN_MODE_FULLBATCH}) {
    if (name == TrainModeName(m)) return m;
  }
  return absl::InvalidArgumentError("unknown training mode '" + name +
                                    "'; use sync, local, async or fullbatch");
}

std::string TrainingStateName(v1::TrainingState state) {
  switch (state) {
    case v1::TRAINING_STATE_INIT:
      return "init";
    case v1::TRAINING_STATE_RUNNING:
      return "running";
    case v1::TRAINING_STATE_EXPORTING:
      return "exporting";
    case v1::TRAINING_STATE_DONE:
      return "done";
    case v1::TRAINING_STATE_FAILED:
      return "failed";
    default:
      return "unknown";
  }
}

std::string AccuracyString(double accuracy) {
  if (accuracy < 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f%%", accuracy * 100);
  return buf;
}

int64_t EtaMs(const v1::TrainingJob& job, const v1::RoundRecord& record) {
  const int64_t elapsed = record.finished_at_ms() - job.created_at_ms();
  if (elapsed <= 0 || job.created_at_ms() <= 0) return -1;
  double done = 0;  // fraction of the target reached
  const v1::TrainingSpec& spec = job.spec();
  if (spec.rounds() > 0) {
    done = static_cast<double>(record.round()) / spec.rounds();
  } else {
    done = record.epoch() / (spec.epochs() > 0 ? spec.epochs() : 1);
  }
  if (done <= 0) return -1;
  if (done >= 1) return 0;
  return static_cast<int64_t>(static_cast<double>(elapsed) * (1 - done) / done);
}

nlohmann::json RoundJson(const v1::TrainingJob& job, const v1::RoundRecord& r) {
  const int64_t eta = EtaMs(job, r);
  return {{"job", job.id()},
          {"round", r.round()},
          {"epoch", r.epoch()},
          {"loss", r.loss()},
          {"accuracy", OrNull(r.accuracy())},
          {"test_loss", r.accuracy() < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.test_loss())},
          {"samples", r.samples()},
          {"samples_per_s", r.samples_per_s()},
          {"bytes_moved", r.bytes_moved()},
          {"compute_ms", r.compute_ms()},
          {"coordinator_ms", r.coordinator_ms()},
          {"finished_at_ms", r.finished_at_ms()},
          {"eta_ms", eta < 0 ? nlohmann::json(nullptr) : nlohmann::json(eta)}};
}

nlohmann::json TrainingJobJson(const v1::TrainingJob& job) {
  const double epoch = job.history().empty() ? 0.0 : job.history().rbegin()->epoch();
  nlohmann::json excluded = nlohmann::json::array();
  for (const v1::ExcludedWorker& e : job.excluded()) {
    excluded.push_back({{"worker", e.worker_id()}, {"round", e.round()}, {"reason", e.reason()}});
  }
  return {{"id", job.id()},
          {"aggregate", job.spec().aggregate().empty() ? "mean" : job.spec().aggregate()},
          {"clip_radius", job.spec().clip_radius()},
          {"excluded_workers", excluded},
          {"name", job.spec().name()},
          {"dataset", job.spec().dataset()},
          {"mode", TrainModeName(job.spec().mode())},
          {"workers", job.spec().workers()},
          {"batch_size", job.spec().batch_size()},
          {"optimizer", job.spec().optimizer()},
          {"lr", job.spec().lr()},
          {"lr_scale", job.spec().lr_scale().empty() ? "none" : job.spec().lr_scale()},
          {"compress", job.spec().compress()},
          {"state", TrainingStateName(job.state())},
          {"reason", job.reason()},
          {"round", job.round()},
          {"epoch", epoch},
          {"accuracy", OrNull(job.accuracy())},
          {"samples_seen", job.samples_seen()},
          {"bytes_moved", job.bytes_moved()},
          {"compute_ms", job.compute_ms()},
          {"compute_utilization", job.compute_utilization()},
          {"coordinator_ms_per_round",
           job.round() == 0 ? 0.0 : job.coordinator_ms() / static_cast<double>(job.round())},
          {"running_since_ms", job.running_since_ms()},
          {"created_at_ms", job.created_at_ms()},
          {"finished_at_ms", job.finished_at_ms()},
          {"trained_model_digest", job.trained_model_digest()}};
}

absl::Status ExportModel(Client& client, const v1::TrainingJob& job, const std::string& out,
                         bool json) {
  const std::string id = std::to_string(job.id());
  if (job.state() == v1::TRAINING_STATE_FAILED) {
    return absl::FailedPreconditionError("training job " + id + " failed (" + job.reason() +
                                         "); it has no trained model");
  }
  if (job.state() != v1::TRAINING_STATE_DONE || job.trained_model_digest().empty()) {
    return absl::FailedPreconditionError(
        "training job " + id + " is still " + TrainingStateName(job.state()) + " (round " +
        std::to_string(job.round()) + "); wait for it with `artel job wait " + id + " --out " +
        out + "`");
  }
  RETURN_IF_ERROR(client.blobs().DownloadToFile(job.trained_model_digest(), out));
  (json ? std::cerr : std::cout) << "wrote the trained model (TorchScript) to " << out
                                 << "; load it with torch.jit.load('" << out << "')" << std::endl;
  return absl::OkStatus();
}

int FollowTraining(Client& client, uint64_t id, const FollowOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  std::map<uint32_t, bool> printed;  // round -> printed with its accuracy
  bool first = true, unreachable = false;
  v1::TrainingState state = v1::TRAINING_STATE_UNSPECIFIED;
  while (true) {
    absl::StatusOr<v1::TrainingJob> job = client.GetTrainingJob(id);
    if (!job.ok() && job.status().code() != absl::StatusCode::kUnavailable) {
      std::cerr << "artel: " << job.status().message() << std::endl;
      return 1;
    }
    if (!job.ok() && !unreachable) {
      std::cerr << "artel: coordinator unreachable; retrying (Ctrl-C stops following)" << std::endl;
    }
    unreachable = !job.ok();
    if (job.ok()) {
      const auto& history = job->history();
      // The state goes before the replayed history, and after new rounds.
      const bool announce = job->state() != state && !options.json;
      if (announce && first) {
        std::cout << "training job " << id << ": " << TrainingStateName(job->state()) << std::endl;
      }
      if (first && history.size() > kReplayRounds) {
        const int skip = history.size() - kReplayRounds;
        for (int i = 0; i < skip; ++i) printed[history[i].round()] = true;
        if (!options.json) {
          std::cout << "... " << skip << " earlier round(s); `artel job show " << id
                    << "` lists them all" << std::endl;
        }
      }
      for (const v1::RoundRecord& r : history) {
        auto it = printed.find(r.round());
        if (it == printed.end()) {
          PrintRound(*job, r, options.json);
          printed[r.round()] = r.accuracy() >= 0;
        } else if (!it->second && r.accuracy() >= 0) {  // evaluated after it was printed
          it->second = true;
          if (options.json) {
            std::cout << RoundJson(*job, r).dump() << std::endl;
          } else {
            char line[128];
            std::snprintf(line, sizeof(line), "round %5u  evaluated: test acc %s, test loss %.4f",
                          r.round(), AccuracyString(r.accuracy()).c_str(), r.test_loss());
            std::cout << line << std::endl;
          }
        }
      }
      if (announce && !first) {
        std::cout << "training job " << id << ": " << TrainingStateName(job->state()) << std::endl;
      }
      first = false;
      state = job->state();
      if (state == v1::TRAINING_STATE_DONE || state == v1::TRAINING_STATE_FAILED) {
        return Finish(client, *job, options);
      }
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if (options.timeout_ms > 0 && elapsed >= std::chrono::milliseconds(options.timeout_ms)) {
      std::cerr << "artel: stopped following after " << FormatDurationMs(options.timeout_ms)
                << "; training job " << id
                << (state == v1::TRAINING_STATE_UNSPECIFIED
                        ? " was never reached (coordinator unreachable)"
                        : " is still " + TrainingStateName(state) + " on the coordinator")
                << "; `artel job wait " << id << "` follows it again" << std::endl;
      return 3;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace artel::cli
