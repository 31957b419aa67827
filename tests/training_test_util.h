// Helpers of the training tests: a small Fashion-MNIST data set and a
// TorchScript model made once per test binary, a cluster with the artel-ml
// app registered, and polling of training jobs.
//
// Needs /usr/bin/python3 with torch (to make the model and to compute
// single-process references with tests/training_reference.py) and the
// Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist; the tests
// skip when either is missing. Not thread-safe.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cluster_test_util.h"

namespace artel::testing {

// Samples in the small data set cut from Fashion-MNIST, and per shard.
inline constexpr int kTrainSamples = 2000;
inline constexpr int kTestSamples = 500;
inline constexpr int kShardSize = 500;

// Runs `/usr/bin/python3 tests/training_reference.py args...` (stderr kept
// separate); exit_code as in RunArtel.
CommandResult RunReference(const std::vector<std::string>& args,
                           std::chrono::milliseconds timeout = std::chrono::seconds(120));
// The last stdout line of a reference run as JSON; fails the test (and
// returns null) when it does not parse.
nlohmann::json ReferenceJson(const CommandResult& result);

class TrainingTest : public ClusterTest {
 protected:
  // Makes the model and data files (once for all tests); records why the
  // tests must skip when python's torch or the data set is missing.
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  // Skips the test when SetUpTestSuite found something missing.
  void SetUp() override;

  // Files made by SetUpTestSuite.
  static std::filesystem::path ModelFile();      // net.pt (TorchScript, seed 0)
  static std::filesystem::path TrainFile();      // train.safetensors: x F32 [2000,1,28,28], y I64
  static std::filesystem::path TestFile();       // test.safetensors: 500 samples
  static std::filesystem::path ArtelMlBinary();  // next to the artel binary

  // StartCluster(coordinator_args), registers artel-ml version 1, starts
  // `workers` workers named w0, w1, ... (their ids in worker_ids_) and
  // registers the data set "small" (4 training shards, 1 test shard) with
  // `artel data add`. Fails fatally on any error.
  void StartTrainingCluster(int workers, std::vector<std::string> coordinator_args = {});
  // ARTEL_COORDINATOR and ARTEL_TOKEN (admin) for RunArtel.
  std::vector<std::string> Env();
  // Uploads ModelFile() and starts a job with `spec` (model digest and data
  // set "small" filled in); returns its id, 0 with a test failure on error.
  uint64_t StartJob(v1::TrainingSpec spec);
  // `artel train --model net.pt --data small --json <args>`; returns the
  // job id from its first line (0 with a test failure if none).
  uint64_t TrainWithCli(const std::vector<std::string>& args, CommandResult* result = nullptr,
                        std::chrono::milliseconds timeout = std::chrono::seconds(120));
  // Polls the job until `condition` (errors, e.g. a restarting coordinator,
  // count as not yet); the job, or nullopt on timeout.
  std::optional<v1::TrainingJob> WaitJob(
      uint64_t id, const std::function<bool(const v1::TrainingJob&)>& condition,
      std::chrono::milliseconds timeout);
  // Waits for DONE; fails the test (with the job's state and reason) if it
  // fails or takes longer than `timeout`.
  v1::TrainingJob WaitJobDone(uint64_t id,
                              std::chrono::milliseconds timeout = std::chrono::seconds(90));

  std::vector<std::string> worker_ids_;
};

}  // namespace artel::testing
