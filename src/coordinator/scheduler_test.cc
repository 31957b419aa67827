#include "coordinator/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

namespace artel {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint64_t kGiB = 1ull << 30;

// Tasks' needs and the worker's history, as the coordinator would supply.
class SchedulerTest : public ::testing::Test {
 protected:
  void AddTask(uint64_t id, uint32_t replicas, TaskNeeds needs = {1, kGiB / 4, 0, {}}) {
    needs_[id] = std::move(needs);
    scheduler_.SetNeeded(id, replicas);
  }
  std::vector<uint64_t> Pick(const PlacementRequest& request) {
    return scheduler_.Pick(
        request, [&](uint64_t id) -> const TaskNeeds& { return needs_.at(id); },
        [&](uint64_t id) { return ineligible_.count(id) == 0; });
  }
  static PlacementRequest Worker(uint32_t max_tasks, uint32_t cores = 8,
                                 uint64_t memory = 16 * kGiB, uint64_t gpu = 0) {
    PlacementRequest r;
    r.max_tasks = max_tasks;
    r.free_cores = cores;
    r.free_memory_bytes = memory;
    r.gpu_memory_bytes = gpu;
    return r;
  }

  Scheduler scheduler_;
  std::map<uint64_t, TaskNeeds> needs_;
  std::set<uint64_t> ineligible_;
};

TEST_F(SchedulerTest, OldestTaskFirst) {
  AddTask(3, 1);
  AddTask(1, 1);
  AddTask(2, 1);
  EXPECT_THAT(Pick(Worker(1)), ElementsAre(1u));
  EXPECT_THAT(Pick(Worker(5)), ElementsAre(2u, 3u));
}

TEST_F(SchedulerTest, NeverPicksATaskTheWorkerIsIneligibleFor) {
  AddTask(1, 2);
  AddTask(2, 1);
  ineligible_.insert(1);
  EXPECT_THAT(Pick(Worker(5)), ElementsAre(2u));
  EXPECT_THAT(Pick(Worker(5)), IsEmpty());
  EXPECT_EQ(scheduler_.Needed(1), 2u);
}

TEST_F(SchedulerTest, RespectsFreeCoresOverAllPickedTasks) {
  AddTask(1, 1, {3, kGiB, 0, {}});
  AddTask(2, 1, {3, kGiB, 0, {}});
  AddTask(3, 1, {8, kGiB, 0, {}});
  EXPECT_THAT(Pick(Worker(5, /*cores=*/4)), ElementsAre(1u));
  EXPECT_THAT(Pick(Worker(5, /*cores=*/6)), ElementsAre(2u));
  EXPECT_EQ(scheduler_.Needed(3), 1u);  // never fits 6 cores
}

TEST_F(SchedulerTest, RespectsFreeMemoryOverAllPickedTasks) {
  AddTask(1, 1, {1, 3 * kGiB, 0, {}});
  AddTask(2, 1, {1, 3 * kGiB, 0, {}});
  EXPECT_THAT(Pick(Worker(5, 8, /*memory=*/2 * kGiB)), IsEmpty());
  EXPECT_THAT(Pick(Worker(5, 8, /*memory=*/5 * kGiB)), ElementsAre(1u));
  EXPECT_THAT(Pick(Worker(5, 8, /*memory=*/3 * kGiB)), ElementsAre(2u));
}

TEST_F(SchedulerTest, RespectsGpuMemory) {
  AddTask(1, 1, {1, kGiB, 8 * kGiB, {}});
  EXPECT_THAT(Pick(Worker(5)), IsEmpty());
  EXPECT_THAT(Pick(Worker(5, 8, 16 * kGiB, /*gpu=*/4 * kGiB)), IsEmpty());
  EXPECT_THAT(Pick(Worker(5, 8, 16 * kGiB, /*gpu=*/8 * kGiB)), ElementsAre(1u));
}

TEST_F(SchedulerTest, GpuMemoryIsSharedAmongTasksOfOnePick) {
  AddTask(1, 1, {1, kGiB, 10 * kGiB, {}});
  AddTask(2, 1, {1, kGiB, 10 * kGiB, {}});
  EXPECT_THAT(Pick(Worker(5, 8, 16 * kGiB, /*gpu=*/16 * kGiB)), ElementsAre(1u));
}

TEST_F(SchedulerTest, AtMostOneReplicaOfATaskPerPick) {
  AddTask(1, 3);
  EXPECT_THAT(Pick(Worker(5)), ElementsAre(1u));
  EXPECT_EQ(scheduler_.Needed(1), 2u);
}

TEST_F(SchedulerTest, PickDecrementsNeedsAndForgetsSatisfiedTasks) {
  AddTask(1, 2);
  AddTask(2, 1);
  EXPECT_EQ(scheduler_.RunnableTasks(), 2u);
  EXPECT_THAT(Pick(Worker(5)), ElementsAre(1u, 2u));
  EXPECT_EQ(scheduler_.Needed(1), 1u);
  EXPECT_EQ(scheduler_.Needed(2), 0u);
  EXPECT_EQ(scheduler_.RunnableTasks(), 1u);
  EXPECT_THAT(Pick(Worker(5)), ElementsAre(1u));
  EXPECT_EQ(scheduler_.RunnableTasks(), 0u);
  EXPECT_THAT(Pick(Worker(5)), IsEmpty());
}

TEST_F(SchedulerTest, SetNeededZeroForgetsTheTask) {
  AddTask(1, 2);
  scheduler_.SetNeeded(1, 0);
  EXPECT_EQ(scheduler_.RunnableTasks(), 0u);
  EXPECT_EQ(scheduler_.Needed(1), 0u);
  EXPECT_THAT(Pick(Worker(5)), IsEmpty());
}

TEST_F(SchedulerTest, PrefersTasksWhoseInputsAreCached) {
  AddTask(1, 1, {1, kGiB, 0, {"aaa"}});
  AddTask(2, 1, {1, kGiB, 0, {"bbb", "ccc"}});
  AddTask(3, 1, {1, kGiB, 0, {"bbb"}});
  PlacementRequest request = Worker(2);
  request.cached_digests = {"bbb", "ccc"};
  // Most cached inputs first; ties keep the oldest first.
  EXPECT_THAT(Pick(request), ElementsAre(2u, 3u));
  EXPECT_THAT(Pick(request), ElementsAre(1u));
}

TEST_F(SchedulerTest, LooksAtNoMoreThanTheScanWindow) {
  scheduler_ = Scheduler(/*scan_window=*/2);
  AddTask(1, 1);
  AddTask(2, 1);
  AddTask(3, 1);
  ineligible_ = {1, 2};
  EXPECT_THAT(Pick(Worker(5)), IsEmpty());
  ineligible_ = {1};
  EXPECT_THAT(Pick(Worker(5)), ElementsAre(2u));
  EXPECT_THAT(Pick(Worker(5)), ElementsAre(3u));  // 2 left the window
}

TEST_F(SchedulerTest, FillsTheWorkerPastTasksThatNoLongerFit) {
  AddTask(1, 1, {2, kGiB, 0, {}});
  AddTask(2, 1, {2, kGiB, 0, {}});
  AddTask(3, 1, {1, kGiB, 0, {}});
  EXPECT_THAT(Pick(Worker(2, /*cores=*/3)), ElementsAre(1u, 3u));
}

TEST_F(SchedulerTest, SideTaskTakesTheSideSlotNotACore) {
  AddTask(1, 1);                                       // training: one core
  AddTask(2, 1, {1, kGiB / 4, 0, {}, /*side=*/true});  // evaluation
  AddTask(3, 1, {1, kGiB / 4, 0, {}, /*side=*/true});
  PlacementRequest busy = Worker(1, /*cores=*/0);
  busy.free_side_slots = 1;
  EXPECT_THAT(Pick(busy), ElementsAre(2u)) << "a worker with no free core still takes a side task";
  PlacementRequest full = Worker(1, /*cores=*/0);
  EXPECT_THAT(Pick(full), IsEmpty()) << "nor more side tasks than side slots";
  PlacementRequest idle = Worker(2, /*cores=*/1);
  idle.free_side_slots = 1;
  EXPECT_THAT(Pick(idle), ElementsAre(1u, 3u)) << "one core task and one side task at once";
}

}  // namespace
}  // namespace artel
