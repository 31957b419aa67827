// The worker-facing half of Coordinator: registration, heartbeats, placing
// replicas, reports, and the periodic expiry of leases and silent workers.
#include <openssl/rand.h>

#include "coordinator/coordinator.h"
#include "coordinator/reliability.h"
#include "coordinator/transitioner.h"

namespace artel {
namespace {

absl::Status UnknownWorker(const std::string& id) {
  return absl::FailedPreconditionError("worker '" + id +
                                       "' is not registered with this coordinator; register again");
}

std::string NewWorkerId() {
  unsigned char raw[6];
  ARTEL_CHECK(RAND_bytes(raw, sizeof(raw)) == 1, "no randomness available");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "w-";
  for (unsigned char c : raw) {
    id.push_back(kHex[c >> 4]);
    id.push_back(kHex[c & 15]);
  }
  return id;
}

// Whose a worker is, for the one-replica-per-owner rule: its owner, or
// itself when it registered before tokens had owners.
const std::string& OwnerKey(const v1::WorkerInfo& w) {
  return w.owner().empty() ? w.id() : w.owner();
}

}  // namespace

absl::StatusOr<v1::RegisterResponse> Coordinator::Register(const v1::RegisterRequest& request,
                                                           const std::string& owner) {
  if (request.cores() == 0) {
    return absl::InvalidArgumentError("a worker must offer at least one core; pass --cores N");
  }
  v1::RegisterResponse response;
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now = clock_.NowMs();
    const std::string id = request.worker_id().empty() ? NewWorkerId() : request.worker_id();
    WorkerEntry& w = workers_[id];
    w.info.set_id(id);
    w.info.set_name(request.name());
    w.info.set_cores(request.cores());
    w.info.set_memory_bytes(request.memory_bytes());
    w.info.set_disk_bytes(request.disk_bytes());
    w.info.set_gpus(request.gpus());
    w.info.set_gpu_memory_bytes(request.gpu_memory_bytes());
    w.info.set_sandboxed(request.sandboxed());
    w.info.set_owner(owner.empty() ? id : owner);
    w.info.set_alive(true);
    w.last_heartbeat_ms = now;
    w.info.set_last_heartbeat_ms(now);
    WriteBatch batch;
    // A worker that registers again has restarted: what it ran is gone.
    std::vector<uint64_t> orphans;
    for (uint64_t rid : in_progress_) {
      if (replicas_.at(rid).worker_id() == id) orphans.push_back(rid);
    }
    for (uint64_t rid : orphans) {
      replicas_.at(rid).set_abandoned(true);
      LoseReplicaLocked(replicas_.at(rid), "worker " + id + " restarted", batch);
    }
    batch.workers.push_back(w.info);
    seq = EnqueueLocked(std::move(batch));
    response.set_worker_id(id);
    response.set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
    response.set_app_public_key(options_.app_public_key);
  }
  AwaitDurable(seq);
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> Coordinator::Heartbeat(const v1::HeartbeatRequest& request) {
  v1::HeartbeatResponse response;
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    auto wit = workers_.find(request.worker_id());
    if (wit == workers_.end()) {
      response.set_reregister(true);
      return response;
    }
    const int64_t now = clock_.NowMs();
    WorkerEntry& w = wit->second;
    w.last_heartbeat_ms = now;
    WriteBatch batch;
    MarkAliveLocked(w, batch);
    for (const v1::RunningReplica& running : request.running()) {
      auto rit = replicas_.find(running.replica_id());
      if (rit == replicas_.end() || rit->second.worker_id() != request.worker_id()) {
        response.add_cancel(running.replica_id());
        continue;
      }
      v1::ReplicaInfo& r = rit->second;
      TaskEntry& task = tasks_.at(r.task_id());
      const bool useful =
          r.state() == v1::REPLICA_STATE_IN_PROGRESS ||
          (r.state() == v1::REPLICA_STATE_LOST && task.info.state() != v1::TASK_STATE_DONE);
      if (!useful) {
        response.add_cancel(r.id());
        continue;
      }
      if (r.state() == v1::REPLICA_STATE_IN_PROGRESS) {
        r.set_lease_expiry_ms(now + static_cast<int64_t>(task.info.spec().policy().lease_ms()));
      }
      if (!running.checkpoint_digest().empty() &&
          running.checkpoint_digest() != r.checkpoint_digest() &&
          blobs_.Has(running.checkpoint_digest())) {
        r.set_checkpoint_digest(running.checkpoint_digest());
        batch.replicas.push_back(r);
        if (r.state() == v1::REPLICA_STATE_LOST) {
          TaskEntry& t = tasks_.at(r.task_id());
          t.info.set_resume_checkpoint(r.checkpoint_digest());
          batch.tasks.push_back(t.info);
        }
      }
    }
    for (const std::string& key : request.executors()) {
      if (retired_executors_.count(key)) response.add_retire_executors(key);
    }
    seq = EnqueueLocked(std::move(batch));
  }
  AwaitDurable(seq);
  return response;
}

