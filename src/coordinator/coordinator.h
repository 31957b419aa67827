// The coordinator's engine: all task, replica, worker, app and token state,
// kept in memory and written through a Store with group commit.
//
// Every operation that changes state mutates memory under one lock, queues
// the changed records as one WriteBatch, and returns only after that batch
// is durable; so nothing acknowledged is lost if the process is killed. The
// gRPC services (client_service.cc, worker_service.cc) are thin adapters.
//
// Thread-safe. Times come from the injected Clock (milliseconds).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "artel/v1/artel.pb.h"
#include "blob/blob_store.h"
#include "common/clock.h"
#include "common/status.h"
#include "coordinator/scheduler.h"
#include "coordinator/transitioner.h"
#include "coordinator/validator.h"
#include "sandbox/sandbox.h"
#include "store/commit_queue.h"
#include "store/store.h"

namespace artel {

struct CoordinatorOptions {
  uint64_t heartbeat_interval_ms = 1000;  // told to workers at registration [1 s]
  uint64_t worker_timeout_ms = 5000;      // silence before a worker's replicas are lost [5 s]
  uint32_t max_tasks_per_submit = 100'000;
  uint32_t max_assignments_per_fetch = 512;
  uint32_t max_fetch_wait_ms = 5000;  // longest long poll of FetchWork [5 s]
  // Most replicas the workers of one owner may hold at once, so that one
  // party cannot take over the grid's work with many machines [1024].
  uint32_t max_in_flight_per_owner = 1024;
  // Seeds the draw of spot checks (adaptive replication); 0: a random seed.
  uint64_t random_seed = 0;
  // The project's Ed25519 public key (PEM). When set, AddApp accepts only
  // apps it signed, and workers learn it at registration. [none]
  std::string app_public_key;
  // SHA-256 of the TLS certificate the server presents; new tokens carry it
  // after a '#' so that a client can pin it. [none: plain TCP]
  std::string tls_fingerprint;
  // Told of every durable commit (metrics). [none]
  CommitObserver on_commit;
};

// Counters for the summary printed by the demo and benchmarks, the
// dashboard and the metrics. `tasks`, `replicas`, `lost_total` and `invalid`
// only grow (from what the store held at start); `lost` is the number of
// replicas lost now (a late report can clear it); pending, running and done
// are tasks in that state now, success/app_error/system_error the done ones
// by outcome.
struct CoordinatorStats {
  uint64_t tasks = 0, pending = 0, running = 0, done = 0, success = 0, app_error = 0,
           system_error = 0;
  uint64_t replicas = 0, lost = 0, lost_total = 0, invalid = 0, commits = 0, batches = 0;
};

class Coordinator {
 public:
  // `store`, `blobs` and `clock` must outlive the coordinator.
  // `validator_sandbox` (may be null: then tasks cannot name a validator
  // app) runs validator apps on this host; it must outlive the coordinator.
  Coordinator(Store& store, BlobStore& blobs, const Clock& clock, CoordinatorOptions options = {},
              Sandbox* validator_sandbox = nullptr);
  ~Coordinator();

  // Reads the store; resumes unfinished tasks. REQUIRES: called once, first.
  absl::Status Load();
  // Creates an admin token if none exists; returns it (nullopt if one did).
  absl::StatusOr<std::optional<std::string>> EnsureAdminToken();

  // ---- tokens
  // The role of a valid token. Unauthenticated, saying why and what to do,
  // for a missing, unknown, revoked or expired one.
  absl::StatusOr<v1::Role> Authenticate(const std::string& token) const;
  // A new token's secret and how it is listed. `owner` names who holds it
  // (letters, digits, '.', '_', '-', '@', at most 64; empty: the token's own
  // id); `expires_in_ms` 0 never expires. Errors: InvalidArgument for an
  // unknown role, a malformed owner or a negative expiry.
  absl::StatusOr<v1::CreateTokenResponse> CreateToken(v1::Role role, const std::string& owner = "",
                                                      int64_t expires_in_ms = 0);
  // Every token, newest first, without secrets.
  v1::ListTokensResponse ListTokens() const;
  // Revokes the token `id` (as ListTokens shows it; revoking twice keeps the
  // first time): its next RPC fails. NotFound for an unknown id;
  // FailedPrecondition for the last admin token that is still valid.
  absl::StatusOr<v1::TokenInfo> RevokeToken(const std::string& id);

