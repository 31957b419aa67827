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
  uint32_t replicas_needed = 0;              // new replicas to create now
};

// REQUIRES: `task.spec().policy()` has its defaults filled in; `replicas`
// are all replicas of `task` (any order).
TransitionResult Transit(v1::TaskInfo& task, const std::vector<v1::ReplicaInfo*>& replicas,
                         const Validator& validator, int64_t now_ms);

// Ends a task as a system error with `reason` (cancel, deadline), cancelling
// every replica still in progress. No-op on a finished task.
TransitionResult EndAsSystemError(v1::TaskInfo& task, const std::vector<v1::ReplicaInfo*>& replicas,
                                  const std::string& reason, int64_t now_ms);

}  // namespace artel
