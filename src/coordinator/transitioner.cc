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

// Comparisons that are not Ready go to `pending` (and count as different).
std::vector<AnswerClass> Classify(const std::vector<ReplicaInfo*>& replicas,
                                  const Validator& validator,
                                  std::vector<std::pair<uint64_t, uint64_t>>& pending) {
  std::vector<AnswerClass> classes;
  for (ReplicaInfo* r : replicas) {
    if (IsSuccess(*r)) {
      auto it = std::find_if(classes.begin(), classes.end(), [&](const AnswerClass& c) {
        if (c.app_error) return false;
        if (!validator.Ready(*c.members.front(), *r)) {
          pending.push_back(VerdictKey(c.members.front()->id(), r->id()));
          return false;
        }
        return validator.Equivalent(*c.members.front(), *r);
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

// Sets a replica's validity. A result that becomes valid earns its credit
// when `credit` is set; one that becomes invalid (or unknown) loses it.
void SetValidity(const v1::TaskInfo& task, ReplicaInfo& r, v1::Validity v, bool credit,
                 TransitionResult& out) {
  double c = 0;
  if (v == v1::VALIDITY_VALID) c = credit ? CreditFor(task, r) : r.credit();
  if (r.validity() == v && r.credit() == c) return;
  if (r.validity() != v && v == v1::VALIDITY_INVALID) out.invalid_workers.push_back(r.worker_id());
  r.set_validity(v);
  r.set_credit(c);
  out.changed_replicas.push_back(r.id());
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

ReplicaInfo* Find(const std::vector<ReplicaInfo*>& replicas, uint64_t id) {
  for (ReplicaInfo* r : replicas) {
    if (r->id() == id) return r;
  }
  return nullptr;
}

// A finished task still judges replicas that report late: a success is
// valid if it matches the canonical result (it earns no credit: it was not
// needed).
void JudgeLateReports(v1::TaskInfo& task, const std::vector<ReplicaInfo*>& replicas,
                      const Validator& validator, TransitionResult& out) {
  if (task.outcome() != v1::OUTCOME_SUCCESS) return;
  const ReplicaInfo* canonical = Find(replicas, task.canonical_replica());
  if (canonical == nullptr) return;
  for (ReplicaInfo* r : replicas) {
    if (!IsSuccess(*r) || r->validity() != v1::VALIDITY_UNKNOWN) continue;
    if (!validator.Ready(*canonical, *r)) {
      out.pending_validations.push_back(VerdictKey(canonical->id(), r->id()));
      continue;
    }
    SetValidity(task, *r,
                validator.Equivalent(*canonical, *r) ? v1::VALIDITY_VALID : v1::VALIDITY_INVALID,
                false, out);
  }
}

uint32_t Room(const v1::TaskInfo& task, const std::vector<ReplicaInfo*>& replicas) {
  const int64_t room = static_cast<int64_t>(task.spec().policy().max_total_replicas()) -
                       static_cast<int64_t>(replicas.size());
  return static_cast<uint32_t>(std::max<int64_t>(room, 0));
}

enum class Check { kPending, kDone, kDisagrees };

// The spot check of a finished, unverified task: compares check replicas
// with the canonical one and asks for a check replica while none runs.
Check SpotCheck(v1::TaskInfo& task, const std::vector<ReplicaInfo*>& replicas,
                const Validator& validator, int64_t now_ms, TransitionResult& out) {
  ReplicaInfo* canonical = Find(replicas, task.canonical_replica());
  if (canonical == nullptr) return Check::kDone;
  uint32_t in_progress = 0, faults = 0;
  for (ReplicaInfo* r : replicas) {
    if (r == canonical) continue;
    if (IsSuccess(*r) && !validator.Ready(*canonical, *r)) {
      out.pending_validations.push_back(VerdictKey(canonical->id(), r->id()));
      return Check::kPending;
    }
    if (IsSuccess(*r) && validator.Equivalent(*canonical, *r)) {
      SetValidity(task, *r, v1::VALIDITY_VALID, true, out);
      out.confirmed_workers.push_back(canonical->worker_id());
      out.confirmed_workers.push_back(r->worker_id());
      task.set_unverified(false);
      task.set_spot_check(false);
      out.task_changed = true;
      CancelInProgress(replicas, now_ms, out);
      return Check::kDone;
    }
    if (IsSuccess(*r) || IsAppError(*r)) return Check::kDisagrees;
    if (IsHostFault(*r)) ++faults;
    if (r->state() == v1::REPLICA_STATE_IN_PROGRESS) ++in_progress;
  }
  if (in_progress > 0) return Check::kPending;
  if (faults > task.spec().policy().max_error_replicas() || Room(task, replicas) == 0) {
    task.set_spot_check(false);  // no worker could check it; it stays unverified
    out.task_changed = true;
    return Check::kDone;
  }
  out.replicas_needed = 1;
  return Check::kPending;
}

void ReopenInPlace(v1::TaskInfo& task, const std::vector<ReplicaInfo*>& replicas,
                   const std::string& reason, TransitionResult& out) {
  task.set_state(v1::TASK_STATE_PENDING);
  task.set_outcome(v1::OUTCOME_NONE);
  task.set_reason(reason);
  task.set_canonical_replica(0);
  task.clear_outputs();
  task.set_finished_at_ms(0);
  task.set_unverified(false);
  task.set_spot_check(false);
  task.set_replicated(true);
  task.set_reopened(task.reopened() + 1);
  out.task_changed = true;
  for (ReplicaInfo* r : replicas) {
    if (r->validity() == v1::VALIDITY_UNKNOWN && r->credit() == 0) continue;
    r->set_validity(v1::VALIDITY_UNKNOWN);
    r->set_credit(0);
    out.changed_replicas.push_back(r->id());
  }
}

void TransitOpen(v1::TaskInfo& task, const std::vector<ReplicaInfo*>& replicas,
                 const Validator& validator, int64_t now_ms, TransitionResult& out);

}  // namespace

double CreditFor(const v1::TaskInfo& task, const v1::ReplicaInfo& r) {
  const int64_t elapsed = std::max<int64_t>(r.finished_at_ms() - r.created_at_ms(), 0);
  const uint64_t cap = task.spec().resources().wall_time_ms();
  const int64_t ms = cap > 0 ? std::min<int64_t>(elapsed, static_cast<int64_t>(cap)) : elapsed;
  return std::max<uint32_t>(task.spec().resources().cores(), 1) * static_cast<double>(ms) / 1000.0;
}

TransitionResult EndAsSystemError(v1::TaskInfo& task, const std::vector<ReplicaInfo*>& replicas,
                                  const std::string& reason, int64_t now_ms) {
  TransitionResult out;
  if (task.state() == v1::TASK_STATE_DONE) return out;
  CancelInProgress(replicas, now_ms, out);
  Finish(task, v1::OUTCOME_SYSTEM_ERROR, reason, now_ms, out);
  return out;
}

TransitionResult Reopen(v1::TaskInfo& task, const std::vector<ReplicaInfo*>& replicas,
                        const Validator& validator, const std::string& reason, int64_t now_ms) {
  TransitionResult out;
  if (task.state() != v1::TASK_STATE_DONE) return out;
  ReopenInPlace(task, replicas, reason, out);
  TransitOpen(task, replicas, validator, now_ms, out);
  return out;
}

TransitionResult Transit(v1::TaskInfo& task, const std::vector<ReplicaInfo*>& replicas,
                         const Validator& validator, int64_t now_ms) {
  TransitionResult out;
  if (task.state() == v1::TASK_STATE_DONE) {
    if (!task.unverified() || !task.spot_check()) {
      JudgeLateReports(task, replicas, validator, out);
      return out;
    }
    if (SpotCheck(task, replicas, validator, now_ms, out) != Check::kDisagrees) return out;
    ReopenInPlace(task, replicas,
                  "re-validating: a spot check disagreed with the result of worker " +
                      Find(replicas, task.canonical_replica())->worker_id(),
                  out);
  }
  TransitOpen(task, replicas, validator, now_ms, out);
  return out;
}

namespace {

void TransitOpen(v1::TaskInfo& task, const std::vector<ReplicaInfo*>& replicas,
                 const Validator& validator, int64_t now_ms, TransitionResult& out) {
  const v1::RedundancyPolicy& policy = task.spec().policy();
  auto end = [&](const std::string& reason) {
    TransitionResult r = EndAsSystemError(task, replicas, reason, now_ms);
    out.task_changed = true;
    out.changed_replicas.insert(out.changed_replicas.end(), r.changed_replicas.begin(),
                                r.changed_replicas.end());
    out.cancelled_replicas.insert(out.cancelled_replicas.end(), r.cancelled_replicas.begin(),
                                  r.cancelled_replicas.end());
    out.replicas_needed = 0;
  };
  if (policy.deadline_ms() > 0 &&
      now_ms >= task.created_at_ms() + static_cast<int64_t>(policy.deadline_ms())) {
    return end("deadline of " + std::to_string(policy.deadline_ms() / 1000) +
               " s passed before a quorum was reached");
  }

  bool undecided = false;
  if (policy.adaptive() && !task.replicated()) {
    ReplicaInfo* solo = Find(replicas, task.solo_replica());
    if (solo != nullptr && IsSuccess(*solo)) {
      // One trusted replica: accepted alone, unverified.
      task.set_canonical_replica(solo->id());
      *task.mutable_outputs() = solo->outputs();
      task.set_unverified(true);
      SetValidity(task, *solo, v1::VALIDITY_VALID, true, out);
      Finish(task, v1::OUTCOME_SUCCESS, "", now_ms, out);
      if (task.spot_check()) SpotCheck(task, replicas, validator, now_ms, out);
      return;
    }
    if (solo != nullptr && IsAppError(*solo)) {
      task.set_replicated(true);  // a failure alone is not an answer: ask a quorum
      out.task_changed = true;
    } else if (solo != nullptr && IsHostFault(*solo)) {
      task.set_solo_replica(0);  // decide again on the next placement
      task.set_spot_check(false);
      out.task_changed = true;
      undecided = true;
    } else if (solo == nullptr) {
      undecided = true;
    }
  }

  std::vector<AnswerClass> classes = Classify(replicas, validator, out.pending_validations);
  if (!out.pending_validations.empty()) {
    // Decide nothing until the validator app has judged these pairs.
    uint32_t running = 0;
    for (const ReplicaInfo* r : replicas) running += r->state() == v1::REPLICA_STATE_IN_PROGRESS;
    const v1::TaskState state = running > 0 ? v1::TASK_STATE_RUNNING : v1::TASK_STATE_PENDING;
    if (task.state() != state) {
      task.set_state(state);
      out.task_changed = true;
    }
    return;
  }
  auto best = std::max_element(classes.begin(), classes.end(), [](const auto& a, const auto& b) {
    return a.members.size() < b.members.size();
  });
  const size_t best_size = best == classes.end() ? 0 : best->members.size();

  if (!undecided && best_size >= policy.min_quorum() &&
      !(policy.adaptive() && !task.replicated())) {
    ReplicaInfo* canonical = best->members.front();
    task.set_canonical_replica(canonical->id());
    *task.mutable_outputs() = canonical->outputs();
    for (const AnswerClass& c : classes) {
      for (ReplicaInfo* r : c.members) {
        if (&c == &*best) {
          if (r->validity() != v1::VALIDITY_VALID && best_size >= 2) {
            out.confirmed_workers.push_back(r->worker_id());
          }
          SetValidity(task, *r, v1::VALIDITY_VALID, true, out);
        } else if (!c.app_error) {
          SetValidity(task, *r, v1::VALIDITY_INVALID, false, out);
        }
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
    return;
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
    return end(std::to_string(host_faults) +
               " replicas failed on their hosts (max_error_replicas=" +
               std::to_string(policy.max_error_replicas()) + "); last: " + last_fault);
  }

  int64_t wanted;
  if (undecided) {
    wanted = 1;  // the placement decides between one trusted replica and a quorum
  } else if (policy.adaptive() && !task.replicated()) {
    wanted = 0;  // the solo replica is running
  } else {
    const int64_t for_target = static_cast<int64_t>(policy.target_replicas()) - completed;
    const int64_t for_quorum = static_cast<int64_t>(policy.min_quorum()) - best_size;
    wanted = std::max<int64_t>({for_target, for_quorum, 0});
  }
  int64_t needed = std::max<int64_t>(0, wanted - in_progress);
  needed = std::min<int64_t>(needed, Room(task, replicas));
  if (needed == 0 && in_progress == 0) {
    return end("no quorum of " + std::to_string(policy.min_quorum()) + " after " +
               std::to_string(replicas.size()) + " replicas (" + std::to_string(classes.size()) +
               " different answers; max_total_replicas=" +
               std::to_string(policy.max_total_replicas()) + ")");
  }
  out.replicas_needed = static_cast<uint32_t>(needed);
  const v1::TaskState state = in_progress > 0 ? v1::TASK_STATE_RUNNING : v1::TASK_STATE_PENDING;
  if (task.state() != state) {
    task.set_state(state);
    out.task_changed = true;
  }
}

}  // namespace

}  // namespace artel
