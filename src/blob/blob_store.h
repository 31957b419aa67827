// Content-addressed blob files on local disk.
//
// A blob is an immutable byte string named by the lower-case hex SHA-256 of
// its content. Blobs live at `<root>/<first 2 hex>/<digest>`; data being
// written goes to `<root>/tmp/` first and is fsynced and renamed into place
// only after its size and digest are verified, so after a crash a blob is
// either complete and verified or absent.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/sha256.h"
#include "common/status.h"
#include "store/pg_blobs.h"

namespace artel {

class BlobStore;

// One blob on disk, as listed by BlobStore::List.
struct StoredBlob {
  std::string digest;
  uint64_t size = 0;  // bytes
  // Last time the blob was written or touched (BlobStore::Touch), taken from
  // the file's modification time.
  std::filesystem::file_time_type last_used;
};

// Called once with the blob's size as soon as it is known (at BeginWrite, or
// at BlobWriter::DeclareSize when the size was unknown), before any byte is
// written. A non-OK status refuses the write and is returned to the caller.
using BlobAdmitFn = std::function<absl::Status(uint64_t size)>;

// Streams one blob into a temp file, verifying it on Commit. Created by
// BlobStore::BeginWrite. Not thread-safe (one writer per stream). The store
// must outlive the writer. Destroying a writer without a successful Commit
// removes its temp file.
class BlobWriter {
 public:
  ~BlobWriter();
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  // Sets the size when BeginWrite was given BlobStore::kUnknownSize, or
  // checks it against the size given there. Refuses sizes above the store's
  // max_blob_bytes (RESOURCE_EXHAUSTED) and runs the admit callback.
  absl::Status DeclareSize(uint64_t size);
  // Appends `chunk`. Fails (INVALID_ARGUMENT) once more bytes arrive than the
  // declared size, and (FAILED_PRECONDITION) before a size is declared. After
  // any failure every later call returns that failure.
  absl::Status Write(std::string_view chunk);
  // Verifies size (INVALID_ARGUMENT) and digest (DATA_LOSS), then makes the
  // blob visible and returns its digest. If the blob already existed the temp
  // file is discarded. REQUIRES: called at most once.
  absl::StatusOr<std::string> Commit();

  const std::string& expected_digest() const { return digest_; }
  uint64_t bytes_written() const { return written_; }

 private:
  friend class BlobStore;
  BlobWriter(BlobStore& store, std::string digest, std::filesystem::path temp, int fd);
  absl::Status Fail(absl::Status status);
  void Discard();

  BlobStore& store_;
  const std::string digest_;
  const std::filesystem::path temp_;
  int fd_;  // -1 once closed
  uint64_t expected_size_;
  uint64_t written_ = 0;
  BlobAdmitFn admit_;
  Sha256 hasher_;
  absl::Status failed_;
  bool committed_ = false;
};

// Thread-safe: every method may be called concurrently. Several stores must
// not share one root directory.
class BlobStore {
 public:
  static constexpr uint64_t kUnknownSize = ~uint64_t{0};

  // Opens (creating if needed) the store at `root`, removing temp files a
  // crash left behind. Blobs larger than `max_blob_bytes` are refused.
  //
  // With `shared` (must outlive the store), blobs live in PostgreSQL where
  // every coordinator reads them, and `root` is this process's cache: a
  // write is acknowledged once it is in both; Has, SizeOf and PathOf also
  // find blobs only the database holds, and PathOf copies such a blob into
  // the cache (verified) before returning its path. List, TotalBytes, Remove
  // and Touch concern the cache only.
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(std::filesystem::path root,
                                                         uint64_t max_blob_bytes = 4ull << 30,
                                                         PgBlobs* shared = nullptr);

  BlobStore(const BlobStore&) = delete;
  BlobStore& operator=(const BlobStore&) = delete;

  // False for malformed digests.
  bool Has(const std::string& digest) const;
  // Size in bytes, or NOT_FOUND.
  absl::StatusOr<uint64_t> SizeOf(const std::string& digest) const;
  // Where the blob lives (or would live). For a malformed digest, a path
  // that never exists. With a shared store, fetches the blob into the cache
  // first if only the database has it.
  std::filesystem::path PathOf(const std::string& digest) const;

  // Stores `data` / a copy of `file`; returns the digest. Idempotent.
  absl::StatusOr<std::string> PutBytes(std::string_view data);
  absl::StatusOr<std::string> PutFile(const std::filesystem::path& file);

  // Starts streaming a blob whose digest and size (bytes, or kUnknownSize to
  // be declared later with BlobWriter::DeclareSize) the sender announced.
  // Refuses a malformed digest (INVALID_ARGUMENT) and a size above
  // max_blob_bytes (RESOURCE_EXHAUSTED). `admit`, if set, is called as
  // described at BlobAdmitFn.
  absl::StatusOr<std::unique_ptr<BlobWriter>> BeginWrite(const std::string& expected_digest,
                                                         uint64_t expected_size,
                                                         BlobAdmitFn admit = nullptr);

  // Deletes a blob; NOT_FOUND if absent. A reader that opened the file
  // before keeps reading it (POSIX unlink semantics).
  absl::Status Remove(const std::string& digest);
  // Marks the blob as used now (sets its modification time).
  absl::Status Touch(const std::string& digest);
  // Every stored blob, in no particular order.
  std::vector<StoredBlob> List() const;
  // Sum of the sizes of stored blobs, in bytes.
  uint64_t TotalBytes() const;

  const std::filesystem::path& root() const { return root_; }
  uint64_t max_blob_bytes() const { return max_blob_bytes_; }

 private:
  friend class BlobWriter;
  BlobStore(std::filesystem::path root, uint64_t max_blob_bytes, uint64_t total_bytes,
            PgBlobs* shared);
  bool HasLocal(const std::string& digest) const;
  std::filesystem::path LocalPath(const std::string& digest) const;
  // Copies a blob only the shared store holds into the cache (verified).
  absl::Status FetchShared(const std::string& digest);
  absl::Status CheckSize(const std::string& digest, uint64_t size) const;
  // Renames a verified temp file into place (or drops it if the blob exists).
  absl::Status Publish(const std::string& digest, uint64_t size, const std::filesystem::path& temp);

  const std::filesystem::path root_;
  PgBlobs* const shared_;  // null: local only
  const std::filesystem::path tmp_dir_;
  const uint64_t max_blob_bytes_;
  std::atomic<uint64_t> next_temp_id_{0};
  mutable absl::Mutex mu_;
  uint64_t total_bytes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace artel
