// How far a worker is trusted with one app version, for adaptive
// replication (DESIGN.md §5).
//
// The rule: a worker is trusted with an app version once its last
// kTrustStreak results of that version were each confirmed by another
// owner's equivalent result, and over its whole record with that version at
// most one result in kValidPerInvalid was outvoted. BOINC resets a streak
// to zero on any fault and trusts again after it; so a worker that lies on
// one result in eleven earns trust back every few dozen results. Here each
// lie caught also raises the bar by kValidPerInvalid confirmed results, so a
// worker caught lying even a few times is replicated for the rest of a long
// run, while an honest worker with one bad result (a flaky machine) is
// trusted again after a hundred good ones.
//
// Plain functions on the WorkerInfo record, which the coordinator keeps
// durable; not thread-safe (the coordinator holds its lock).
#pragma once

#include <string>

#include "artel/v1/artel.pb.h"

namespace artel {

inline constexpr uint32_t kTrustStreak = 10;
inline constexpr uint64_t kValidPerInvalid = 100;

// "NAME@VERSION", the key of a task's app version.
std::string AppKey(const v1::TaskInfo& task);

// The worker's record with `app`, added empty if it has none.
v1::Reliability& ReliabilityOf(v1::WorkerInfo& worker, const std::string& app);
// True when `worker` is trusted with `app` (see above); false without a record.
bool Trusted(const v1::WorkerInfo& worker, const std::string& app);

// A result of `app` confirmed by another owner's equivalent result.
void RecordConfirmed(v1::WorkerInfo& worker, const std::string& app);
// A result of `app` outvoted (wrong): the streak restarts.
void RecordInvalid(v1::WorkerInfo& worker, const std::string& app);
// A host error reported while running `app`: the streak restarts.
void RecordHostError(v1::WorkerInfo& worker, const std::string& app);

}  // namespace artel
