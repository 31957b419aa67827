// Runs one assigned replica end to end on a worker: fetch the app and its
// inputs through the blob cache, lay out a private run directory, run the
// app in the sandbox, hash and upload its outputs, and build the report.
#pragma once

#include <filesystem>
#include <optional>
#include <random>
#include <string>

#include "absl/synchronization/mutex.h"
#include "artel/v1/artel.pb.h"
#include "blob/blob_cache.h"
#include "blob/blob_client.h"
#include "sandbox/sandbox.h"
#include "worker/executor_pool.h"

namespace artel {

struct RunnerOptions {
  // Testing aid: the share of results whose bytes are flipped before they
  // are hashed, as a broken or dishonest host would (1: every result; each
  // result drawn independently). Never use it on a real grid.
  double corrupt_rate = 0;
  // Testing aid: an attack the app itself plays, passed to it (and to warm
  // executors) as ARTEL_INJECT_FAULT, e.g. "sign-flip" for artel-ml. [none]
  std::string app_fault;
  size_t max_captured_bytes = 1 << 20;  // stdout/stderr kept per stream [1 MiB]
  uint32_t max_processes = 256;         // per replica [256]
};

// The directories of one replica under the worker's data dir.
struct RunDirs {
  std::filesystem::path root, app, work, out, checkpoint;
  explicit RunDirs(const std::filesystem::path& root);
};

// Thread-safe: one Run per replica, several at once.
class ReplicaRunner {
 public:
  // All borrowed; must outlive the runner. Without `executors`, every task
  // runs as a plain process.
  ReplicaRunner(BlobCache& cache, BlobClient& blobs, Sandbox& sandbox, RunnerOptions options,
                ExecutorPool* executors = nullptr)
      : cache_(cache),
        blobs_(blobs),
        sandbox_(sandbox),
        options_(options),
        executors_(executors),
        rng_(std::random_device{}()) {}

  // Runs `a` in `dirs` (created here, removed by the caller), in a warm
  // executor when the task names one and its app is persistent (then
  // `dirs` stays unused), else as a plain process. Returns nullopt when
  // cancelled (nothing to report). Host faults become
  // RESULT_KIND_HOST_ERROR reports, never a crash.
  std::optional<v1::ReplicaReport> Run(const v1::Assignment& a, const RunDirs& dirs,
                                       const CancelFlag& cancel);

 private:
  absl::Status Prepare(const v1::Assignment& a, const RunDirs& dirs);
  // Hands `a` to `executor` (then back to the pool).
  std::optional<v1::ReplicaReport> RunWarm(const v1::Assignment& a,
                                           std::unique_ptr<WarmExecutor> executor,
                                           const CancelFlag& cancel);
  absl::Status CollectOutputs(const std::filesystem::path& out_dir, const SandboxResult& result,
                              v1::ReplicaReport& report);
  // Copies a cached blob to `dest` (private to this replica).
  absl::Status Materialize(const std::string& digest, const std::filesystem::path& dest,
                           bool executable);

  // Draws whether this result is corrupted (RunnerOptions.corrupt_rate).
  bool DrawCorrupt();

  BlobCache& cache_;
  BlobClient& blobs_;
  Sandbox& sandbox_;
  const RunnerOptions options_;
  ExecutorPool* const executors_;
  absl::Mutex rng_mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(rng_mu_);
};

}  // namespace artel
