// Following a training job from the command line, shared by `artel train`
// and `artel job wait`: one line (or JSON object) per finished round, then the
// outcome, and the trained model downloaded where asked.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "artel/v1/artel.pb.h"
#include "client/client.h"
#include "common/status.h"

namespace artel::cli {

// "sync", "local", "async", "fullbatch"; "default" for UNSPECIFIED.
std::string TrainModeName(v1::TrainMode mode);
// InvalidArgument naming the accepted modes for anything else.
absl::StatusOr<v1::TrainMode> ParseTrainMode(const std::string& name);
// "init", "running", "exporting", "done", "failed".
std::string TrainingStateName(v1::TrainingState state);

// Milliseconds still to go after `record`, extrapolated from the pace since
// the job was created towards its rounds or epochs target (1 epoch when the
// spec gives neither). -1 when it cannot be estimated.
int64_t EtaMs(const v1::TrainingJob& job, const v1::RoundRecord& record);

// One round as JSON: {"job", "round", "epoch", "loss", "accuracy" (null when
// not evaluated), "test_loss", "samples", "samples_per_s", "bytes_moved",
// "finished_at_ms", "eta_ms" (null when unknown)}.
nlohmann::json RoundJson(const v1::TrainingJob& job, const v1::RoundRecord& record);
// A summary of the job without its history or spec.
nlohmann::json TrainingJobJson(const v1::TrainingJob& job);
// Accuracy as "84.12%", or "-" when < 0 (not evaluated yet).
std::string AccuracyString(double accuracy);

struct FollowOptions {
  uint64_t timeout_ms = 0;  // give up following after this long; 0 = no limit
  bool json = false;        // one JSON object per line instead of text
  std::string out;          // where to write the trained model when done; "" = don't
};

// Polls the job every 0.5 s and prints each new round (and each accuracy that
// arrives for an earlier round) until it is DONE or FAILED. When following a
// job that already has a long history, only its last 10 rounds are printed.
// Rides out a coordinator restart (UNAVAILABLE). Returns the exit code:
// 0 done (model written to `out` when given), 1 failed or the download
// failed, 3 timed out (the job keeps running).
int FollowTraining(Client& client, uint64_t id, const FollowOptions& options);

// Downloads the trained model of a DONE job to `out` and says where (to
// stderr when `json`). FailedPrecondition when the job is not done.
absl::Status ExportModel(Client& client, const v1::TrainingJob& job, const std::string& out,
                         bool json);

}  // namespace artel::cli
