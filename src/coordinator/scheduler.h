// Chooses which runnable tasks a worker that asks for work gets.
//
// Keeps, per task, how many new replicas it needs now (set by the
// transitioner). Tasks are offered oldest first (lowest id); within a scan
// window, tasks whose inputs the worker already caches come first (compute
// goes to the data). Not thread-safe: the coordinator holds its lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_set>
#include <vector>

namespace artel {

// What one replica of a task needs from a worker.
struct TaskNeeds {
  uint32_t cores = 1;
  uint64_t memory_bytes = 0;
  uint64_t gpu_memory_bytes = 0;
  std::vector<std::string> input_digests;
  // A side task (Resources.side) takes the worker's side slot instead of
  // cores.
  bool side = false;
};

// What the asking worker has free now.
struct PlacementRequest {
  uint32_t max_tasks = 1;
  uint32_t free_cores = 1;
  uint32_t free_side_slots = 0;
  uint64_t free_memory_bytes = 0;
  uint64_t gpu_memory_bytes = 0;
  std::unordered_set<std::string> cached_digests;
};

class Scheduler {
 public:
  // `scan_window`: how many runnable tasks one Pick looks at, at most.
  explicit Scheduler(size_t scan_window = 1024) : scan_window_(scan_window) {}

  // Records that `task_id` needs `replicas` new replicas (0 forgets it).
  void SetNeeded(uint64_t task_id, uint32_t replicas);
  uint32_t Needed(uint64_t task_id) const;
  size_t RunnableTasks() const { return needed_.size(); }

  // Picks tasks for one worker, at most one replica of each task, within
  // the worker's free resources; decrements the needs of what it picks.
  // `needs(task)` must return the task's needs; `eligible(task)` is false
  // when this worker already ran a replica of it.
  std::vector<uint64_t> Pick(const PlacementRequest& request,
                             const std::function<const TaskNeeds&(uint64_t)>& needs,
                             const std::function<bool(uint64_t)>& eligible);

 private:
  size_t scan_window_;
  std::map<uint64_t, uint32_t> needed_;  // task id -> new replicas needed
};

}  // namespace artel
