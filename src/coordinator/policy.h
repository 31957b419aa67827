// Defaults and limits of a task's redundancy policy and resource needs.
#pragma once

#include <string>

#include "artel/v1/artel.pb.h"
#include "common/status.h"

namespace artel {

inline constexpr uint32_t kDefaultMaxErrorReplicas = 3;
inline constexpr uint32_t kDefaultMaxTotalReplicas = 8;
inline constexpr uint64_t kDefaultLeaseMs = 30'000;
inline constexpr uint64_t kMinLeaseMs = 1'000;
inline constexpr uint32_t kMaxQuorum = 32;
inline constexpr uint32_t kMaxTotalReplicasLimit = 64;
inline constexpr uint64_t kDefaultTaskMemoryBytes = 256ull << 20;
inline constexpr double kDefaultSpotCheckRate = 0.1;

// Fills zero fields with their defaults (see RedundancyPolicy in the proto).
v1::RedundancyPolicy WithDefaults(const v1::RedundancyPolicy& policy);
v1::Resources WithDefaults(const v1::Resources& resources);

// Checks a policy after defaults; the error says which limit and what to do.
absl::Status CheckPolicy(const v1::RedundancyPolicy& policy);

}  // namespace artel
