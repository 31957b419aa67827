#include "blob/blob_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace artel {
namespace {

// Closes a file descriptor on scope exit.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() { ::close(fd_); }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

grpc::Status NotStored(const std::string& digest) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND,
                      "blob " + digest + " is not stored on the coordinator; upload it first");
}

}  // namespace

BlobServiceImpl::BlobServiceImpl(BlobStore& store,
                                 std::function<grpc::Status(grpc::ServerContext*)> authorize)
    : store_(store), authorize_(std::move(authorize)) {}

grpc::Status BlobServiceImpl::Upload(grpc::ServerContext* context,
                                     grpc::ServerReader<v1::UploadChunk>* reader,
                                     v1::UploadResponse* response) {
  if (grpc::Status auth = authorize_(context); !auth.ok()) return auth;
  v1::UploadChunk chunk;
  if (!reader->Read(&chunk)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "upload stream was empty; the first chunk must carry the blob's SHA-256 "
                        "digest and size");
  }
  if (!IsSha256Hex(chunk.digest())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first upload chunk must carry the blob's digest (64 lower-case hex "
                        "characters of SHA-256) and its size; got digest '" +
                            chunk.digest() + "'");
  }
  absl::StatusOr<std::unique_ptr<BlobWriter>> writer =
      store_.BeginWrite(chunk.digest(), chunk.size());
  if (!writer.ok()) return ToGrpcStatus(writer.status());
  do {
    if (absl::Status s = (*writer)->Write(chunk.data()); !s.ok()) return ToGrpcStatus(s);
    bytes_received_.fetch_add(chunk.data().size(), std::memory_order_relaxed);
  } while (reader->Read(&chunk));
  if (context->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "upload cancelled by the client");
  }
  absl::StatusOr<std::string> digest = (*writer)->Commit();
  if (!digest.ok()) return ToGrpcStatus(digest.status());
  response->set_digest(*digest);
  response->set_size((*writer)->bytes_written());
  return grpc::Status::OK;
}

grpc::Status BlobServiceImpl::Download(grpc::ServerContext* context,
                                       const v1::DownloadRequest* request,
                                       grpc::ServerWriter<v1::DownloadChunk>* writer) {
  if (grpc::Status auth = authorize_(context); !auth.ok()) return auth;
  const std::string& digest = request->digest();
  if (!IsSha256Hex(digest)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "blob digest '" + digest +
                            "' is malformed; expected 64 lower-case hex characters (SHA-256)");
  }
  // Reading through one descriptor keeps the data consistent even if the
  // blob is removed meanwhile.
  int fd = ::open(store_.PathOf(digest).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotStored(digest);
  FdCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return NotStored(digest);
  const uint64_t total = static_cast<uint64_t>(st.st_size);

  v1::DownloadChunk chunk;
  chunk.set_size(total);
  std::string buf(kBlobChunkBytes, '\0');
  uint64_t sent = 0;
  bool first = true;
  while (first || sent < total) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kBlobChunkBytes, total - sent));
    size_t have = 0;
    while (have < want) {
      ssize_t n = ::read(fd, buf.data() + have, want - have);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        return grpc::Status(grpc::StatusCode::INTERNAL,
                            "cannot read blob " + digest + " on the coordinator: " +
                                (n == 0 ? std::string("file ended early") : std::strerror(errno)) +
                                "; check its blob directory");
      }
      have += static_cast<size_t>(n);
    }
    chunk.set_data(buf.data(), have);
    if (!writer->Write(chunk)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "download cancelled by the client");
    }
    sent += have;
    bytes_sent_.fetch_add(have, std::memory_order_relaxed);
    first = false;
    chunk.clear_size();
  }
  return grpc::Status::OK;
}

grpc::Status BlobServiceImpl::HasBlobs(grpc::ServerContext* context,
                                       const v1::HasBlobsRequest* request,
                                       v1::HasBlobsResponse* response) {
  if (grpc::Status auth = authorize_(context); !auth.ok()) return auth;
  for (const std::string& digest : request->digests()) response->add_present(store_.Has(digest));
  return grpc::Status::OK;
}

}  // namespace artel
