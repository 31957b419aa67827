// The task state machine (BOINC's transitioner and validator in one step).
//
// Given a task and all its replicas, Transit decides, from the replicas'
// reports alone, whether the task is finished and how, which replicas are
// valid, which to stop, and how many new replicas it needs now. It is a pure
// function of its inputs and `now_ms`: no I/O, no clock of its own, so the
// coordinator calls it after every change and tests drive it with any time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "artel/v1/artel.pb.h"
#include "coordinator/validator.h"

namespace artel {

struct TransitionResult {
  bool task_changed = false;                 // the task record was modified
  std::vector<uint64_t> changed_replicas;    // replica records modified
  std::vector<uint64_t> cancelled_replicas;  // in-progress replicas now cancelled
  std::vector<std::string> invalid_workers;  // workers whose result just lost a vote
  // Workers whose result was just confirmed by an equivalent result of
  // another replica (a quorum of two or more, or a passed spot check).
  std::vector<std::string> confirmed_workers;
  uint32_t replicas_needed = 0;  // new replicas to create now
  // Replica pairs (VerdictKey) whose comparison is not Ready: the task
  // waits, deciding nothing, until their verdicts are in.
  std::vector<std::pair<uint64_t, uint64_t>> pending_validations;
};

// Credit, in core-seconds, that replica `r` of `task` earns once its result
// is accepted: cores x seconds from placement to report, capped by the
// task's wall-time limit when it has one.
double CreditFor(const v1::TaskInfo& task, const v1::ReplicaInfo& r);

// Adaptive tasks (policy.adaptive): an undecided task asks for one replica;
// the coordinator then marks it solo (trusted worker) or replicated. A solo
// success is accepted alone, unverified; a solo app error makes the task
// replicated (that replica keeps its vote); a solo host fault makes it
// undecided again. A finished unverified task that owes a spot check asks
// for one more replica; an equivalent check result verifies it, any other
// answer re-opens the task (as Reopen does) so that a quorum decides.
// Accepted replicas get their credit (CreditFor); outvoted ones lose it.
// Late reports that match the canonical result are valid but earn nothing.
//
// REQUIRES: `task.spec().policy()` has its defaults filled in; `replicas`
// are all replicas of `task` (any order).
TransitionResult Transit(v1::TaskInfo& task, const std::vector<v1::ReplicaInfo*>& replicas,
                         const Validator& validator, int64_t now_ms);

// Re-opens a finished task whose canonical result is in doubt (its worker
// was caught lying, or a spot check disagreed): back to PENDING with no
// outcome or outputs, `reason` saying why, replicated at the policy's
// min_quorum; earlier results lose their validity and credit but keep their
// votes, so fresh replicas of other owners decide. No-op on an unfinished
// task. The result includes the replicas now needed.
TransitionResult Reopen(v1::TaskInfo& task, const std::vector<v1::ReplicaInfo*>& replicas,
                        const Validator& validator, const std::string& reason, int64_t now_ms);

// Ends a task as a system error with `reason` (cancel, deadline), cancelling
// every replica still in progress. No-op on a finished task.
TransitionResult EndAsSystemError(v1::TaskInfo& task, const std::vector<v1::ReplicaInfo*>& replicas,
                                  const std::string& reason, int64_t now_ms);

}  // namespace artel
