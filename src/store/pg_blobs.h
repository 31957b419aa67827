// Blobs in PostgreSQL, so that every coordinator sharing a database can read
// what any of them stored: content-addressed, cut into chunks of 1 MiB
// (tables artel_blobs and artel_blob_chunks). A BlobStore opened with a
// PgBlobs keeps its local directory as a cache in front of it (see
// BlobStore::Open).
//
// Where this stops scaling: every blob byte passes through the database
// (its WAL, its backups, one connection per coordinator); fine for apps,
// data shards and checkpoints of models up to some hundreds of MB on a
// handful of coordinators. Beyond that the chunks belong in an object store
// (S3-style) with only their digests in PostgreSQL.
//
// Thread-safe (one connection, used under a lock).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"

struct pg_conn;

namespace artel {

class PgBlobs {
 public:
  // Connects to `url` (a libpq URL or connection string) and creates the
  // tables if missing. Unavailable, saying what to check, when the server
  // cannot be reached.
  static absl::StatusOr<std::unique_ptr<PgBlobs>> Open(const std::string& url);
  ~PgBlobs();
  PgBlobs(const PgBlobs&) = delete;
  PgBlobs& operator=(const PgBlobs&) = delete;

  // Stores the verified local file `file` as blob `digest` of `size` bytes,
  // in one transaction; a blob already stored is left as it is. Returns once
  // committed.
  absl::Status Put(const std::string& digest, uint64_t size, const std::filesystem::path& file);
  // Size of a stored blob; NotFound when it is not stored.
  absl::StatusOr<uint64_t> SizeOf(const std::string& digest);
  // Calls `sink` with the blob's bytes, chunk by chunk in order (the caller
  // verifies size and digest). NotFound when it is not stored; a sink error
  // stops the fetch and is returned.
  absl::Status Fetch(const std::string& digest,
                     const std::function<absl::Status(std::string_view chunk)>& sink);

 private:
  explicit PgBlobs(std::string url, std::string where);
  absl::Status EnsureConnectedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `fn` under the lock on a live connection, once more on a fresh
  // connection if it failed as Unavailable.
  template <typename Fn>
  auto Retrying(Fn fn) -> decltype(fn());
  absl::Status PutLocked(const std::string& digest, uint64_t size,
                         const std::filesystem::path& file) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<uint64_t> SizeOfLocked(const std::string& digest)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FetchLocked(const std::string& digest,
                           const std::function<absl::Status(std::string_view chunk)>& sink)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string url_, where_;
  absl::Mutex mu_;
  pg_conn* conn_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace artel
