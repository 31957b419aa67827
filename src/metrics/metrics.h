// Prometheus metrics: counters and histograms that code updates as things
// happen, gauges computed when the metrics are read, and the text exposition
// format (version 0.0.4) that `GET /metrics` serves.
//
// Names follow Prometheus's conventions: snake_case with the unit as a
// suffix (`_seconds`, `_bytes`) and `_total` on counters. Labels are given
// as ordered name/value pairs; one family (name) holds one type.
//
// Thread-safe: Counter and Histogram updates are lock-free; Registry calls
// may come from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace artel::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// A value that only goes up (it restarts at 0 with the process).
class Counter {
 public:
  // REQUIRES: v >= 0.
  void Add(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into cumulative buckets with the given upper bounds
// (and +Inf), and keeps their sum and count.
class Histogram {
 public:
  // `bounds` ascending, finite.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);

  const std::vector<double>& bounds() const { return bounds_; }
  // Observations <= bounds()[i] (cumulative); the last entry counts all.
  std::vector<uint64_t> Cumulative() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1 (the +Inf bucket)
  std::atomic<double> sum_{0};
};

// Bucket bounds for latencies, 0.5 ms to 10 s [seconds].
std::vector<double> LatencyBuckets();

// Collects samples computed at scrape time (gauges, and counters kept
// elsewhere). Samples of one name form one family.
class Exposition {
 public:
  void Gauge(const std::string& name, const std::string& help, const Labels& labels, double value);
  void Counter(const std::string& name, const std::string& help, const Labels& labels,
               double value);

 private:
  friend class Registry;
  struct Family {
    std::string help, type;
    std::vector<std::pair<Labels, double>> samples;
  };
  void Add(const std::string& name, const std::string& help, const std::string& type,
           const Labels& labels, double value);
  std::map<std::string, Family> families_;
};

class Registry {
 public:
  using Collector = std::function<void(Exposition&)>;

  // The counter `name`{labels}, created on first use; the reference stays
  // valid for the registry's life. The same name must keep one help text.
  metrics::Counter& GetCounter(const std::string& name, const std::string& help,
                               const Labels& labels = {});
  // The histogram `name`{labels}; `bounds` are used when it is created.
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          const std::vector<double>& bounds, const Labels& labels = {});
  // `collector` runs at every Render (on the rendering thread) and adds the
  // samples it computes. It must not call back into the registry.
  void AddCollector(Collector collector);

  // Every metric in the text exposition format, families sorted by name.
  std::string Render() const;

 private:
  struct CounterFamily {
    std::string help;
    std::map<Labels, std::unique_ptr<metrics::Counter>> series;
  };
  struct HistogramFamily {
    std::string help;
    std::map<Labels, std::unique_ptr<Histogram>> series;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, CounterFamily> counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, HistogramFamily> histograms_ ABSL_GUARDED_BY(mu_);
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(mu_);
};

// `v` as the exposition format writes numbers ("+Inf", "NaN", shortest
// round-trip decimal otherwise).
std::string FormatValue(double v);

}  // namespace artel::metrics
