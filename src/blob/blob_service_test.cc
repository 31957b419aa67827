#include "blob/blob_service.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <fstream>
#include <random>

#include "blob/blob_client.h"
#include "blob/blob_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace artel {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kMaxBlobBytes = 8 << 20;

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::string RandomBytes(size_t n) {
  std::mt19937_64 rng(42);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// A real server on an ephemeral loopback port and a real client.
class BlobServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::move(*BlobStore::Open(dir_.path() / "coordinator", kMaxBlobBytes));
    service_ = std::make_unique<BlobServiceImpl>(*store_, [this](grpc::ServerContext* context) {
      ++authorize_calls_;
      auto it = context->client_metadata().find("authorization");
      if (deny_ || it == context->client_metadata().end() || it->second != "Bearer secret") {
        return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token; run `artel login`");
      }
      return grpc::Status::OK;
    });
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
    client_ = std::make_unique<BlobClient>(channel_, "secret");
    stub_ = v1::BlobService::NewStub(channel_);
  }
  void TearDown() override { server_->Shutdown(); }

  // Sends one raw upload chunk, bypassing the client's checks.
  grpc::Status RawUpload(const std::string& digest, uint64_t size, const std::string& data) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer secret");
    v1::UploadResponse response;
    auto stream = stub_->Upload(&context, &response);
    v1::UploadChunk chunk;
    chunk.set_digest(digest);
    chunk.set_size(size);
    chunk.set_data(data);
    stream->Write(chunk);
    stream->WritesDone();
    return stream->Finish();
  }

  ScratchDir dir_;
  std::unique_ptr<BlobStore> store_;
  std::atomic<bool> deny_{false};
  std::atomic<int> authorize_calls_{0};
  std::unique_ptr<BlobServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<BlobClient> client_;
  std::unique_ptr<v1::BlobService::Stub> stub_;
};

TEST_F(BlobServiceTest, UploadThenDownloadRoundTripsA3MiBFile) {
  const std::string data = RandomBytes(3 << 20);
  const auto src = dir_.path() / "input.bin";
  std::ofstream(src, std::ios::binary) << data;

  auto digest = client_->UploadFile(src);
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, Sha256Hex(data));
  EXPECT_TRUE(store_->Has(*digest));

  const auto dest = dir_.path() / "out" / "copy.bin";
  std::filesystem::create_directories(dest.parent_path());
  ASSERT_TRUE(client_->DownloadToFile(*digest, dest).ok());
  EXPECT_EQ(ReadAll(dest), data);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dest.parent_path()), {}), 1);

  // Into another store's writer, as a worker cache does.
  auto local = std::move(*BlobStore::Open(dir_.path() / "worker"));
  auto writer = local->BeginWrite(*digest, BlobStore::kUnknownSize);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(client_->Download(*digest, **writer).ok());
  ASSERT_TRUE((*writer)->Commit().ok());
  EXPECT_EQ(ReadAll(local->PathOf(*digest)), data);
}

TEST_F(BlobServiceTest, EmptyBlobRoundTrips) {
  auto digest = client_->UploadBytes("");
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, Sha256Hex(""));
  const auto dest = dir_.path() / "empty";
  ASSERT_TRUE(client_->DownloadToFile(*digest, dest).ok());
  EXPECT_TRUE(std::filesystem::exists(dest));
  EXPECT_EQ(std::filesystem::file_size(dest), 0u);
}

TEST_F(BlobServiceTest, ReuploadOfAStoredBlobIsSkipped) {
  ASSERT_TRUE(client_->UploadBytes("payload").ok());
  const int before = authorize_calls_;
  auto again = client_->UploadBytes("payload");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, Sha256Hex("payload"));
  EXPECT_EQ(authorize_calls_ - before, 1);  // HasBlobs only, no Upload
}

TEST_F(BlobServiceTest, CorruptedUploadFailsAndStoresNothing) {
  const std::string claimed = Sha256Hex("good");
  grpc::Status status = RawUpload(claimed, 4, "evil");
  EXPECT_TRUE(status.error_code() == grpc::StatusCode::DATA_LOSS ||
              status.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_code();
  EXPECT_THAT(status.error_message(), HasSubstr("blob digest mismatch"));
  EXPECT_FALSE(store_->Has(claimed));
  EXPECT_TRUE(std::filesystem::is_empty(store_->root() / "tmp"));
  EXPECT_EQ(store_->TotalBytes(), 0u);
}

TEST_F(BlobServiceTest, UploadWithoutDigestInTheFirstChunkIsRefused) {
  grpc::Status status = RawUpload("", 4, "data");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("first upload chunk must carry"));
}

TEST_F(BlobServiceTest, OversizeDeclaredSizeIsRefusedNamingTheLimit) {
  grpc::Status status = RawUpload(Sha256Hex("x"), kMaxBlobBytes + 1, "x");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr(std::to_string(kMaxBlobBytes) + " bytes"));
  EXPECT_TRUE(std::filesystem::is_empty(store_->root() / "tmp"));
}

TEST_F(BlobServiceTest, DownloadOfAnUnknownDigestIsNotFoundWithAHint) {
  const std::string digest = Sha256Hex("never uploaded");
  const auto dest = dir_.path() / "missing.bin";
  absl::Status s = client_->DownloadToFile(digest, dest);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("blob " + digest + " is not stored on the coordinator; upload it first"));
  EXPECT_FALSE(std::filesystem::exists(dest));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.path()), {}), 1);  // store
}

TEST_F(BlobServiceTest, HasBlobsAnswersPerDigest) {
  ASSERT_TRUE(client_->UploadBytes("one").ok());
  auto present = client_->Has({Sha256Hex("one"), Sha256Hex("two"), "not-a-digest"});
  ASSERT_TRUE(present.ok()) << present.status();
  EXPECT_THAT(*present, ElementsAre(true, false, false));
}

TEST_F(BlobServiceTest, UnauthenticatedCallerIsBlockedFromEveryRpc) {
  ASSERT_TRUE(client_->UploadBytes("stored").ok());
  deny_ = true;
  EXPECT_EQ(client_->Has({Sha256Hex("stored")}).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(client_->UploadBytes("new").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(RawUpload(Sha256Hex("new"), 3, "new").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_FALSE(store_->Has(Sha256Hex("new")));
  absl::Status download = client_->DownloadToFile(Sha256Hex("stored"), dir_.path() / "x");
  EXPECT_EQ(download.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(download.message()), HasSubstr("artel login"));

  BlobClient wrong_token(channel_, "guess");
  deny_ = false;
  EXPECT_EQ(wrong_token.Has({Sha256Hex("stored")}).status().code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace artel