absl::StatusOr<v1::FetchWorkResponse> Coordinator::FetchWork(const v1::FetchWorkRequest& request) {
  v1::FetchWorkResponse response;
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    auto wit = workers_.find(request.worker_id());
    if (wit == workers_.end()) return UnknownWorker(request.worker_id());
    WorkerEntry& w = wit->second;
    w.last_heartbeat_ms = clock_.NowMs();
    WriteBatch batch;
    MarkAliveLocked(w, batch);
    PlacementRequest place;
    place.max_tasks = std::min(request.max_tasks(), options_.max_assignments_per_fetch);
    place.free_cores = request.free_cores();
    place.free_side_slots = request.free_side_slots();
    place.free_memory_bytes = request.free_memory_bytes();
    // GPU memory is not in the request: subtract what this worker holds.
    // And count what its owner's workers hold, against the owner's cap.
    const std::string owner = OwnerKey(w.info);
    uint64_t gpu_held = 0;
    uint32_t owner_held = 0;
    for (uint64_t rid : in_progress_) {
      const v1::ReplicaInfo& r = replicas_.at(rid);
      if (r.worker_id() == w.info.id()) gpu_held += tasks_.at(r.task_id()).needs.gpu_memory_bytes;
      auto holder = workers_.find(r.worker_id());
      if (holder != workers_.end() && OwnerKey(holder->second.info) == owner) ++owner_held;
    }
    place.max_tasks =
        std::min(place.max_tasks, options_.max_in_flight_per_owner -
                                      std::min(owner_held, options_.max_in_flight_per_owner));
    place.gpu_memory_bytes =
        w.info.gpu_memory_bytes() - std::min(gpu_held, w.info.gpu_memory_bytes());
    place.cached_digests.insert(request.cached_digests().begin(), request.cached_digests().end());
    const std::string worker_id = w.info.id();
    // No two replicas of a task on one worker, nor on two workers of one
    // owner: two workers of one liar must not form a quorum.
    auto pick = [&] {
      return scheduler_.Pick(
          place, [&](uint64_t id) -> const TaskNeeds& { return tasks_.at(id).needs; },
          [&](uint64_t id) {
            for (const std::string& avoid : tasks_.at(id).info.spec().avoid_workers()) {
              if (avoid == worker_id) return false;
            }
            for (uint64_t rid : tasks_.at(id).replica_ids) {
              const v1::ReplicaInfo& r = replicas_.at(rid);
              if (r.abandoned()) continue;
              if (r.worker_id() == worker_id) return false;
              auto other = workers_.find(r.worker_id());
              if (other != workers_.end() && OwnerKey(other->second.info) == owner) return false;
            }
            return true;
          });
    };
    std::vector<uint64_t> picked = pick();
    if (picked.empty() && request.wait_ms() > 0) {
      // Long poll: wait for new work instead of making the worker ask again.
      const absl::Time until =
          absl::Now() + absl::Milliseconds(std::min(request.wait_ms(), options_.max_fetch_wait_ms));
      while (picked.empty() && !work_.WaitWithDeadline(&mu_, until)) picked = pick();
      if (picked.empty()) picked = pick();
    }
    const int64_t now = clock_.NowMs();
    for (uint64_t task_id : picked) {
      TaskEntry& task = tasks_.at(task_id);
      const v1::TaskSpec& spec = task.info.spec();
      v1::ReplicaInfo r;
      r.set_id(next_replica_id_++);
      r.set_task_id(task_id);
      r.set_worker_id(worker_id);
      r.set_owner(owner);
      r.set_state(v1::REPLICA_STATE_IN_PROGRESS);
      r.set_created_at_ms(now);
      r.set_lease_expiry_ms(now + static_cast<int64_t>(spec.policy().lease_ms()));
      v1::Assignment* a = response.add_assignments();
      a->set_replica_id(r.id());
      a->set_task_id(task_id);
      a->set_app(spec.app());
      a->set_version(task.info.resolved_version());
      a->set_app_digest(task.app_digest);
      if (const v1::AppVersion* app = FindAppLocked(spec.app(), task.info.resolved_version())) {
        a->set_app_signature(app->signature());
      }
      *a->mutable_args() = spec.args();
      *a->mutable_inputs() = spec.inputs();
      *a->mutable_resources() = spec.resources();
      a->set_checkpoint_digest(task.info.resume_checkpoint());
      a->set_lease_ms(spec.policy().lease_ms());
      a->set_executor(spec.executor());
      batch.replicas.push_back(r);
      in_progress_.insert(r.id());
      task.replica_ids.push_back(r.id());
      if (DecideAdaptiveLocked(task, r, w.info)) batch.tasks.push_back(task.info);
      replicas_.emplace(r.id(), std::move(r));
      ++stats_.replicas;
      TransitLocked(task, batch);
    }
    seq = EnqueueLocked(std::move(batch));
  }
  AwaitDurable(seq);
  return response;
}

