#include "coordinator/scheduler.h"

#include <algorithm>

namespace artel {

void Scheduler::SetNeeded(uint64_t task_id, uint32_t replicas) {
  if (replicas == 0) needed_.erase(task_id);
  else needed_[task_id] = replicas;
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
  for (auto it = needed_.begin(); it != needed_.end() && scanned < scan_window_; ++it, ++scanned) {
    const TaskNeeds& n = needs(it->first);
    if (n.cores > request.free_cores || n.memory_bytes > request.free_memory_bytes ||
        n.gpu_memory_bytes > request.gpu_memory_bytes || !eligible(it->first)) {
      continue;
    }
    size_t cached = 0;
    if (data_aware) {
      for (const auto& d : n.input_digests) cached += request.cached_digests.count(d);
    }
    candidates.push_back({it->first, cached});
    // Without cache hints the oldest fitting tasks win: stop early.
    if (!data_aware && candidates.size() >= request.max_tasks) break;
  }
  if (data_aware) {
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const Candidate& a, const Candidate& b) {
                       return a.cached_inputs > b.cached_inputs;
                     });
  }
  std::vector<uint64_t> picked;
  uint32_t cores = request.free_cores;
  uint64_t memory = request.free_memory_bytes;
  for (const Candidate& c : candidates) {
    if (picked.size() >= request.max_tasks) break;
    const TaskNeeds& n = needs(c.task_id);
    if (n.cores > cores || n.memory_bytes > memory) continue;
    cores -= n.cores;
    memory -= n.memory_bytes;
    picked.push_back(c.task_id);
    SetNeeded(c.task_id, Needed(c.task_id) - 1);
  }
  return picked;
}

}  // namespace artel
