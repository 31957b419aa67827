#include "coordinator/policy.h"

#include <string>

namespace artel {

v1::RedundancyPolicy WithDefaults(const v1::RedundancyPolicy& in) {
  v1::RedundancyPolicy p = in;
  if (p.min_quorum() == 0) p.set_min_quorum(1);
  if (p.target_replicas() == 0) p.set_target_replicas(p.min_quorum());
  if (p.max_error_replicas() == 0) p.set_max_error_replicas(kDefaultMaxErrorReplicas);
  if (p.max_total_replicas() == 0) {
    p.set_max_total_replicas(std::max(kDefaultMaxTotalReplicas, p.target_replicas()));
  }
  if (p.lease_ms() == 0) p.set_lease_ms(kDefaultLeaseMs);
  if (p.adaptive() && p.spot_check_rate() == 0) p.set_spot_check_rate(kDefaultSpotCheckRate);
  return p;
}

v1::Resources WithDefaults(const v1::Resources& in) {
  v1::Resources r = in;
  if (r.cores() == 0) r.set_cores(1);
  if (r.memory_bytes() == 0) r.set_memory_bytes(kDefaultTaskMemoryBytes);
  return r;
}

absl::Status CheckPolicy(const v1::RedundancyPolicy& p) {
  auto n = [](uint64_t v) { return std::to_string(v); };
  if (p.min_quorum() > kMaxQuorum) {
    return absl::InvalidArgumentError("quorum " + n(p.min_quorum()) + " is above the limit of " +
                                      n(kMaxQuorum) + "; lower --quorum");
  }
  if (p.target_replicas() < p.min_quorum()) {
    return absl::InvalidArgumentError(
        "replicas " + n(p.target_replicas()) + " is below quorum " + n(p.min_quorum()) +
        ": a quorum needs at least that many replicas; raise --replicas");
  }
  if (p.max_total_replicas() > kMaxTotalReplicasLimit) {
    return absl::InvalidArgumentError("max total replicas " + n(p.max_total_replicas()) +
                                      " is above the limit of " + n(kMaxTotalReplicasLimit) +
                                      "; lower --max-total");
  }
  if (p.min_quorum() > p.max_total_replicas()) {
    return absl::InvalidArgumentError("quorum " + n(p.min_quorum()) +
                                      " is above max total replicas " + n(p.max_total_replicas()) +
                                      ": the quorum could never be reached; raise --max-total or "
                                      "lower --quorum");
  }
  if (p.target_replicas() > p.max_total_replicas()) {
    return absl::InvalidArgumentError("replicas " + n(p.target_replicas()) +
                                      " is above max total replicas " + n(p.max_total_replicas()) +
                                      "; raise --max-total or lower --replicas");
  }
  if (p.lease_ms() < kMinLeaseMs) {
    return absl::InvalidArgumentError("lease " + n(p.lease_ms()) +
                                      " ms is too short for workers to heartbeat; use at least 1s");
  }
  if (p.spot_check_rate() != 0 && !p.adaptive()) {
    return absl::InvalidArgumentError(
        "a spot-check rate only applies to adaptive replication; add --adaptive or drop "
        "--spot-check");
  }
  if (p.adaptive() && !(p.spot_check_rate() > 0 && p.spot_check_rate() <= 1)) {
    return absl::InvalidArgumentError("spot-check rate " + std::to_string(p.spot_check_rate()) +
                                      " is not in (0, 1]; e.g. --spot-check 0.1 checks one "
                                      "result in ten");
  }
  if (p.adaptive() && p.min_quorum() < 2) {
    return absl::InvalidArgumentError(
        "--adaptive lowers a quorum of 2 or more to one trusted replica; with quorum " +
        n(p.min_quorum()) + " there is nothing to lower: add --quorum 2");
  }
  if (p.deadline_ms() != 0 && p.deadline_ms() < p.lease_ms()) {
    return absl::InvalidArgumentError("deadline " + n(p.deadline_ms()) +
                                      " ms is shorter than the lease " + n(p.lease_ms()) +
                                      " ms; raise --deadline or lower --lease");
  }
  return absl::OkStatus();
}

}  // namespace artel
