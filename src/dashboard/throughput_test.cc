#include "dashboard/throughput.h"

#include <gtest/gtest.h>

namespace artel::dashboard {
namespace {

TEST(ThroughputTest, RatesAreTasksPerSecondBetweenSamples) {
  Throughput t;
  t.Sample(0, 0);
  t.Sample(5'000, 10);
  t.Sample(10'000, 10);
  const auto rates = t.Rates();
  ASSERT_EQ(rates.size(), 2u);
  EXPECT_EQ(rates[0].t_ms, 5'000);
  EXPECT_DOUBLE_EQ(rates[0].tasks_per_s, 2.0);
  EXPECT_DOUBLE_EQ(rates[1].tasks_per_s, 0.0);
}

TEST(ThroughputTest, ACounterThatWentDownCountsAsNoProgress) {
  Throughput t;
  t.Sample(0, 10);
  t.Sample(1'000, 8);  // a task re-opened
  ASSERT_EQ(t.Rates().size(), 1u);
  EXPECT_DOUBLE_EQ(t.Rates()[0].tasks_per_s, 0.0);
}

TEST(ThroughputTest, OldSamplesLeaveTheWindowAndTimeNeverGoesBack) {
  Throughput t(10'000);
  for (int64_t s = 0; s <= 30; ++s) t.Sample(s * 1'000, static_cast<uint64_t>(s));
  t.Sample(30'000, 99);  // same time again: ignored
  const auto rates = t.Rates();
  EXPECT_EQ(rates.size(), 10u);
  EXPECT_EQ(rates.front().t_ms, 21'000);
  EXPECT_DOUBLE_EQ(rates.back().tasks_per_s, 1.0);
}

}  // namespace
}  // namespace artel::dashboard
