// A worker's local cache of blobs (apps, task inputs) under a disk budget.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "blob/blob_store.h"
#include "common/status.h"

namespace artel {

// Wraps a BlobStore with a budget in bytes. Blobs in use are pinned
// (Acquire ... Release) and never evicted; others are evicted least recently
// used first when a new blob needs room. The cache owns the store: nothing
// else may write to or remove from it.
//
// Thread-safe.
class BlobCache {
 public:
  // Fills `writer` with the blob's bytes, declaring the size first
  // (BlobWriter::DeclareSize, which is where room is made); the cache commits.
  using FetchFn = std::function<absl::Status(BlobWriter& writer)>;

  // Takes over the blobs already in `store` (their file times give the LRU
  // order) and evicts down to `budget_bytes` at once if they exceed it.
  BlobCache(std::unique_ptr<BlobStore> store, uint64_t budget_bytes);
  BlobCache(const BlobCache&) = delete;
  BlobCache& operator=(const BlobCache&) = delete;

  // Returns the local path of `digest`, pinned until a matching Release.
  // When missing, calls `fetch` once even if several threads ask at the same
  // time (the others wait and share its result, error included). Fails with
  // RESOURCE_EXHAUSTED when the blob cannot fit in the budget even after
  // evicting every unpinned blob, INVALID_ARGUMENT for a malformed digest,
  // or with fetch's / the verification's error.
  absl::StatusOr<std::filesystem::path> Acquire(const std::string& digest, const FetchFn& fetch);
  // Unpins one Acquire. REQUIRES: `digest` is pinned.
  void Release(const std::string& digest);

  // Digests held locally.
  std::vector<std::string> CachedDigests() const;
  // Data-aware placement hints: digests of cached blobs of at least
  // `min_bytes` (inputs worth placing tasks near, such as data shards, not
  // the small per-round parameters), most recently used first, at most
  // `max`.
  std::vector<std::string> PlacementHints(uint64_t min_bytes, size_t max) const;
  // Bytes held by cached blobs plus room reserved by fetches in progress.
  uint64_t UsedBytes() const;
  uint64_t budget_bytes() const { return budget_bytes_; }

 private:
  struct Entry {
    uint64_t size = 0;
    int pins = 0;
    uint64_t last_use = 0;  // larger is more recent
  };
  struct Fetch {
    bool done = false;
    absl::Status status;
  };

  // Makes room for and reserves `size` bytes for `digest`.
  absl::Status Reserve(const std::string& digest, uint64_t size) ABSL_LOCKS_EXCLUDED(mu_);
  // Evicts unpinned entries, least recently used first, until `incoming`
  // more bytes fit. Fails without evicting anything if they cannot fit.
  absl::Status MakeRoomLocked(const std::string& digest, uint64_t incoming)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::filesystem::path> FetchAndPin(const std::string& digest, const FetchFn& fetch,
                                                    std::shared_ptr<Fetch> pending)
      ABSL_LOCKS_EXCLUDED(mu_);

  const std::unique_ptr<BlobStore> store_;
  const uint64_t budget_bytes_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Fetch>> fetching_ ABSL_GUARDED_BY(mu_);
  uint64_t cached_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reserved_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t tick_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace artel