void Coordinator::MarkAliveLocked(WorkerEntry& w, WriteBatch& batch) {
  if (w.info.alive()) return;
  // Declared dead, then came back: what it ran was already replaced.
  w.info.set_alive(true);
  batch.workers.push_back(w.info);
}

void Coordinator::LoseReplicaLocked(v1::ReplicaInfo& replica, const std::string& why,
                                    WriteBatch& batch) {
  // A replica cancelled by its task ending earlier in the same pass stays so.
  if (replica.state() != v1::REPLICA_STATE_IN_PROGRESS) return;
  replica.set_state(v1::REPLICA_STATE_LOST);
  replica.set_error(why);
  replica.set_finished_at_ms(clock_.NowMs());
  in_progress_.erase(replica.id());
  ++stats_.lost;
  ++stats_.lost_total;
  batch.replicas.push_back(replica);
  TaskEntry& task = tasks_.at(replica.task_id());
  if (!replica.checkpoint_digest().empty()) {
    task.info.set_resume_checkpoint(replica.checkpoint_digest());
    batch.tasks.push_back(task.info);
  }
  auto w = workers_.find(replica.worker_id());
  if (w != workers_.end()) {
    w->second.info.set_errors(w->second.info.errors() + 1);
    batch.workers.push_back(w->second.info);
  }
  TransitLocked(task, batch);
}

absl::Status Coordinator::ApplyReportLocked(const std::string& worker_id,
                                            const v1::ReplicaReport& report, WriteBatch& batch) {
  auto rit = replicas_.find(report.replica_id());
  if (rit == replicas_.end() || rit->second.worker_id() != worker_id) {
    return absl::NotFoundError("replica " + std::to_string(report.replica_id()) +
                               " was not assigned to worker " + worker_id);
  }
  v1::ReplicaInfo& r = rit->second;
  // Reported already, or no longer needed: acknowledged, never counted twice.
  if (r.state() != v1::REPLICA_STATE_IN_PROGRESS && r.state() != v1::REPLICA_STATE_LOST) {
    return absl::OkStatus();
  }
  TaskEntry& task = tasks_.at(r.task_id());
  if (r.state() == v1::REPLICA_STATE_LOST && task.info.state() == v1::TASK_STATE_DONE) {
    return absl::OkStatus();
  }
  const bool was_lost = r.state() == v1::REPLICA_STATE_LOST;
  if (was_lost) --stats_.lost;
  r.set_state(v1::REPLICA_STATE_REPORTED);
  r.set_result(report.result());
  if (report.result() != v1::RESULT_KIND_SUCCESS && report.result() != v1::RESULT_KIND_APP_ERROR &&
      report.result() != v1::RESULT_KIND_HOST_ERROR) {
    r.set_result(v1::RESULT_KIND_HOST_ERROR);
    r.set_error("the worker reported no result kind");
  }
  r.set_exit_code(report.exit_code());
  r.set_error(report.error());
  r.set_runtime_ms(report.runtime_ms());
  r.set_compute_ms(report.compute_ms());
  r.set_finished_at_ms(clock_.NowMs());
  *r.mutable_outputs() = report.outputs();
  if (report.result() == v1::RESULT_KIND_SUCCESS || report.result() == v1::RESULT_KIND_APP_ERROR) {
    for (const v1::OutputFile& f : report.outputs()) {
      if (!blobs_.Has(f.digest())) {
        r.set_result(v1::RESULT_KIND_HOST_ERROR);
        r.set_error("output '" + f.name() + "' was reported but never uploaded");
        break;
      }
    }
  }
  in_progress_.erase(r.id());
  WorkerEntry& w = workers_.at(worker_id);
  if (r.result() != v1::RESULT_KIND_HOST_ERROR) {
    w.info.set_completed(w.info.completed() + 1);
  } else {
    RecordHostError(w.info, AppKey(task.info));
    if (!was_lost) w.info.set_errors(w.info.errors() + 1);  // a loss was already counted
  }
  batch.workers.push_back(w.info);
  batch.replicas.push_back(r);
  TransitLocked(task, batch);
  return absl::OkStatus();
}

