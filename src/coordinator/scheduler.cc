#include "coordinator/scheduler.h"

#include <algorithm>

namespace artel {

void Scheduler::SetNeeded(uint64_t task_id, uint32_t replicas) {
  if (replicas == 0)
    needed_.erase(task_id);
  else
    needed_[task_id] = replicas;
}

uint32_t Scheduler::Needed(uint64_t task_id) const {
  auto it = needed_.find(task_id);
  return it == needed_.end() ? 0 : it->second;
}

std::vector<uint64_t> Scheduler::Pick(const PlacementRequest& request,
                                      const std::function<const TaskNeeds&(uint64_t)>& needs,
                                      const std::function<bool(uint64_t)>& eligible) {
  struct Candidate {
    uint64_t task_id;
    size_t cached_inputs;
  };
  std::vector<Candidate> candidates;
  size_t scanned = 0;
  const bool data_aware = !request.cached_digests.empty();
  // Without cache hints the oldest tasks that fit together win, so the scan
  // stops once the worker is full; with hints the window is ranked first.
  uint32_t cores = request.free_cores;
  uint32_t side = request.free_side_slots;
  uint64_t memory = request.free_memory_bytes, gpu = request.gpu_memory_bytes;
  auto fits = [&](const TaskNeeds& n) {
    return (n.side ? side > 0 : n.cores <= cores) && n.memory_bytes <= memory &&
           n.gpu_memory_bytes <= gpu;
  };
  auto take = [&](const TaskNeeds& n) {
    if (n.side) {
      --side;
    } else {
      cores -= n.cores;
    }
    memory -= n.memory_bytes;
    gpu -= n.gpu_memory_bytes;
  };
  for (auto it = needed_.begin(); it != needed_.end() && scanned < scan_window_; ++it, ++scanned) {
    if (!data_aware && candidates.size() >= request.max_tasks) break;
    const TaskNeeds& n = needs(it->first);
    if (!fits(n) || !eligible(it->first)) continue;
    size_t cached = 0;
    if (data_aware) {
      for (const auto& d : n.input_digests) cached += request.cached_digests.count(d);
    } else {
      take(n);
    }
    candidates.push_back({it->first, cached});
  }
  std::vector<uint64_t> picked;
  if (data_aware) {
    std::stable_sort(
        candidates.begin(), candidates.end(),
        [](const Candidate& a, const Candidate& b) { return a.cached_inputs > b.cached_inputs; });
    std::vector<Candidate> chosen;
    for (const Candidate& c : candidates) {
      if (chosen.size() >= request.max_tasks) break;
      const TaskNeeds& n = needs(c.task_id);
      if (!fits(n)) continue;
      take(n);
      chosen.push_back(c);
    }
    candidates.swap(chosen);
  }
  for (const Candidate& c : candidates) {
    picked.push_back(c.task_id);
    SetNeeded(c.task_id, Needed(c.task_id) - 1);
  }
  return picked;
}

}  // namespace artel
