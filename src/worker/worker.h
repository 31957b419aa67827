// The worker agent: registers with a coordinator, heartbeats, fetches work
// when it has room, runs replicas (built-in apps in-process, others in the
// sandbox), uploads checkpoints with its heartbeats and reports results.
//
// Every connection is opened by the worker. While the coordinator is down
// the worker keeps its running replicas and retries; reports wait in a
// queue until acknowledged (the coordinator ignores repeats).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "artel/v1/artel.grpc.pb.h"
#include "blob/blob_cache.h"
#include "blob/blob_client.h"
#include "common/clock.h"
#include "sandbox/sandbox.h"
#include "tls/tls.h"
#include "worker/executor_pool.h"
#include "worker/replica_runner.h"

namespace artel {

struct WorkerOptions {
  std::string coordinator = "127.0.0.1:7700";
  std::string token;
  std::filesystem::path data_dir;      // worker.id, blob cache, run dirs
  std::string name;                    // shown by `artel workers` [host name]
  uint32_t cores = 1;                  // task slots by core [1]
  uint64_t memory_bytes = 4ull << 30;  // memory offered to tasks [4 GiB]
  uint64_t disk_bytes = 10ull << 30;   // blob cache budget [10 GiB]
  uint32_t gpus = 0;                   // GPUs offered [0]
  uint64_t gpu_memory_bytes = 0;       // memory of one GPU [0]
  uint64_t idle_poll_ms = 50;          // recheck for free slots when full [50 ms]
  uint64_t fetch_wait_ms = 2000;       // long poll of one FetchWork [2 s]
  // Keep persistent apps warm across the tasks of one job (TaskSpec.executor)
  // [true]; false runs every task as a plain process.
  bool warm_executors = true;
  int64_t executor_idle_ms = 120'000;  // an idle executor ends after this [2 min]
  uint32_t side_slots = 1;             // side tasks (Resources.side) at once [1]
  // The project's public key (PEM): run only apps it signed. Empty: the key
  // pinned in data_dir/app-key.pub, else the one the coordinator gives at
  // the first registration (then pinned), else none (unsigned apps run).
  std::string app_public_key;
  // How to verify the coordinator; when none is chosen, the pin the token
  // carries (SECRET#FINGERPRINT), else plain TCP.
  tls::Trust trust;
  RunnerOptions runner;
};

class Worker {
 public:
  // `sandbox` is borrowed and must outlive the worker.
  Worker(WorkerOptions options, Sandbox& sandbox);
  ~Worker();

  // Runs until Stop() (from another thread or a signal handler thread).
  // Returns an error only for what retrying cannot fix (e.g. a bad token).
  absl::Status Run();
  void Stop();

 private:
  struct Running {
    v1::Assignment assignment;
    CancelFlag cancel;
    std::string checkpoint_fingerprint;
    std::string checkpoint_digest;
    std::thread thread;
    bool finished = false;
    std::chrono::steady_clock::time_point received;  // when the assignment arrived
  };

  absl::Status Register();
  void HeartbeatLoop();
  void ReportLoop();
  void Execute(uint64_t replica_id);
  void UploadCheckpoints();
  void ReapFinished();
  // Keeps the project key the coordinator offers, unless one is in use.
  void PinAppKeyLocked(const std::string& offered) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // With a project key: a host-error report for an app it did not sign
  // (unsigned, re-signed or altered), which then never runs; else nullopt.
  std::optional<v1::ReplicaReport> RefuseUnsigned(const v1::Assignment& a);
  void QueueReport(v1::ReplicaReport report);
  // Records the overhead of reports the coordinator acknowledged: from the
  // assignment's arrival to the committed report, minus the app's compute
  // time; logs a summary every kOverheadWindow tasks.
  void RecordOverhead(const v1::ReportRequest& acked);
  grpc::ClientContext* Prepare(grpc::ClientContext& ctx, int timeout_ms) const;

  WorkerOptions options_;
  Sandbox& sandbox_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  std::unique_ptr<BlobClient> blobs_;
  std::unique_ptr<BlobCache> cache_;
  RealClock clock_;
  std::unique_ptr<ExecutorPool> executors_;
  std::unique_ptr<ReplicaRunner> runner_;
  std::atomic<bool> stop_{false};

  absl::Mutex mu_;
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  std::string app_key_ ABSL_GUARDED_BY(mu_);  // the project key in use, PEM
  std::map<uint64_t, std::unique_ptr<Running>> running_ ABSL_GUARDED_BY(mu_);
  uint32_t used_cores_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t used_side_slots_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t used_memory_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::ReplicaReport> reports_ ABSL_GUARDED_BY(mu_);
  absl::CondVar reports_cv_;
  absl::CondVar slot_freed_;  // a running replica finished
  uint64_t heartbeat_interval_ms_ ABSL_GUARDED_BY(mu_) = 1000;
  // Replica -> arrival time, for reports not yet acknowledged.
  std::map<uint64_t, std::chrono::steady_clock::time_point> received_ ABSL_GUARDED_BY(mu_);
  std::vector<double> overhead_ms_ ABSL_GUARDED_BY(mu_);  // since the last summary
};

}  // namespace artel
