#include "coordinator/transitioner.h"

#include <algorithm>
#include <map>

namespace artel {
namespace {

using v1::ReplicaInfo;

// Replicas that gave the same answer: equivalent successes, or app errors
// with the same exit code.
struct AnswerClass {
  bool app_error = false;
  std::vector<ReplicaInfo*> members;
};

bool IsSuccess(const ReplicaInfo& r) {
  return r.state() == v1::REPLICA_STATE_REPORTED && r.result() == v1::RESULT_KIND_SUCCESS;
}
bool IsAppError(const ReplicaInfo& r) {
  return r.state() == v1::REPLICA_STATE_REPORTED && r.result() == v1::RESULT_KIND_APP_ERROR;
}
bool IsHostFault(const ReplicaInfo& r) {
  return r.state() == v1::REPLICA_STATE_LOST ||
         (r.state() == v1::REPLICA_STATE_REPORTED && r.result() == v1::RESULT_KIND_HOST_ERROR);
}

std::vector<AnswerClass> Classify(const std::vector<ReplicaInfo*>& replicas,
                                  const Validator& validator) {
  std::vector<AnswerClass> classes;
  for (ReplicaInfo* r : replicas) {
    if (IsSuccess(*r)) {
      auto it = std::find_if(classes.begin(), classes.end(), [&](const AnswerClass& c) {
        return !c.app_error && validator.Equivalent(*c.members.front(), *r);
      });
      if (it == classes.end())
        classes.push_back({false, {r}});
      else
        it->members.push_back(r);
    } else if (IsAppError(*r)) {
      auto it = std::find_if(classes.begin(), classes.end(), [&](const AnswerClass& c) {
        return c.app_error && c.members.front()->exit_code() == r->exit_code();
      });
      if (it == classes.end())
        classes.push_back({true, {r}});
      else
        it->members.push_back(r);
    }
  }
  return classes;
}

void SetValidity(ReplicaInfo& r, v1::Validity v, TransitionResult& out) {
  if (r.validity() == v) return;
  r.set_validity(v);
  out.changed_replicas.push_back(r.id());
  if (v == v1::VALIDITY_INVALID) out.invalid_workers.push_back(r.worker_id());
}

void CancelInProgress(const std::vector<ReplicaInfo*>& replicas, int64_t now_ms,
                      TransitionResult& out) {
  for (ReplicaInfo* r : replicas) {
    if (r->state() != v1::REPLICA_STATE_IN_PROGRESS) continue;
    r->set_state(v1::REPLICA_STATE_CANCELLED);
    r->set_finished_at_ms(now_ms);
    out.changed_replicas.push_back(r->id());
    out.cancelled_replicas.push_back(r->id());
  }
}

void Finish(v1::TaskInfo& task, v1::Outcome outcome, const std::string& reason, int64_t now_ms,
            TransitionResult& out) {
  task.set_state(v1::TASK_STATE_DONE);
  task.set_outcome(outcome);
  task.set_reason(reason);
  task.set_finished_at_ms(now_ms);
  out.task_changed = true;
}

// A finished task still judges replicas that report late: a success is
// valid if it matches the canonical result.
void JudgeLateReports(v1::TaskInfo& task, const std::vector<ReplicaInfo*>& replicas,
                      const Validator& validator, TransitionResult& out) {
  if (task.outcome() != v1::OUTCOME_SUCCESS) return;
  const ReplicaInfo* canonical = nullptr;
  for (ReplicaInfo* r : replicas) {
    if (r->id() == task.canonical_replica()) canonical = r;
  }
  if (canonical == nullptr) return;
  for (ReplicaInfo* r : replicas) {
    if (!IsSuccess(*r) || r->validity() != v1::VALIDITY_UNKNOWN) continue;
    SetValidity(
        *r, validator.Equivalent(*canonical, *r) ? v1::VALIDITY_VALID : v1::VALIDITY_INVALID, out);
  }
}

}  // namespace

TransitionResult EndAsSystemError(v1::TaskInfo& task, const std::vector<ReplicaInfo*>& replicas,
                                  const std::string& reason, int64_t now_ms) {
  TransitionResult out;
  if (task.state() == v1::TASK_STATE_DONE) return out;
  CancelInProgress(replicas, now_ms, out);
  Finish(task, v1::OUTCOME_SYSTEM_ERROR, reason, now_ms, out);
  return out;
}

TransitionResult Transit(v1::TaskInfo& task, const std::vector<ReplicaInfo*>& replicas,
                         const Validator& validator, int64_t now_ms) {
  TransitionResult out;
  if (task.state() == v1::TASK_STATE_DONE) {
    JudgeLateReports(task, replicas, validator, out);
    return out;
  }
  const v1::RedundancyPolicy& policy = task.spec().policy();
  if (policy.deadline_ms() > 0 &&
      now_ms >= task.created_at_ms() + static_cast<int64_t>(policy.deadline_ms())) {
    return EndAsSystemError(task, replicas,
                            "deadline of " + std::to_string(policy.deadline_ms() / 1000) +
                                " s passed before a quorum was reached",
                            now_ms);
  }

  std::vector<AnswerClass> classes = Classify(replicas, validator);
  auto best = std::max_element(classes.begin(), classes.end(), [](const auto& a, const auto& b) {
    return a.members.size() < b.members.size();
  });
  const size_t best_size = best == classes.end() ? 0 : best->members.size();

  if (best_size >= policy.min_quorum()) {
    ReplicaInfo* canonical = best->members.front();
    task.set_canonical_replica(canonical->id());
    *task.mutable_outputs() = canonical->outputs();
    for (const AnswerClass& c : classes) {
      if (c.app_error) continue;
      for (ReplicaInfo* r : c.members) {
        SetValidity(*r, &c == &*best ? v1::VALIDITY_VALID : v1::VALIDITY_INVALID, out);
      }
    }
    CancelInProgress(replicas, now_ms, out);
    if (best->app_error) {
      Finish(task, v1::OUTCOME_APP_ERROR,
             "the app failed alike on " + std::to_string(best_size) + " worker(s) with exit code " +
                 std::to_string(canonical->exit_code()) +
                 (canonical->error().empty() ? "" : " (" + canonical->error() + ")") +
                 "; its stdout and stderr are in the result",
             now_ms, out);
    } else {
      Finish(task, v1::OUTCOME_SUCCESS, "", now_ms, out);
    }
    return out;
  }

  uint32_t host_faults = 0, in_progress = 0, completed = 0;
  std::string last_fault;
  for (const ReplicaInfo* r : replicas) {
    if (IsHostFault(*r)) {
      ++host_faults;
      last_fault = r->error();
    }
    if (r->state() == v1::REPLICA_STATE_IN_PROGRESS) ++in_progress;
    if (IsSuccess(*r) || IsAppError(*r)) ++completed;
  }
  if (host_faults > policy.max_error_replicas()) {
    return EndAsSystemError(
        task, replicas,
        std::to_string(host_faults) + " replicas failed on their hosts (max_error_replicas=" +
            std::to_string(policy.max_error_replicas()) + "); last: " + last_fault,
        now_ms);
  }

  const int64_t for_target = static_cast<int64_t>(policy.target_replicas()) - completed;
  const int64_t for_quorum = static_cast<int64_t>(policy.min_quorum()) - best_size;
  const int64_t wanted = std::max<int64_t>({for_target, for_quorum, 0});
  int64_t needed = std::max<int64_t>(0, wanted - in_progress);
  const int64_t room =
      static_cast<int64_t>(policy.max_total_replicas()) - static_cast<int64_t>(replicas.size());
  needed = std::min(needed, std::max<int64_t>(room, 0));
  if (needed == 0 && in_progress == 0) {
    return EndAsSystemError(task, replicas,
                            "no quorum of " + std::to_string(policy.min_quorum()) + " after " +
                                std::to_string(replicas.size()) + " replicas (" +
                                std::to_string(classes.size()) +
                                " different answers; max_total_replicas=" +
                                std::to_string(policy.max_total_replicas()) + ")",
                            now_ms);
  }
  out.replicas_needed = static_cast<uint32_t>(needed);
  const v1::TaskState state = in_progress > 0 ? v1::TASK_STATE_RUNNING : v1::TASK_STATE_PENDING;
  if (task.state() != state) {
    task.set_state(state);
    out.task_changed = true;
  }
  return out;
}

}  // namespace artel