  // ---- clients
  absl::StatusOr<v1::SubmitResponse> Submit(const v1::SubmitRequest& request);
  absl::StatusOr<v1::TaskInfo> GetTask(uint64_t id) const;
  absl::StatusOr<v1::TaskInfo> Cancel(uint64_t id);
  v1::ListTasksResponse ListTasks(const v1::ListTasksRequest& request) const;
  // Every worker, with its credit (core-seconds of accepted results).
  v1::ListWorkersResponse ListWorkers() const;
  // Credit per owner, highest first.
  v1::ListCreditResponse ListCredit() const;
  absl::StatusOr<v1::JobStatus> GetJob(uint64_t id) const;
  // Registers an app version. With a project key (CoordinatorOptions), the
  // app must carry its valid signature: PermissionDenied says what to do.
  absl::StatusOr<v1::AppVersion> AddApp(const v1::AppVersion& app);
  v1::ListAppsResponse ListApps() const;
  // Returns the events of `ids` whose state differs from `*last_seen`
  // (updating it), waiting up to `timeout_ms` for one. Every returned
  // event is durable. NOT_FOUND if an id is unknown.
  absl::StatusOr<std::vector<v1::TaskEvent>> WaitForEvents(
      const std::vector<uint64_t>& ids, std::map<uint64_t, v1::TaskEvent>* last_seen,
      int64_t timeout_ms);

  // ---- workers
  // `owner`: the owner of the token the worker called with (OwnerOf).
  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& request,
                                                const std::string& owner = "");
  // The owner of a known token ("" for an unknown one or one made before
  // tokens had owners).
  std::string OwnerOf(const std::string& token) const;
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  absl::StatusOr<v1::FetchWorkResponse> FetchWork(const v1::FetchWorkRequest& request);
  absl::Status Report(const v1::ReportRequest& request);

  // Expires leases and deadlines, declares silent workers dead, and runs
  // the validator apps that tasks wait for (RunValidations). The server
  // calls it a few times a second; tests call it after moving a FakeClock.
  absl::Status Tick();
  // Runs the validator app of every replica pair a task waits for, in the
  // sandbox and outside the lock, records the verdicts (kept in memory: a
  // restarted coordinator asks again) and moves those tasks on.
  absl::Status RunValidations();

  CoordinatorStats Stats() const;