absl::Status Coordinator::Report(const v1::ReportRequest& request) {
  uint64_t seq;
  absl::Status first_error;
  {
    absl::MutexLock lock(&mu_);
    auto wit = workers_.find(request.worker_id());
    if (wit == workers_.end()) return UnknownWorker(request.worker_id());
    wit->second.last_heartbeat_ms = clock_.NowMs();
    WriteBatch batch;
    MarkAliveLocked(wit->second, batch);
    for (const v1::ReplicaReport& report : request.reports()) {
      absl::Status s = ApplyReportLocked(request.worker_id(), report, batch);
      if (!s.ok() && first_error.ok()) first_error = s;
    }
    seq = EnqueueLocked(std::move(batch));
  }
  AwaitDurable(seq);
  return first_error;
}

absl::Status Coordinator::Tick() {
  uint64_t seq;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now = clock_.NowMs();
    WriteBatch batch;
    for (auto& [id, w] : workers_) {
      if (!w.info.alive() ||
          now - w.last_heartbeat_ms <= static_cast<int64_t>(options_.worker_timeout_ms)) {
        continue;
      }
      w.info.set_alive(false);
      w.info.set_last_heartbeat_ms(w.last_heartbeat_ms);
      batch.workers.push_back(w.info);
      std::vector<uint64_t> orphans;
      for (uint64_t rid : in_progress_) {
        if (replicas_.at(rid).worker_id() == id) orphans.push_back(rid);
      }
      for (uint64_t rid : orphans) {
        LoseReplicaLocked(replicas_.at(rid),
                          "worker " + id + " stopped heartbeating for " +
                              std::to_string((now - w.last_heartbeat_ms) / 1000) + " s",
                          batch);
      }
    }
    std::vector<uint64_t> expired;
    for (uint64_t rid : in_progress_) {
      if (replicas_.at(rid).lease_expiry_ms() < now) expired.push_back(rid);
    }
    for (uint64_t rid : expired) {
      LoseReplicaLocked(replicas_.at(rid), "lease expired without a heartbeat", batch);
    }
    std::vector<uint64_t> deadline_tasks(with_deadline_.begin(), with_deadline_.end());
    for (uint64_t tid : deadline_tasks) TransitLocked(tasks_.at(tid), batch);
    seq = EnqueueLocked(std::move(batch));
  }
  AwaitDurable(seq);
  return RunValidations();
}

v1::ListWorkersResponse Coordinator::ListWorkers() const {
  v1::ListWorkersResponse out;
  absl::ReaderMutexLock lock(&mu_);
  std::map<std::string, uint32_t> running;
  for (uint64_t rid : in_progress_) ++running[replicas_.at(rid).worker_id()];
  std::map<std::string, double> credit;
  for (const auto& [rid, r] : replicas_) {
    if (r.credit() > 0) credit[r.worker_id()] += r.credit();
  }
  for (const auto& [id, w] : workers_) {
    v1::WorkerInfo* info = out.add_workers();
    *info = w.info;
    info->set_last_heartbeat_ms(w.last_heartbeat_ms);
    info->set_running(running[id]);
    info->set_credit(credit[id]);
  }
  return out;
}

v1::ListCreditResponse Coordinator::ListCredit() const {
  absl::ReaderMutexLock lock(&mu_);
  std::map<std::string, v1::OwnerCredit> by_owner;
  for (const auto& [id, w] : workers_) {
    v1::OwnerCredit& c = by_owner[OwnerKey(w.info)];
    c.set_owner(OwnerKey(w.info));
    c.set_workers(c.workers() + 1);
  }
  for (const auto& [rid, r] : replicas_) {
    if (r.credit() <= 0) continue;
    const std::string& owner = r.owner().empty() ? r.worker_id() : r.owner();
    v1::OwnerCredit& c = by_owner[owner];
    c.set_owner(owner);
    c.set_credit(c.credit() + r.credit());
    c.set_results(c.results() + 1);
  }
  std::vector<v1::OwnerCredit> sorted;
  for (auto& [owner, c] : by_owner) sorted.push_back(std::move(c));
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.credit() > b.credit(); });
  v1::ListCreditResponse out;
  for (v1::OwnerCredit& c : sorted) *out.add_owners() = std::move(c);
  return out;
}

}  // namespace artel
