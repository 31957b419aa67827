#include "blob/blob_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "common/units.h"

namespace artel {
namespace {

namespace fs = std::filesystem;

absl::Status ErrnoError(const std::string& what, const fs::path& path) {
  return absl::InternalError(what + " '" + path.string() + "': " + std::strerror(errno) +
                             "; check that the blob directory is writable and the disk not full");
}

absl::Status FsError(const std::string& what, const fs::path& path, const std::error_code& ec) {
  return absl::InternalError(what + " '" + path.string() + "': " + ec.message() +
                             "; check that the blob directory is writable and the disk not full");
}

// Makes a rename or unlink in `dir` durable. Best effort: failures only
// weaken crash safety for that one entry.
void SyncDir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string MalformedDigestMessage(const std::string& digest) {
  return "blob digest '" + digest +
         "' is malformed; expected 64 lower-case hex characters (a SHA-256 digest)";
}

}  // namespace

// ---------------------------------------------------------------- BlobWriter

BlobWriter::BlobWriter(BlobStore& store, std::string digest, fs::path temp, int fd)
    : store_(store),
      digest_(std::move(digest)),
      temp_(std::move(temp)),
      fd_(fd),
      expected_size_(BlobStore::kUnknownSize) {}

BlobWriter::~BlobWriter() {
  if (!committed_) Discard();
}

void BlobWriter::Discard() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  std::error_code ec;
  fs::remove(temp_, ec);
}

absl::Status BlobWriter::Fail(absl::Status status) {
  failed_ = status;
  Discard();
  return status;
}

absl::Status BlobWriter::DeclareSize(uint64_t size) {
  if (!failed_.ok()) return failed_;
  if (expected_size_ != BlobStore::kUnknownSize) {
    if (size == expected_size_) return absl::OkStatus();
    return Fail(absl::InvalidArgumentError(
        "blob " + digest_ + " was announced as " + std::to_string(expected_size_) +
        " bytes but the sender now declares " + std::to_string(size) + "; upload it again"));
  }
  if (absl::Status s = store_.CheckSize(digest_, size); !s.ok()) return Fail(s);
  if (admit_) {
    if (absl::Status s = admit_(size); !s.ok()) return Fail(s);
  }
  expected_size_ = size;
  return absl::OkStatus();
}

absl::Status BlobWriter::Write(std::string_view chunk) {
  if (!failed_.ok()) return failed_;
  if (committed_) return absl::FailedPreconditionError("blob " + digest_ + " is already committed");
  if (expected_size_ == BlobStore::kUnknownSize) {
    return Fail(absl::FailedPreconditionError("blob " + digest_ +
                                              ": data arrived before its size was declared"));
  }
  if (chunk.size() > expected_size_ - written_) {
    return Fail(absl::InvalidArgumentError(
        "blob " + digest_ + ": received more than the declared " + std::to_string(expected_size_) +
        " bytes; the sender's size is wrong, upload it again"));
  }
  hasher_.Update(chunk);
  const char* p = chunk.data();
  size_t left = chunk.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError("cannot write blob temp file", temp_));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  written_ += chunk.size();
  return absl::OkStatus();
}

absl::StatusOr<std::string> BlobWriter::Commit() {
  if (!failed_.ok()) return failed_;
  if (committed_) return absl::FailedPreconditionError("blob " + digest_ + " is already committed");
  if (expected_size_ == BlobStore::kUnknownSize) {
    return Fail(absl::FailedPreconditionError("blob " + digest_ +
                                              ": committed before its size was declared"));
  }
  if (written_ != expected_size_) {
    return Fail(absl::InvalidArgumentError(
        "blob " + digest_ + ": received " + std::to_string(written_) + " of the declared " +
        std::to_string(expected_size_) + " bytes; the transfer was cut short, upload it again"));
  }
  std::string got = hasher_.FinishHex();
  if (got != digest_) {
    return Fail(absl::DataLossError("blob digest mismatch: expected " + digest_ + ", got " + got +
                                    "; the data was corrupted in transit, upload it again"));
  }
  if (::fsync(fd_) != 0) return Fail(ErrnoError("cannot fsync blob temp file", temp_));
  if (::close(fd_) != 0) {
    fd_ = -1;
    return Fail(ErrnoError("cannot close blob temp file", temp_));
  }
  fd_ = -1;
  if (absl::Status s = store_.Publish(digest_, written_, temp_); !s.ok()) return Fail(s);
  committed_ = true;
  return digest_;
}

