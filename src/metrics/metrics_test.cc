#include "metrics/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>

namespace artel::metrics {
namespace {

TEST(MetricsTest, CountersRenderWithHelpTypeAndEscapedLabels) {
  Registry r;
  r.GetCounter("artel_things_total", "Things seen.", {{"kind", "a\"b\\c\nd"}}).Add(3);
  r.GetCounter("artel_things_total", "ignored", {{"kind", "plain"}}).Add();
  EXPECT_EQ(r.Render(),
            "# HELP artel_things_total Things seen.\n"
            "# TYPE artel_things_total counter\n"
            "artel_things_total{kind=\"a\\\"b\\\\c\\nd\"} 3\n"
            "artel_things_total{kind=\"plain\"} 1\n");
}

TEST(MetricsTest, SameNameAndLabelsIsTheSameCounter) {
  Registry r;
  Counter& a = r.GetCounter("artel_x_total", "x", {{"k", "v"}});
  Counter& b = r.GetCounter("artel_x_total", "x", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
  Counter& c = r.GetCounter("artel_x_total", "x", {{"k", "w"}});
  EXPECT_NE(&a, &c);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  Registry r;
  Histogram& h = r.GetHistogram("artel_wait_seconds", "Waits.", {0.1, 1}, {{"m", "x"}});
  h.Observe(0.05);
  h.Observe(0.1);  // on a bound: counts in that bucket (le)
  h.Observe(0.5);
  h.Observe(7);
  EXPECT_EQ(r.Render(),
            "# HELP artel_wait_seconds Waits.\n"
            "# TYPE artel_wait_seconds histogram\n"
            "artel_wait_seconds_bucket{m=\"x\",le=\"0.1\"} 2\n"
            "artel_wait_seconds_bucket{m=\"x\",le=\"1\"} 3\n"
            "artel_wait_seconds_bucket{m=\"x\",le=\"+Inf\"} 4\n"
            "artel_wait_seconds_sum{m=\"x\"} 7.65\n"
            "artel_wait_seconds_count{m=\"x\"} 4\n");
}

TEST(MetricsTest, CollectorsAddGaugesAtRenderTimeSortedByName) {
  Registry r;
  int calls = 0;
  r.AddCollector([&calls](Exposition& e) {
    ++calls;
    e.Gauge("artel_workers", "Workers by state.", {{"state", "online"}}, 2);
    e.Gauge("artel_workers", "Workers by state.", {{"state", "offline"}}, calls);
    e.Counter("artel_a_total", "A.", {}, 0.25);
  });
  const std::string first = r.Render();
  EXPECT_EQ(first,
            "# HELP artel_a_total A.\n"
            "# TYPE artel_a_total counter\n"
            "artel_a_total 0.25\n"
            "# HELP artel_workers Workers by state.\n"
            "# TYPE artel_workers gauge\n"
            "artel_workers{state=\"online\"} 2\n"
            "artel_workers{state=\"offline\"} 1\n");
  EXPECT_NE(r.Render().find("artel_workers{state=\"offline\"} 2\n"), std::string::npos);
}

TEST(MetricsTest, ValuesUseShortestExactDecimal) {
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(12), "12");
  EXPECT_EQ(FormatValue(1e20), "1e+20");
  EXPECT_EQ(FormatValue(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(MetricsTest, ConcurrentAddsAreAllCounted) {
  Registry r;
  Counter& c = r.GetCounter("artel_n_total", "n");
  Histogram& h = r.GetHistogram("artel_h_seconds", "h", {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.Add();
        h.Observe(0.5);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(c.value(), 40000);
  EXPECT_EQ(h.Cumulative().back(), 40000u);
}

}  // namespace
}  // namespace artel::metrics
