#include "store/commit_queue.h"

#include <chrono>
#include <vector>

namespace artel {

CommitQueue::CommitQueue(Store& store, CommitObserver observer)
    : store_(store), observer_(std::move(observer)), committer_([this] { Run(); }) {}

CommitQueue::~CommitQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  committer_.join();
}

uint64_t CommitQueue::Enqueue(WriteBatch batch) {
  absl::MutexLock lock(&mu_);
  ARTEL_CHECK(!stopping_, "CommitQueue::Enqueue after the queue began shutting down");
  pending_.push_back(std::move(batch));
  return next_seq_++;
}

absl::Status CommitQueue::WaitCommitted(uint64_t seq) {
  absl::MutexLock lock(&mu_);
  ARTEL_CHECK(seq > 0 && seq < next_seq_, "WaitCommitted of a sequence number never issued");
  auto done = [this, seq]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_seq_ >= seq; };
  mu_.Await(absl::Condition(&done));
  auto it = failures_.lower_bound(seq);
  if (it != failures_.end() && it->second.first <= seq) return it->second.second;
  return absl::OkStatus();
}

absl::Status CommitQueue::Commit(WriteBatch batch) {
  return WaitCommitted(Enqueue(std::move(batch)));
}

uint64_t CommitQueue::commits() const {
  absl::MutexLock lock(&mu_);
  return commits_;
}

uint64_t CommitQueue::batches() const {
  absl::MutexLock lock(&mu_);
  return batches_;
}

void CommitQueue::Run() {
  for (;;) {
    std::deque<WriteBatch> group;
    uint64_t first = 0;
    uint64_t last = 0;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !pending_.empty() || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (pending_.empty()) return;  // stopping and drained
      group.swap(pending_);
      first = taken_seq_ + 1;
      last = taken_seq_ + group.size();
      taken_seq_ = last;
    }
    WriteBatch merged;
    for (WriteBatch& batch : group) merged.Append(std::move(batch));
    const bool touches_store = !merged.empty();
    const auto start = std::chrono::steady_clock::now();
    absl::Status status = touches_store ? store_.Apply(merged) : absl::OkStatus();
    if (touches_store && observer_) {
      observer_(group.size(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }

    absl::MutexLock lock(&mu_);
    if (!status.ok()) failures_.emplace(last, std::make_pair(first, std::move(status)));
    if (touches_store) ++commits_;
    batches_ += group.size();
    done_seq_ = last;
  }
}

}  // namespace artel
