// The coordinator's BlobService: uploads into and downloads from a BlobStore.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>

#include "artel/v1/artel.grpc.pb.h"
#include "blob/blob_store.h"
#include "blob/grpc_status.h"

namespace artel {

// Download chunk size in bytes (well under gRPC's 4 MiB message limit).
inline constexpr size_t kBlobChunkBytes = 1 << 20;

// Every RPC first calls `authorize` and returns its status when not OK.
// Thread-safe; `store` must outlive the service.
class BlobServiceImpl final : public v1::BlobService::Service {
 public:
  BlobServiceImpl(BlobStore& store, std::function<grpc::Status(grpc::ServerContext*)> authorize);

  // The first chunk carries the digest and size; the blob is stored only if
  // the bytes match both (DATA_LOSS / INVALID_ARGUMENT otherwise; sizes above
  // the store's limit are RESOURCE_EXHAUSTED).
  grpc::Status Upload(grpc::ServerContext* context, grpc::ServerReader<v1::UploadChunk>* reader,
                      v1::UploadResponse* response) override;
  // Streams chunks of kBlobChunkBytes; the first carries the total size.
  grpc::Status Download(grpc::ServerContext* context, const v1::DownloadRequest* request,
                        grpc::ServerWriter<v1::DownloadChunk>* writer) override;
  // present[i] answers digests[i].
  grpc::Status HasBlobs(grpc::ServerContext* context, const v1::HasBlobsRequest* request,
                        v1::HasBlobsResponse* response) override;

  // Blob bytes received by Upload and sent by Download so far (failed and
  // cancelled transfers included).
  uint64_t bytes_received() const { return bytes_received_.load(std::memory_order_relaxed); }
  uint64_t bytes_sent() const { return bytes_sent_.load(std::memory_order_relaxed); }

 private:
  BlobStore& store_;
  std::atomic<uint64_t> bytes_received_{0}, bytes_sent_{0};
  const std::function<grpc::Status(grpc::ServerContext*)> authorize_;
};

}  // namespace artel
