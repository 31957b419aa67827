// Client side of BlobService: uploads and downloads blobs over gRPC.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "artel/v1/artel.grpc.pb.h"
#include "blob/blob_store.h"
#include "common/status.h"

namespace artel {

struct BlobClientOptions {
  // Deadline of one Upload or Download call. Default 10 min.
  std::chrono::milliseconds transfer_timeout{10 * 60 * 1000};
  // Deadline of one HasBlobs call. Default 30 s.
  std::chrono::milliseconds query_timeout{30 * 1000};
  // Bytes of data per upload message. Default 1 MiB.
  size_t chunk_bytes = 1 << 20;
};

// Sends "authorization: Bearer <token>" with every call. Errors keep the
// server's status code and message, prefixed with what was being done.
// Thread-safe (each call uses its own context).
class BlobClient {
 public:
  BlobClient(std::shared_ptr<grpc::Channel> channel, std::string token,
             BlobClientOptions options = {});

  // Hashes `file`, skips the transfer if the server already has it, and
  // returns the digest.
  absl::StatusOr<std::string> UploadFile(const std::filesystem::path& file);
  absl::StatusOr<std::string> UploadBytes(std::string_view data);
  // Streams the blob into `into`, declaring its size from the first chunk.
  // The caller commits `into` (which verifies the digest).
  absl::Status Download(const std::string& digest, BlobWriter& into);
  // Downloads to `dest`, verifying size and digest; `dest` appears complete
  // or not at all (written next to it, then renamed).
  absl::Status DownloadToFile(const std::string& digest, const std::filesystem::path& dest);
  // present[i] answers digests[i].
  absl::StatusOr<std::vector<bool>> Has(const std::vector<std::string>& digests);

 private:
  // Calls `on_size(total bytes)` once, then `on_data` for every chunk.
  absl::Status StreamDownload(const std::string& digest,
                              const std::function<absl::Status(uint64_t)>& on_size,
                              const std::function<absl::Status(std::string_view)>& on_data);
  // Uploads `size` bytes produced by `read(buf, cap)` (bytes read, 0 at end).
  absl::StatusOr<std::string> Upload(
      const std::string& digest, uint64_t size,
      const std::function<absl::StatusOr<size_t>(char*, size_t)>& read);
  void Prepare(grpc::ClientContext& context, std::chrono::milliseconds timeout) const;

  std::unique_ptr<v1::BlobService::Stub> stub_;
  const std::string token_;
  const BlobClientOptions options_;
};

}  // namespace artel
