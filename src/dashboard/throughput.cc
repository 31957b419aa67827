#include "dashboard/throughput.h"

namespace artel::dashboard {

void Throughput::Sample(int64_t now_ms, uint64_t done) {
  absl::MutexLock lock(&mu_);
  if (!samples_.empty() && now_ms <= samples_.back().first) return;
  samples_.emplace_back(now_ms, done);
  while (samples_.size() > 2 && samples_.front().first < now_ms - window_ms_) samples_.pop_front();
}

std::vector<Throughput::Point> Throughput::Rates() const {
  absl::MutexLock lock(&mu_);
  std::vector<Point> out;
  for (size_t i = 1; i < samples_.size(); ++i) {
    const auto& [t0, d0] = samples_[i - 1];
    const auto& [t1, d1] = samples_[i];
    const double done = d1 > d0 ? static_cast<double>(d1 - d0) : 0.0;
    out.push_back({t1, done * 1000.0 / static_cast<double>(t1 - t0)});
  }
  return out;
}

}  // namespace artel::dashboard
