#include "blob/blob_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "blob/grpc_status.h"
#include "common/sha256.h"

namespace artel {
namespace {

namespace fs = std::filesystem;

absl::Status WithContext(const std::string& what, const grpc::Status& status) {
  absl::Status s = FromGrpcStatus(status);
  if (s.ok()) return s;
  return absl::Status(s.code(), what + ": " + std::string(s.message()));
}

absl::Status ErrnoError(const std::string& what, const fs::path& path) {
  return absl::InternalError(what + " '" + path.string() + "': " + std::strerror(errno) +
                             "; check that the directory is writable and the disk not full");
}

}  // namespace

BlobClient::BlobClient(std::shared_ptr<grpc::Channel> channel, std::string token,
                       BlobClientOptions options)
    : stub_(v1::BlobService::NewStub(std::move(channel))),
      token_(std::move(token)),
      options_(options) {}

void BlobClient::Prepare(grpc::ClientContext& context, std::chrono::milliseconds timeout) const {
  context.AddMetadata("authorization", "Bearer " + token_);
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

absl::StatusOr<std::vector<bool>> BlobClient::Has(const std::vector<std::string>& digests) {
  grpc::ClientContext context;
  Prepare(context, options_.query_timeout);
  v1::HasBlobsRequest request;
  for (const std::string& d : digests) request.add_digests(d);
  v1::HasBlobsResponse response;
  grpc::Status status = stub_->HasBlobs(&context, request, &response);
  if (!status.ok()) return WithContext("asking the coordinator which blobs it has", status);
  if (response.present_size() != static_cast<int>(digests.size())) {
    return absl::InternalError("the coordinator answered " +
                               std::to_string(response.present_size()) + " of " +
                               std::to_string(digests.size()) +
                               " blob queries; check that client and coordinator versions match");
  }
  return std::vector<bool>(response.present().begin(), response.present().end());
}

absl::StatusOr<std::string> BlobClient::Upload(
    const std::string& digest, uint64_t size,
    const std::function<absl::StatusOr<size_t>(char*, size_t)>& read) {
  ASSIGN_OR_RETURN(std::vector<bool> present, Has({digest}));
  if (present[0]) return digest;
  grpc::ClientContext context;
  Prepare(context, options_.transfer_timeout);
  v1::UploadResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::UploadChunk>> stream = stub_->Upload(&context, &response);
  v1::UploadChunk chunk;
  chunk.set_digest(digest);
  chunk.set_size(size);
  std::string buf(options_.chunk_bytes, '\0');
  absl::Status local;
  bool first = true;
  while (true) {
    absl::StatusOr<size_t> n = read(buf.data(), buf.size());
    if (!n.ok()) {
      local = n.status();
      context.TryCancel();
      break;
    }
    if (*n == 0 && !first) break;
    chunk.set_data(buf.data(), *n);
    // A failed write means the server ended the call; Finish says why.
    if (!stream->Write(chunk)) break;
    first = false;
    chunk.clear_digest();
    chunk.clear_size();
    if (*n == 0) break;
  }
  stream->WritesDone();
  grpc::Status status = stream->Finish();
  RETURN_IF_ERROR(local);
  if (!status.ok()) return WithContext("uploading blob " + digest, status);
  return response.digest();
}

absl::StatusOr<std::string> BlobClient::UploadFile(const fs::path& file) {
  std::error_code ec;
  uint64_t size = fs::file_size(file, ec);
  if (ec) return absl::NotFoundError("cannot upload '" + file.string() + "': " + ec.message());
  ASSIGN_OR_RETURN(std::string digest, Sha256File(file));
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot open '" + file.string() + "' for upload");
  return Upload(digest, size, [&](char* buf, size_t cap) -> absl::StatusOr<size_t> {
    in.read(buf, static_cast<std::streamsize>(cap));
    if (in.bad()) return absl::DataLossError("read error on '" + file.string() + "'");
    return static_cast<size_t>(in.gcount());
  });
}

absl::StatusOr<std::string> BlobClient::UploadBytes(std::string_view data) {
  size_t offset = 0;
  return Upload(Sha256Hex(data), data.size(), [&](char* buf, size_t cap) -> absl::StatusOr<size_t> {
    size_t n = std::min(cap, data.size() - offset);
    std::memcpy(buf, data.data() + offset, n);
    offset += n;
    return n;
  });
}

absl::Status BlobClient::StreamDownload(
    const std::string& digest, const std::function<absl::Status(uint64_t)>& on_size,
    const std::function<absl::Status(std::string_view)>& on_data) {
  grpc::ClientContext context;
  Prepare(context, options_.transfer_timeout);
  v1::DownloadRequest request;
  request.set_digest(digest);
  std::unique_ptr<grpc::ClientReader<v1::DownloadChunk>> stream =
      stub_->Download(&context, request);
  v1::DownloadChunk chunk;
  absl::Status local;
  bool first = true;
  while (local.ok() && stream->Read(&chunk)) {
    if (first) local = on_size(chunk.size());
    first = false;
    if (local.ok()) local = on_data(chunk.data());
  }
  if (!local.ok()) context.TryCancel();
  grpc::Status status = stream->Finish();
  RETURN_IF_ERROR(local);
  if (!status.ok()) return WithContext("downloading blob " + digest, status);
  if (first) {
    return absl::DataLossError("downloading blob " + digest +
                               ": the coordinator sent no data; try again");
  }
  return absl::OkStatus();
}

absl::Status BlobClient::Download(const std::string& digest, BlobWriter& into) {
  return StreamDownload(
      digest, [&](uint64_t size) { return into.DeclareSize(size); },
      [&](std::string_view data) { return into.Write(data); });
}

absl::Status BlobClient::DownloadToFile(const std::string& digest, const fs::path& dest) {
  static std::atomic<uint64_t> next_id{0};
  fs::path temp =
      dest.parent_path() / ("." + dest.filename().string() + "." + std::to_string(::getpid()) +
                            "." + std::to_string(next_id.fetch_add(1)) + ".part");
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create download file", temp);
  Sha256 hasher;
  uint64_t expected = 0;
  uint64_t written = 0;
  absl::Status s = StreamDownload(
      digest,
      [&](uint64_t size) {
        expected = size;
        return absl::OkStatus();
      },
      [&](std::string_view data) -> absl::Status {
        hasher.Update(data);
        for (size_t done = 0; done < data.size();) {
          ssize_t n = ::write(fd, data.data() + done, data.size() - done);
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) return ErrnoError("cannot write download file", temp);
          done += static_cast<size_t>(n);
        }
        written += data.size();
        return absl::OkStatus();
      });
  if (s.ok() && written != expected) {
    s = absl::DataLossError("downloading blob " + digest + ": received " + std::to_string(written) +
                            " of " + std::to_string(expected) + " bytes; try again");
  }
  if (s.ok()) {
    std::string got = hasher.FinishHex();
    if (got != digest) {
      s = absl::DataLossError("blob digest mismatch: expected " + digest + ", got " + got +
                              "; the data was corrupted in transit, download it again");
    }
  }
  if (s.ok() && ::fsync(fd) != 0) s = ErrnoError("cannot fsync download file", temp);
  if (::close(fd) != 0 && s.ok()) s = ErrnoError("cannot close download file", temp);
  std::error_code ec;
  if (s.ok()) {
    fs::rename(temp, dest, ec);
    if (ec)
      s = absl::InternalError("cannot move download into place at '" + dest.string() +
                              "': " + ec.message());
  }
  if (!s.ok()) fs::remove(temp, ec);
  return s;
}

}  // namespace artel
