#include "coordinator/policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace artel {
namespace {

using ::testing::HasSubstr;

v1::RedundancyPolicy Policy(uint32_t quorum, uint32_t target, uint32_t max_total,
                            uint64_t lease_ms = 0, uint64_t deadline_ms = 0) {
  v1::RedundancyPolicy p;
  p.set_min_quorum(quorum);
  p.set_target_replicas(target);
  p.set_max_total_replicas(max_total);
  p.set_lease_ms(lease_ms);
  p.set_deadline_ms(deadline_ms);
  return WithDefaults(p);
}

// The error CheckPolicy gives, checking that it is INVALID_ARGUMENT.
std::string ErrorOf(const v1::RedundancyPolicy& p) {
  absl::Status s = CheckPolicy(p);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  return std::string(s.message());
}

TEST(Policy, EmptyPolicyGetsTheDocumentedDefaults) {
  const v1::RedundancyPolicy p = WithDefaults(v1::RedundancyPolicy());
  EXPECT_EQ(p.min_quorum(), 1u);
  EXPECT_EQ(p.target_replicas(), 1u);
  EXPECT_EQ(p.max_error_replicas(), 3u);
  EXPECT_EQ(p.max_total_replicas(), 8u);
  EXPECT_EQ(p.lease_ms(), 30'000u);
  EXPECT_EQ(p.deadline_ms(), 0u);
  EXPECT_TRUE(CheckPolicy(p).ok());
}

TEST(Policy, TargetDefaultsToQuorumAndMaxTotalRisesToTarget) {
  EXPECT_EQ(Policy(3, 0, 0).target_replicas(), 3u);
  EXPECT_EQ(Policy(2, 12, 0).max_total_replicas(), 12u);
  EXPECT_EQ(Policy(2, 3, 0).max_total_replicas(), 8u);
}

TEST(Policy, GivenValuesAreKept) {
  v1::RedundancyPolicy in;
  in.set_min_quorum(2);
  in.set_target_replicas(3);
  in.set_max_error_replicas(5);
  in.set_max_total_replicas(6);
  in.set_lease_ms(2'000);
  in.set_deadline_ms(60'000);
  const v1::RedundancyPolicy p = WithDefaults(in);
  EXPECT_EQ(p.SerializeAsString(), in.SerializeAsString());
  EXPECT_TRUE(CheckPolicy(p).ok());
}

TEST(Policy, ResourcesGetOneCoreAnd256MiB) {
  v1::Resources r = WithDefaults(v1::Resources());
  EXPECT_EQ(r.cores(), 1u);
  EXPECT_EQ(r.memory_bytes(), 256ull << 20);
  EXPECT_EQ(r.gpu_memory_bytes(), 0u);
  v1::Resources given;
  given.set_cores(4);
  given.set_memory_bytes(1ull << 30);
  r = WithDefaults(given);
  EXPECT_EQ(r.cores(), 4u);
  EXPECT_EQ(r.memory_bytes(), 1ull << 30);
}

TEST(Policy, QuorumAboveLimitSaysToLowerQuorum) {
  EXPECT_THAT(ErrorOf(Policy(kMaxQuorum + 1, 0, kMaxTotalReplicasLimit)), HasSubstr("--quorum"));
  EXPECT_TRUE(CheckPolicy(Policy(kMaxQuorum, 0, kMaxTotalReplicasLimit)).ok());
}

TEST(Policy, ReplicasBelowQuorumSaysToRaiseReplicas) {
  EXPECT_THAT(ErrorOf(Policy(3, 2, 0)), HasSubstr("--replicas"));
}

TEST(Policy, MaxTotalAboveLimitSaysToLowerMaxTotal) {
  EXPECT_THAT(ErrorOf(Policy(1, 1, kMaxTotalReplicasLimit + 1)), HasSubstr("--max-total"));
  EXPECT_TRUE(CheckPolicy(Policy(1, 1, kMaxTotalReplicasLimit)).ok());
}

TEST(Policy, QuorumAboveMaxTotalSaysToRaiseMaxTotalOrLowerQuorum) {
  const std::string error = ErrorOf(Policy(5, 5, 4));
  EXPECT_THAT(error, HasSubstr("--max-total"));
  EXPECT_THAT(error, HasSubstr("--quorum"));
}

TEST(Policy, ReplicasAboveMaxTotalSaysToRaiseMaxTotalOrLowerReplicas) {
  const std::string error = ErrorOf(Policy(2, 5, 4));
  EXPECT_THAT(error, HasSubstr("--max-total"));
  EXPECT_THAT(error, HasSubstr("--replicas"));
}

TEST(Policy, LeaseBelowOneSecondIsRefused) {
  EXPECT_THAT(ErrorOf(Policy(1, 1, 8, /*lease_ms=*/999)), HasSubstr("at least 1s"));
  EXPECT_TRUE(CheckPolicy(Policy(1, 1, 8, /*lease_ms=*/1'000)).ok());
}

TEST(Policy, DeadlineShorterThanLeaseSaysToRaiseDeadlineOrLowerLease) {
  const std::string error = ErrorOf(Policy(1, 1, 8, 10'000, /*deadline_ms=*/5'000));
  EXPECT_THAT(error, HasSubstr("--deadline"));
  EXPECT_THAT(error, HasSubstr("--lease"));
  EXPECT_TRUE(CheckPolicy(Policy(1, 1, 8, 10'000, /*deadline_ms=*/10'000)).ok());
}

TEST(Policy, AdaptiveGetsATenPercentSpotCheckRate) {
  v1::RedundancyPolicy p;
  p.set_min_quorum(2);
  p.set_adaptive(true);
  EXPECT_DOUBLE_EQ(WithDefaults(p).spot_check_rate(), 0.1);
  EXPECT_TRUE(CheckPolicy(WithDefaults(p)).ok());
}

TEST(Policy, AdaptiveNeedsAQuorumOfTwo) {
  v1::RedundancyPolicy p;
  p.set_adaptive(true);
  absl::Status s = CheckPolicy(WithDefaults(p));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("--quorum 2"));
}

TEST(Policy, SpotCheckRateOutsideZeroToOneOrWithoutAdaptiveIsRefused) {
  v1::RedundancyPolicy p;
  p.set_min_quorum(2);
  p.set_spot_check_rate(0.2);
  EXPECT_THAT(std::string(CheckPolicy(WithDefaults(p)).message()),
              ::testing::HasSubstr("add --adaptive"));
  p.set_adaptive(true);
  p.set_spot_check_rate(1.5);
  EXPECT_THAT(std::string(CheckPolicy(WithDefaults(p)).message()),
              ::testing::HasSubstr("not in (0, 1]"));
  p.set_spot_check_rate(-0.1);
  EXPECT_FALSE(CheckPolicy(WithDefaults(p)).ok());
}

}  // namespace
}  // namespace artel
