#include "store/commit_queue.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/sqlite_store.h"
#include "store/store_test_util.h"

namespace artel {
namespace {

using store_test::FullWorker;
using ::testing::ElementsAre;

// Wraps a real in-memory SqliteStore. Records the worker ids of every Apply,
// can hold Apply calls at a gate and can fail the next Apply (without
// writing), so tests can steer the committer.
class RecordingStore final : public Store {
 public:
  RecordingStore() {
    auto inner = SqliteStore::Open(":memory:");
    ARTEL_CHECK(inner.ok(), inner.status().ToString());
    inner_ = std::move(*inner);
  }

  absl::Status Apply(const WriteBatch& batch) override {
    absl::Notification* gate;
    absl::Status injected;
    {
      absl::MutexLock lock(&mu_);
      std::vector<std::string> ids;
      for (const v1::WorkerInfo& w : batch.workers) ids.push_back(w.id());
      applies_.push_back(std::move(ids));
      gate = gate_;
      injected = std::exchange(next_error_, absl::OkStatus());
    }
    if (gate != nullptr) gate->WaitForNotification();
    if (!injected.ok()) return injected;
    return inner_->Apply(batch);
  }
  absl::StatusOr<StoreSnapshot> Load() override { return inner_->Load(); }

  // Apply calls starting from now on wait until Release().
  void Hold() {
    absl::MutexLock lock(&mu_);
    gates_.push_back(std::make_unique<absl::Notification>());
    gate_ = gates_.back().get();
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    gate_->Notify();
    gate_ = nullptr;
  }
  // Blocks until `n` Apply calls have started.
  void AwaitApplies(size_t n) {
    absl::MutexLock lock(&mu_);
    auto started = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return applies_.size() >= n; };
    mu_.Await(absl::Condition(&started));
  }
  void FailNextApply(absl::Status status) {
    absl::MutexLock lock(&mu_);
    next_error_ = std::move(status);
  }
  std::vector<std::vector<std::string>> applies() {
    absl::MutexLock lock(&mu_);
    return applies_;
  }
  std::vector<std::string> StoredWorkerNames() {
    auto snapshot = inner_->Load();
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    std::vector<std::string> names;
    if (snapshot.ok()) {
      for (const v1::WorkerInfo& w : snapshot->workers) names.push_back(w.id() + ":" + w.name());
    }
    return names;
  }

