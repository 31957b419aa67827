#include "blob/blob_cache.h"

#include <algorithm>
#include <utility>

#include "common/units.h"

namespace artel {

BlobCache::BlobCache(std::unique_ptr<BlobStore> store, uint64_t budget_bytes)
    : store_(std::move(store)), budget_bytes_(budget_bytes) {
  ARTEL_CHECK(store_ != nullptr, "BlobCache needs a store");
  std::vector<StoredBlob> blobs = store_->List();
  std::sort(blobs.begin(), blobs.end(),
            [](const StoredBlob& a, const StoredBlob& b) { return a.last_used < b.last_used; });
  absl::MutexLock lock(&mu_);
  for (const StoredBlob& blob : blobs) {
    entries_[blob.digest] = Entry{blob.size, 0, ++tick_};
    cached_bytes_ += blob.size;
  }
  if (cached_bytes_ > budget_bytes_) {
    // Everything is unpinned, so this can only fail on a disk error; the
    // next Acquire tries again.
    (void)MakeRoomLocked("", 0);
  }
}

absl::StatusOr<std::filesystem::path> BlobCache::Acquire(const std::string& digest,
                                                         const FetchFn& fetch) {
  if (!IsSha256Hex(digest)) {
    return absl::InvalidArgumentError("blob digest '" + digest +
                                      "' is malformed; expected 64 lower-case hex characters");
  }
  std::shared_ptr<Fetch> pending;
  {
    absl::MutexLock lock(&mu_);
    while (true) {
      if (auto it = entries_.find(digest); it != entries_.end()) {
        it->second.pins++;
        it->second.last_use = ++tick_;
        break;
      }
      auto f = fetching_.find(digest);
      if (f == fetching_.end()) {
        pending = std::make_shared<Fetch>();
        fetching_[digest] = pending;
        break;
      }
      std::shared_ptr<Fetch> other = f->second;
      mu_.Await(absl::Condition(&other->done));
      if (!other->status.ok()) return other->status;
      // The fetcher pinned the blob, but it may have been released and
      // evicted since: look again.
    }
  }
  if (pending == nullptr) {
    (void)store_->Touch(digest);  // LRU order survives a restart
    return store_->PathOf(digest);
  }
  return FetchAndPin(digest, fetch, std::move(pending));
}

absl::StatusOr<std::filesystem::path> BlobCache::FetchAndPin(const std::string& digest,
                                                             const FetchFn& fetch,
                                                             std::shared_ptr<Fetch> pending) {
  uint64_t reserved = 0;
  absl::Status reserve_status;
  auto admit = [&](uint64_t size) {
    reserve_status = Reserve(digest, size);
    if (reserve_status.ok()) reserved = size;
    return reserve_status;
  };
  absl::StatusOr<std::string> committed;
  {
    absl::StatusOr<std::unique_ptr<BlobWriter>> writer =
        store_->BeginWrite(digest, BlobStore::kUnknownSize, admit);
    if (!writer.ok()) {
      committed = writer.status();
    } else {
      absl::Status fetched = fetch(**writer);
      // A fetch that swallowed the refusal still reports it.
      if (fetched.ok() && !reserve_status.ok()) fetched = reserve_status;
      committed = fetched.ok() ? (*writer)->Commit() : absl::StatusOr<std::string>(fetched);
    }
  }  // an uncommitted writer removes its temp file here
  absl::MutexLock lock(&mu_);
  reserved_bytes_ -= reserved;
  if (committed.ok()) {
    // No other thread adds `digest` while this fetch is registered.
    entries_[digest] = Entry{reserved, 1, ++tick_};
    cached_bytes_ += reserved;
  }
  pending->status = committed.status();
  pending->done = true;
  fetching_.erase(digest);
  if (!committed.ok()) return committed.status();
  return store_->PathOf(digest);
}

absl::Status BlobCache::Reserve(const std::string& digest, uint64_t size) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(MakeRoomLocked(digest, size));
  reserved_bytes_ += size;
  return absl::OkStatus();
}

absl::Status BlobCache::MakeRoomLocked(const std::string& digest, uint64_t incoming) {
  uint64_t pinned = 0;
  std::vector<std::pair<uint64_t, std::string>> candidates;  // (last_use, digest)
  for (const auto& [d, entry] : entries_) {
    if (entry.pins > 0) {
      pinned += entry.size;
    } else {
      candidates.emplace_back(entry.last_use, d);
    }
  }
  if (pinned + reserved_bytes_ + incoming > budget_bytes_) {
    return absl::ResourceExhaustedError(
        "blob " + digest + " is " + FormatBytes(incoming) + " (" + std::to_string(incoming) +
        " bytes) and cannot fit in this worker's blob cache budget of " +
        FormatBytes(budget_bytes_) + " (" + std::to_string(budget_bytes_) + " bytes; " +
        FormatBytes(pinned) + " pinned by running tasks, " + FormatBytes(reserved_bytes_) +
        " being downloaded); raise --disk on this worker");
  }
  std::sort(candidates.begin(), candidates.end());
  for (const auto& [last_use, victim] : candidates) {
    if (cached_bytes_ + reserved_bytes_ + incoming <= budget_bytes_) break;
    absl::Status removed = store_->Remove(victim);
    if (!removed.ok() && !absl::IsNotFound(removed)) return removed;
    cached_bytes_ -= entries_[victim].size;
    entries_.erase(victim);
  }
  return absl::OkStatus();
}

void BlobCache::Release(const std::string& digest) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(digest);
  ARTEL_CHECK(it != entries_.end() && it->second.pins > 0,
              "BlobCache::Release of blob " + digest + " that is not pinned");
  it->second.pins--;
}

std::vector<std::string> BlobCache::CachedDigests() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [digest, entry] : entries_) out.push_back(digest);
  return out;
}

std::vector<std::string> BlobCache::PlacementHints(uint64_t min_bytes, size_t max) const {
  std::vector<std::pair<uint64_t, const std::string*>> big;
  absl::MutexLock lock(&mu_);
  for (const auto& [digest, entry] : entries_) {
    if (entry.size >= min_bytes) big.emplace_back(entry.last_use, &digest);
  }
  const size_t n = std::min(max, big.size());
  std::partial_sort(big.begin(), big.begin() + static_cast<std::ptrdiff_t>(n), big.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(*big[i].second);
  return out;
}

uint64_t BlobCache::UsedBytes() const {
  absl::MutexLock lock(&mu_);
  return cached_bytes_ + reserved_bytes_;
}

}  // namespace artel