// ----------------------------------------------------------------- BlobStore

BlobStore::BlobStore(fs::path root, uint64_t max_blob_bytes, uint64_t total_bytes, PgBlobs* shared)
    : root_(std::move(root)),
      shared_(shared),
      tmp_dir_(root_ / "tmp"),
      max_blob_bytes_(max_blob_bytes),
      total_bytes_(total_bytes) {}

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(fs::path root, uint64_t max_blob_bytes,
                                                           PgBlobs* shared) {
  std::error_code ec;
  fs::create_directories(root / "tmp", ec);
  if (ec) return FsError("cannot create blob directory", root / "tmp", ec);
  for (const auto& entry : fs::directory_iterator(root / "tmp", ec)) {
    fs::remove_all(entry.path(), ec);
    if (ec) return FsError("cannot remove leftover temp file", entry.path(), ec);
  }
  if (ec) return FsError("cannot list", root / "tmp", ec);
  auto store = std::unique_ptr<BlobStore>(new BlobStore(root, max_blob_bytes, 0, shared));
  uint64_t total = 0;
  for (const StoredBlob& blob : store->List()) total += blob.size;
  absl::MutexLock lock(&store->mu_);
  store->total_bytes_ = total;
  return store;
}

fs::path BlobStore::LocalPath(const std::string& digest) const {
  if (!IsSha256Hex(digest)) return root_ / "invalid-digest";
  return root_ / digest.substr(0, 2) / digest;
}

bool BlobStore::HasLocal(const std::string& digest) const {
  if (!IsSha256Hex(digest)) return false;
  std::error_code ec;
  return fs::is_regular_file(LocalPath(digest), ec);
}

fs::path BlobStore::PathOf(const std::string& digest) const {
  if (shared_ != nullptr && IsSha256Hex(digest) && !HasLocal(digest)) {
    // Thread-safe like every write; const only in what callers see.
    absl::Status s = const_cast<BlobStore*>(this)->FetchShared(digest);
    (void)s;  // not found or failed: the path does not exist, as callers expect
  }
  return LocalPath(digest);
}

absl::Status BlobStore::FetchShared(const std::string& digest) {
  ASSIGN_OR_RETURN(uint64_t size, shared_->SizeOf(digest));
  ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> writer, BeginWrite(digest, size));
  RETURN_IF_ERROR(
      shared_->Fetch(digest, [&writer](std::string_view chunk) { return writer->Write(chunk); }));
  return writer->Commit().status();
}

bool BlobStore::Has(const std::string& digest) const {
  if (HasLocal(digest)) return true;
  return shared_ != nullptr && IsSha256Hex(digest) && shared_->SizeOf(digest).ok();
}

absl::StatusOr<uint64_t> BlobStore::SizeOf(const std::string& digest) const {
  std::error_code ec;
  uint64_t size = fs::file_size(LocalPath(digest), ec);
  if (!ec) return size;
  if (shared_ != nullptr && IsSha256Hex(digest)) return shared_->SizeOf(digest);
  return absl::NotFoundError("blob " + digest + " is not stored; upload it first");
}

absl::Status BlobStore::CheckSize(const std::string& digest, uint64_t size) const {
  if (size <= max_blob_bytes_) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      "blob " + digest + " is " + FormatBytes(size) + " (" + std::to_string(size) +
      " bytes), above the limit of " + FormatBytes(max_blob_bytes_) + " (" +
      std::to_string(max_blob_bytes_) + " bytes) per blob; split the data into smaller blobs");
}

absl::StatusOr<std::unique_ptr<BlobWriter>> BlobStore::BeginWrite(
    const std::string& expected_digest, uint64_t expected_size, BlobAdmitFn admit) {
  if (!IsSha256Hex(expected_digest)) {
    return absl::InvalidArgumentError(MalformedDigestMessage(expected_digest));
  }
  if (expected_size != kUnknownSize) RETURN_IF_ERROR(CheckSize(expected_digest, expected_size));
  fs::path temp = tmp_dir_ / (expected_digest + "." + std::to_string(::getpid()) + "." +
                              std::to_string(next_temp_id_.fetch_add(1)) + ".part");
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create blob temp file", temp);
  auto writer =
      std::unique_ptr<BlobWriter>(new BlobWriter(*this, expected_digest, std::move(temp), fd));
  writer->admit_ = std::move(admit);
  if (expected_size != kUnknownSize) RETURN_IF_ERROR(writer->DeclareSize(expected_size));
  return writer;
}

