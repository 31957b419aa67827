// Tasks finished per second over the last minutes, for the dashboard's
// overview: samples of a monotone-ish counter (tasks done) turned into rates.
#pragma once

#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace artel::dashboard {

// Thread-safe.
class Throughput {
 public:
  // Keeps samples for `window_ms` [10 min].
  explicit Throughput(int64_t window_ms = 10 * 60 * 1000) : window_ms_(window_ms) {}

  // Records that `done` tasks had finished at `now_ms` (times ascending).
  void Sample(int64_t now_ms, uint64_t done);

  struct Point {
    int64_t t_ms;        // end of the interval
    double tasks_per_s;  // finished in the interval ÷ its length (>= 0)
  };
  // One point per pair of consecutive samples, oldest first. A counter that
  // went down (a re-opened task) counts as no progress.
  std::vector<Point> Rates() const;

 private:
  const int64_t window_ms_;
  mutable absl::Mutex mu_;
  std::deque<std::pair<int64_t, uint64_t>> samples_ ABSL_GUARDED_BY(mu_);
};

}  // namespace artel::dashboard