 private:
  std::unique_ptr<SqliteStore> inner_;
  absl::Mutex mu_;
  std::vector<std::vector<std::string>> applies_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<absl::Notification>> gates_ ABSL_GUARDED_BY(mu_);
  absl::Notification* gate_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Status next_error_ ABSL_GUARDED_BY(mu_);
};

// A batch upserting worker `id` whose name is "host-<version>".
WriteBatch Worker(const std::string& id, int version = 1) {
  WriteBatch batch;
  batch.workers.push_back(FullWorker(id, version));
  return batch;
}

TEST(CommitQueue, BatchesEnqueuedDuringACommitAreGroupedIntoTheNextApply) {
  RecordingStore store;
  CommitQueue queue(store);
  store.Hold();
  const uint64_t first = queue.Enqueue(Worker("w1"));
  store.AwaitApplies(1);
  queue.Enqueue(Worker("w2"));
  queue.Enqueue(Worker("w3"));
  const uint64_t last = queue.Enqueue(Worker("w4"));
  store.Release();
  EXPECT_TRUE(queue.WaitCommitted(last).ok());
  EXPECT_TRUE(queue.WaitCommitted(first).ok());
  EXPECT_EQ(last, first + 3);
  EXPECT_THAT(store.applies(), ElementsAre(ElementsAre("w1"), ElementsAre("w2", "w3", "w4")));
  EXPECT_EQ(queue.commits(), 2u);
  EXPECT_EQ(queue.batches(), 4u);
}

TEST(CommitQueue, WaitCommittedReturnsOnlyAfterTheDataIsApplied) {
  RecordingStore store;
  CommitQueue queue(store);
  store.Hold();
  absl::Notification committed;
  std::thread writer([&] {
    EXPECT_TRUE(queue.Commit(Worker("w1")).ok());
    committed.Notify();
  });
  store.AwaitApplies(1);
  EXPECT_FALSE(committed.HasBeenNotified());
  EXPECT_TRUE(store.StoredWorkerNames().empty());
  store.Release();
  committed.WaitForNotification();
  EXPECT_THAT(store.StoredWorkerNames(), ElementsAre("w1:host-1"));
  writer.join();
}

TEST(CommitQueue, LaterUpsertOfTheSameKeyWinsWithinAndAcrossGroups) {
  RecordingStore store;
  CommitQueue queue(store);
  store.Hold();
  queue.Enqueue(Worker("w1", 1));
  store.AwaitApplies(1);
  queue.Enqueue(Worker("w1", 2));
  queue.Enqueue(Worker("w2", 5));
  const uint64_t last = queue.Enqueue(Worker("w1", 3));
  store.Release();
  ASSERT_TRUE(queue.WaitCommitted(last).ok());
  EXPECT_EQ(store.applies().size(), 2u);
  EXPECT_THAT(store.StoredWorkerNames(), ElementsAre("w1:host-3", "w2:host-5"));
}

TEST(CommitQueue, ApplyErrorReachesExactlyTheWaitersOfThatGroup) {
  RecordingStore store;
  CommitQueue queue(store);
  store.Hold();
  const uint64_t before = queue.Enqueue(Worker("w1"));
  store.AwaitApplies(1);
  store.FailNextApply(absl::UnavailableError("disk gone"));
  const uint64_t failed_a = queue.Enqueue(Worker("w2"));
  const uint64_t failed_b = queue.Enqueue(Worker("w3"));
  store.Release();
  EXPECT_TRUE(queue.WaitCommitted(before).ok());
  EXPECT_EQ(queue.WaitCommitted(failed_b), absl::UnavailableError("disk gone"));
  EXPECT_EQ(queue.WaitCommitted(failed_a), absl::UnavailableError("disk gone"));
  EXPECT_TRUE(queue.Commit(Worker("w4")).ok());
  EXPECT_THAT(store.StoredWorkerNames(), ElementsAre("w1:host-1", "w4:host-1"));
  EXPECT_EQ(queue.commits(), 3u);
}

TEST(CommitQueue, EmptyBatchCompletesWithoutTouchingTheStore) {
  RecordingStore store;
  CommitQueue queue(store);
  EXPECT_TRUE(queue.Commit(WriteBatch{}).ok());
  EXPECT_TRUE(store.applies().empty());
  EXPECT_EQ(queue.commits(), 0u);
  EXPECT_EQ(queue.batches(), 1u);
}

TEST(CommitQueue, DestructorCommitsEverythingAlreadyEnqueued) {
  RecordingStore store;
  {
    CommitQueue queue(store);
    queue.Enqueue(Worker("w1"));
    queue.Enqueue(Worker("w2"));
    queue.Enqueue(Worker("w3"));
  }
  EXPECT_THAT(store.StoredWorkerNames(), ElementsAre("w1:host-1", "w2:host-1", "w3:host-1"));
}

TEST(CommitQueue, ConcurrentCommittersKeepEachThreadsOrder) {
  RecordingStore store;
  CommitQueue queue(store);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&queue, t] {
      for (int i = 1; i <= kPerThread; ++i) {
        EXPECT_TRUE(queue.Commit(Worker("w" + std::to_string(t), i)).ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(queue.batches(), uint64_t{kThreads * kPerThread});
  EXPECT_LE(queue.commits(), queue.batches());
  EXPECT_THAT(store.StoredWorkerNames(),
              ElementsAre("w0:host-100", "w1:host-100", "w2:host-100", "w3:host-100"));
}

}  // namespace
}  // namespace artel