absl::Status BlobStore::Publish(const std::string& digest, uint64_t size, const fs::path& temp) {
  fs::path dest = LocalPath(digest);
  std::error_code ec;
  fs::create_directories(dest.parent_path(), ec);
  if (ec) return FsError("cannot create blob directory", dest.parent_path(), ec);
  {
    absl::MutexLock lock(&mu_);
    if (fs::is_regular_file(dest, ec)) {
      fs::remove(temp, ec);
      fs::last_write_time(dest, fs::file_time_type::clock::now(), ec);
    } else {
      fs::rename(temp, dest, ec);
      if (ec) return FsError("cannot move blob into place at", dest, ec);
      SyncDir(dest.parent_path());
      total_bytes_ += size;
    }
  }
  // Acknowledged only once every coordinator can read it (a no-op when the
  // database has it already).
  if (shared_ != nullptr) return shared_->Put(digest, size, dest);
  return absl::OkStatus();
}

absl::StatusOr<std::string> BlobStore::PutBytes(std::string_view data) {
  std::string digest = Sha256Hex(data);
  if (shared_ == nullptr && HasLocal(digest)) {  // with a shared store, Publish makes sure
    (void)Touch(digest);
    return digest;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> writer, BeginWrite(digest, data.size()));
  RETURN_IF_ERROR(writer->Write(data));
  return writer->Commit();
}

absl::StatusOr<std::string> BlobStore::PutFile(const fs::path& file) {
  std::error_code ec;
  uint64_t size = fs::file_size(file, ec);
  if (ec) return absl::NotFoundError("cannot read '" + file.string() + "': " + ec.message());
  ASSIGN_OR_RETURN(std::string digest, Sha256File(file));
  if (shared_ == nullptr && HasLocal(digest)) {  // with a shared store, Publish makes sure
    (void)Touch(digest);
    return digest;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> writer, BeginWrite(digest, size));
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot open '" + file.string() + "'");
  std::string buf(1 << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    RETURN_IF_ERROR(writer->Write(std::string_view(buf.data(), static_cast<size_t>(in.gcount()))));
  }
  if (in.bad()) return absl::DataLossError("read error on '" + file.string() + "'");
  // A file modified while it was copied fails Commit's size or digest check.
  return writer->Commit();
}

absl::Status BlobStore::Remove(const std::string& digest) {
  fs::path path = LocalPath(digest);
  absl::MutexLock lock(&mu_);
  std::error_code ec;
  uint64_t size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError("blob " + digest + " is not stored; nothing to remove");
  if (!fs::remove(path, ec) || ec) return FsError("cannot remove blob", path, ec);
  total_bytes_ -= size;
  return absl::OkStatus();
}

absl::Status BlobStore::Touch(const std::string& digest) {
  std::error_code ec;
  fs::last_write_time(LocalPath(digest), fs::file_time_type::clock::now(), ec);
  if (ec) return absl::NotFoundError("blob " + digest + " is not stored; cannot mark it used");
  return absl::OkStatus();
}

std::vector<StoredBlob> BlobStore::List() const {
  std::vector<StoredBlob> out;
  std::error_code ec;
  for (const auto& shard : fs::directory_iterator(root_, ec)) {
    std::string name = shard.path().filename().string();
    if (name.size() != 2 || !shard.is_directory(ec)) continue;
    for (const auto& entry : fs::directory_iterator(shard.path(), ec)) {
      std::string digest = entry.path().filename().string();
      if (!IsSha256Hex(digest) || digest.compare(0, 2, name) != 0) continue;
      StoredBlob blob;
      blob.digest = digest;
      blob.size = entry.file_size(ec);
      if (ec) continue;  // removed concurrently
      blob.last_used = entry.last_write_time(ec);
      if (ec) continue;
      out.push_back(std::move(blob));
    }
  }
  return out;
}

uint64_t BlobStore::TotalBytes() const {
  absl::MutexLock lock(&mu_);
  return total_bytes_;
}

}  // namespace artel
