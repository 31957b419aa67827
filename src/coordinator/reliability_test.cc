#include "coordinator/reliability.h"

#include <gtest/gtest.h>

namespace artel {
namespace {

constexpr char kApp[] = "square@1";

TEST(Reliability, TrustedAfterTenConfirmedResultsInARow) {
  v1::WorkerInfo w;
  for (uint32_t i = 0; i + 1 < kTrustStreak; ++i) RecordConfirmed(w, kApp);
  EXPECT_FALSE(Trusted(w, kApp));
  RecordConfirmed(w, kApp);
  EXPECT_TRUE(Trusted(w, kApp));
  EXPECT_EQ(ReliabilityOf(w, kApp).consecutive_valid(), kTrustStreak);
}

TEST(Reliability, TrustIsPerAppVersion) {
  v1::WorkerInfo w;
  for (uint32_t i = 0; i < kTrustStreak; ++i) RecordConfirmed(w, kApp);
  EXPECT_TRUE(Trusted(w, kApp));
  EXPECT_FALSE(Trusted(w, "square@2"));
  EXPECT_FALSE(Trusted(w, "other@1"));
}

TEST(Reliability, HostErrorRestartsTheStreakButIsNoLie) {
  v1::WorkerInfo w;
  for (uint32_t i = 0; i < kTrustStreak; ++i) RecordConfirmed(w, kApp);
  RecordHostError(w, kApp);
  EXPECT_FALSE(Trusted(w, kApp));
  EXPECT_EQ(ReliabilityOf(w, kApp).invalid(), 0u);
  for (uint32_t i = 0; i < kTrustStreak; ++i) RecordConfirmed(w, kApp);
  EXPECT_TRUE(Trusted(w, kApp));
}

TEST(Reliability, EachLieCaughtRaisesTheBarByAHundredConfirmedResults) {
  v1::WorkerInfo w;
  for (uint32_t i = 0; i < 50; ++i) RecordConfirmed(w, kApp);
  RecordInvalid(w, kApp);
  for (uint32_t i = 0; i < 49; ++i) RecordConfirmed(w, kApp);
  // 99 valid, 1 invalid, a streak of 49: not yet.
  EXPECT_FALSE(Trusted(w, kApp));
  RecordConfirmed(w, kApp);
  EXPECT_TRUE(Trusted(w, kApp));
  RecordInvalid(w, kApp);
  for (uint32_t i = 0; i < 99; ++i) RecordConfirmed(w, kApp);
  EXPECT_FALSE(Trusted(w, kApp)) << "199 valid for 2 invalid is below the bar of 200";
  RecordConfirmed(w, kApp);
  EXPECT_TRUE(Trusted(w, kApp));
}

TEST(Reliability, AppKeyIsNameAtResolvedVersion) {
  v1::TaskInfo t;
  t.mutable_spec()->set_app("square");
  t.set_resolved_version("2");
  EXPECT_EQ(AppKey(t), "square@2");
}

}  // namespace
}  // namespace artel