  // ---- training (see training_driver.h for the driver that runs jobs)
  absl::StatusOr<v1::Dataset> AddDataset(const v1::Dataset& dataset);
  v1::ListDatasetsResponse ListDatasets() const;
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& name) const;
  // Checks the spec, fills its defaults and stores a new job in INIT state.
  absl::StatusOr<v1::TrainingJob> StartTraining(const v1::TrainingSpec& spec);
  absl::StatusOr<v1::TrainingJob> GetTrainingJob(uint64_t id) const;
  v1::ListTrainingJobsResponse ListTrainingJobs() const;
  // Durably replaces a job's record (the driver's checkpoint of a round).
  absl::Status SaveTrainingJob(const v1::TrainingJob& job);
  // Workers end their warm executors of `key` (TaskSpec.executor): its
  // work is over. Kept in memory only; executors also end when idle.
  void RetireExecutor(const std::string& key);
  // A counter that grows whenever a task changes state; WaitForTaskChange
  // returns as soon as it differs from `seen` (or after `timeout_ms`), with
  // its value then. Lets a job driver react to finished tasks at once.
  uint64_t TaskChanges() const;
  uint64_t WaitForTaskChange(uint64_t seen, int64_t timeout_ms) const;
  BlobStore& blobs() { return blobs_; }
  const BlobStore& blobs() const { return blobs_; }
  const Clock& clock() const { return clock_; }

 private:
  struct TaskEntry {
    v1::TaskInfo info;  // replicas field unused; see replica_ids
    std::vector<uint64_t> replica_ids;
    TaskNeeds needs;
    std::string app_digest;
  };
  struct WorkerEntry {
    v1::WorkerInfo info;
    int64_t last_heartbeat_ms = 0;
  };

  // Runs the transitioner on one task and records what changed in `batch`.
  void TransitLocked(TaskEntry& task, WriteBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a transition of `task` (which was in `old_state` with
  // `old_outcome`): replicas, worker reliability, counters, the scheduler;
  // re-opens the unverified results of every worker it caught lying.
  void ApplyTransitionLocked(TaskEntry& task, const TransitionResult& r, v1::TaskState old_state,
                             v1::Outcome old_outcome, WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A worker was caught returning a wrong result: every result it gave that
  // was accepted unverified is re-validated by fresh replicas, and its solo
  // replicas still running need a quorum.
  void ReopenResultsOfLocked(const std::string& worker_id, WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Decides, as the first replica of an undecided adaptive task is placed
  // on `worker`, whether it runs alone (and draws its spot check). True if
  // the task record changed.
  bool DecideAdaptiveLocked(TaskEntry& task, const v1::ReplicaInfo& replica,
                            const v1::WorkerInfo& worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A worker that shows signs of life is alive again (and watched again).
  void MarkAliveLocked(WorkerEntry& w, WriteBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks an in-progress replica lost (host fault) and re-runs its task.
  void LoseReplicaLocked(v1::ReplicaInfo& replica, const std::string& why, WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<v1::ReplicaInfo*> ReplicasOfLocked(const TaskEntry& task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ValidateSpecLocked(v1::TaskSpec& spec, std::string* app_digest) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ApplyReportLocked(const std::string& worker_id, const v1::ReplicaReport& report,
                                 WriteBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves a task between the per-job counters after a state change.
  void CountLocked(const v1::TaskInfo& task, v1::TaskState old_state, int delta_old)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::TaskInfo FullTaskLocked(const TaskEntry& task) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  const v1::AppVersion* FindAppLocked(const std::string& name, const std::string& version) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The validator app `app_digest` on two replicas' outputs, in the
  // sandbox: exit 0 equivalent, 1 different; anything else counts as
  // different and is logged. Call without the lock.
  bool JudgeWithApp(const std::string& app_digest, const std::vector<v1::OutputFile>& a,
                    const std::vector<v1::OutputFile>& b);
  // Queues `batch` (under the lock, to keep commit order = memory order).
  uint64_t EnqueueLocked(WriteBatch batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits for a queued batch; a failed commit stops the process, since
  // memory would otherwise disagree with the database.
  void AwaitDurable(uint64_t seq);

  Store& store_;
  BlobStore& blobs_;
  const Clock& clock_;
  const CoordinatorOptions options_;
  CommitQueue commits_;

  mutable absl::Mutex mu_;
  mutable absl::CondVar changed_;  // signalled when any task changes state
  absl::CondVar work_;             // signalled when a task needs new replicas
  uint64_t last_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t task_changes_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> retired_executors_ ABSL_GUARDED_BY(mu_);
  uint64_t next_task_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_replica_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_job_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, TaskEntry> tasks_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, v1::ReplicaInfo> replicas_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> in_progress_ ABSL_GUARDED_BY(mu_);    // replica ids
  std::set<uint64_t> with_deadline_ ABSL_GUARDED_BY(mu_);  // unfinished task ids
  std::map<std::string, WorkerEntry> workers_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, v1::JobStatus> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::Dataset> datasets_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, v1::TrainingJob> training_jobs_ ABSL_GUARDED_BY(mu_);
  uint64_t next_training_job_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::pair<std::string, std::string>, v1::AppVersion> apps_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, TokenRecord> tokens_ ABSL_GUARDED_BY(mu_);  // by hash
  Scheduler scheduler_ ABSL_GUARDED_BY(mu_);
  Sandbox* const validator_sandbox_;
  Verdicts verdicts_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> pending_validations_
      ABSL_GUARDED_BY(mu_);  // replica pair -> task
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  CoordinatorStats stats_ ABSL_GUARDED_BY(mu_);
};

// The app every coordinator knows without registration: a worker runs it
// in-process and it does nothing (used by `artel bench tasks`).
inline constexpr char kNoopApp[] = "builtin.noop";
inline constexpr char kBuiltinDigestPrefix[] = "builtin:";

}  // namespace artel
