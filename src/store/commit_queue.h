// CommitQueue: group commit in front of a Store.
//
// Callers hand in WriteBatches from any thread and get a sequence number at
// once; one committer thread takes every batch pending at that moment,
// appends them in order into one WriteBatch and applies it with a single
// Store::Apply (one transaction, one fsync). Under load many changes share a
// commit; when idle a lone batch is committed at once.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "store/store.h"

namespace artel {

// Told after each Store::Apply how many batches it held and how long it
// took [seconds]; called on the committer thread, outside the queue's lock.
using CommitObserver = std::function<void(uint64_t batches, double seconds)>;

class CommitQueue {
 public:
  // Starts the committer thread. `store` must outlive the queue.
  explicit CommitQueue(Store& store, CommitObserver observer = {});
  // Commits every batch already enqueued, then stops the committer thread.
  // REQUIRES: no concurrent or later Enqueue.
  ~CommitQueue();
  CommitQueue(const CommitQueue&) = delete;
  CommitQueue& operator=(const CommitQueue&) = delete;

  // Queues `batch` and returns its sequence number (1, 2, ...: enqueue
  // order, which is also apply order). Never blocks on the store.
  // An empty batch gets a number too and never touches the store.
  uint64_t Enqueue(WriteBatch batch);
  // Blocks until every batch numbered <= `seq` has been committed (or its
  // commit failed). Returns the result of the commit that held `seq`: when
  // that Apply failed, every batch in it gets its error and none of it is
  // stored. REQUIRES: `seq` was returned by Enqueue.
  absl::Status WaitCommitted(uint64_t seq);
  // Enqueue + WaitCommitted.
  absl::Status Commit(WriteBatch batch);

  // Store::Apply calls made so far (failed ones included).
  uint64_t commits() const;
  // Batches taken by the committer so far (empty ones included).
  uint64_t batches() const;

 private:
  void Run();

  Store& store_;
  const CommitObserver observer_;
  mutable absl::Mutex mu_;
  std::deque<WriteBatch> pending_ ABSL_GUARDED_BY(mu_);  // seqs done_seq_+1...
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t taken_seq_ ABSL_GUARDED_BY(mu_) = 0;  // batches <= this left pending_
  uint64_t done_seq_ ABSL_GUARDED_BY(mu_) = 0;   // batches <= this are finished
  // Failed groups: last seq -> (first seq, error). Kept for the life of the
  // queue so that a late waiter still learns of the failure; one entry per
  // failed Apply.
  std::map<uint64_t, std::pair<uint64_t, absl::Status>> failures_ ABSL_GUARDED_BY(mu_);
  uint64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t batches_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread committer_;  // last: starts after every field is set
};

}  // namespace artel
