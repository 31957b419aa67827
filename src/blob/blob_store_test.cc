#include "blob/blob_store.h"

#include <fstream>

#include "blob/blob_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/pg_test_server.h"

namespace artel {
namespace {

using ::testing::HasSubstr;

// The contract of a BlobStore, run on a local store and on one shared
// through a real PostgreSQL server (PgBlobs, a fresh database per test), for
// which the local directory is a cache.
class BlobStoreContract : public ::testing::TestWithParam<bool> {
 protected:
  bool shared() const { return GetParam(); }
  std::unique_ptr<BlobStore> OpenStore(const ScratchDir& dir, uint64_t max = 4ull << 30) {
    if (shared() && pg_ == nullptr) {
      // Stopped and removed when the test process exits.
      static absl::StatusOr<std::unique_ptr<PgTestServer>> server = PgTestServer::Start();
      EXPECT_TRUE(server.ok()) << server.status();
      if (!server.ok()) return nullptr;
      static int databases = 0;
      auto url = (*server)->CreateDatabase("blobs" + std::to_string(++databases));
      EXPECT_TRUE(url.ok()) << url.status();
      auto pg = PgBlobs::Open(*url);
      EXPECT_TRUE(pg.ok()) << pg.status();
      if (!pg.ok()) return nullptr;
      pg_ = *std::move(pg);
    }
    auto store = BlobStore::Open(dir.path() / "blobs", max, pg_.get());
    EXPECT_TRUE(store.ok()) << store.status();
    return std::move(*store);
  }
  std::unique_ptr<PgBlobs> pg_;  // outlives the stores of a test body
};

TEST_P(BlobStoreContract, PutBytesStoresUnderShardedPathAndHasFindsIt) {
  ScratchDir dir;
  auto store = OpenStore(dir);
  auto digest = store->PutBytes("hello");
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, Sha256Hex("hello"));
  EXPECT_TRUE(store->Has(*digest));
  EXPECT_EQ(store->PathOf(*digest), dir.path() / "blobs" / digest->substr(0, 2) / *digest);
  std::ifstream in(store->PathOf(*digest));
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "hello");
  EXPECT_EQ(*store->SizeOf(*digest), 5u);
  EXPECT_EQ(store->TotalBytes(), 5u);
  EXPECT_FALSE(store->Has(Sha256Hex("other")));
  EXPECT_TRUE(absl::IsNotFound(store->SizeOf(Sha256Hex("other")).status()));
}

TEST_P(BlobStoreContract, StreamingWriteIsVerifiedAndCommitted) {
  ScratchDir dir;
  auto store = OpenStore(dir);
  std::string data(300'000, 'x');
  auto writer = store->BeginWrite(Sha256Hex(data), data.size());
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (size_t i = 0; i < data.size(); i += 70'000) {
    ASSERT_TRUE((*writer)->Write(std::string_view(data).substr(i, 70'000)).ok());
  }
  EXPECT_FALSE(store->Has(Sha256Hex(data)));  // not visible before Commit
  auto digest = (*writer)->Commit();
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_TRUE(store->Has(*digest));
  EXPECT_EQ(store->TotalBytes(), data.size());
  EXPECT_TRUE(DirIsEmpty(store->root() / "tmp"));
}

TEST_P(BlobStoreContract, DigestMismatchIsRefusedAndLeavesNothingBehind) {
  ScratchDir dir;
  auto store = OpenStore(dir);
  std::string claimed = Sha256Hex("good");
  auto writer = store->BeginWrite(claimed, 4);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write("evil").ok());
  auto digest = (*writer)->Commit();
  EXPECT_EQ(digest.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(digest.status().message()),
              HasSubstr("blob digest mismatch: expected " + claimed + ", got " + Sha256Hex("evil") +
                        "; the data was corrupted in transit"));
  EXPECT_FALSE(store->Has(claimed));
  EXPECT_TRUE(DirIsEmpty(store->root() / "tmp"));
  EXPECT_EQ(store->TotalBytes(), 0u);
}

TEST_P(BlobStoreContract, RewriteOfExistingBlobIsStillVerified) {
  ScratchDir dir;
  auto store = OpenStore(dir);
  std::string digest = *store->PutBytes("good");
  auto writer = store->BeginWrite(digest, 4);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write("evil").ok());
  EXPECT_EQ((*writer)->Commit().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(*store->SizeOf(digest), 4u);
  EXPECT_TRUE(DirIsEmpty(store->root() / "tmp"));
}

TEST_P(BlobStoreContract, WriteBeyondDeclaredSizeFails) {
  ScratchDir dir;
  auto store = OpenStore(dir);
  auto writer = store->BeginWrite(Sha256Hex("abc"), 2);
  ASSERT_TRUE(writer.ok());
  absl::Status s = (*writer)->Write("abc");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("more than the declared 2 bytes"));
  EXPECT_FALSE((*writer)->Commit().ok());
  EXPECT_TRUE(DirIsEmpty(store->root() / "tmp"));
}

TEST_P(BlobStoreContract, CommitOfShortWriteFailsWithSizeMismatch) {
  ScratchDir dir;
  auto store = OpenStore(dir);
  auto writer = store->BeginWrite(Sha256Hex("abc"), 3);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write("ab").ok());
  auto digest = (*writer)->Commit();
  EXPECT_EQ(digest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(digest.status().message()), HasSubstr("received 2 of the declared 3"));
  EXPECT_FALSE(store->Has(Sha256Hex("abc")));
}

TEST_P(BlobStoreContract, OversizeIsRefusedAtBeginWriteNamingTheLimit) {
  ScratchDir dir;
  auto store = OpenStore(dir, /*max=*/1000);
  auto writer = store->BeginWrite(Sha256Hex("x"), 1001);
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(writer.status().message()), HasSubstr("1000 bytes"));
  EXPECT_TRUE(DirIsEmpty(store->root() / "tmp"));
  EXPECT_EQ(store->PutBytes(std::string(1001, 'a')).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_P(BlobStoreContract, MalformedDigestIsRefused) {
  ScratchDir dir;
  auto store = OpenStore(dir);
  for (std::string bad : {std::string("abc"), std::string(64, 'G'), "../" + std::string(61, 'a'),
                          std::string(64, 'A')}) {
    auto writer = store->BeginWrite(bad, 1);
    EXPECT_EQ(writer.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(writer.status().message()), HasSubstr("malformed"));
    EXPECT_FALSE(store->Has(bad));
  }
}

TEST_P(BlobStoreContract, WriterDestroyedWithoutCommitRemovesItsTempFile) {
  ScratchDir dir;
  auto store = OpenStore(dir);
  {
    auto writer = store->BeginWrite(Sha256Hex("abc"), 3);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write("ab").ok());
    EXPECT_FALSE(DirIsEmpty(store->root() / "tmp"));
  }
  EXPECT_TRUE(DirIsEmpty(store->root() / "tmp"));
  EXPECT_FALSE(store->Has(Sha256Hex("abc")));
}

TEST_P(BlobStoreContract, OpenRemovesLeftoverTempFilesAndCountsExistingBlobs) {
  ScratchDir dir;
  std::string digest;
  {
    auto store = OpenStore(dir);
    digest = *store->PutBytes("kept");
  }
  std::ofstream(dir.path() / "blobs" / "tmp" / "crashed.part") << "half";
  auto store = OpenStore(dir);
  EXPECT_TRUE(DirIsEmpty(store->root() / "tmp"));
  EXPECT_TRUE(store->Has(digest));
  EXPECT_EQ(store->TotalBytes(), 4u);
}

TEST_P(BlobStoreContract, PutIsIdempotent) {
  ScratchDir dir;
  auto store = OpenStore(dir);
  std::ofstream(dir.path() / "input.bin") << "same bytes";
  auto first = store->PutFile(dir.path() / "input.bin");
  auto second = store->PutBytes("same bytes");
  auto third = store->PutFile(dir.path() / "input.bin");
  ASSERT_TRUE(first.ok() && second.ok() && third.ok());
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(*first, *third);
  EXPECT_EQ(store->TotalBytes(), 10u);
  EXPECT_EQ(store->List().size(), 1u);
}

TEST_P(BlobStoreContract, RemoveDeletesTheBlobAndItsBytes) {
  ScratchDir dir;
  auto store = OpenStore(dir);
  std::string a = *store->PutBytes("aaaa");
  std::string b = *store->PutBytes("bb");
  ASSERT_TRUE(store->Remove(a).ok());
  // Shared: Remove drops the cached copy only; the database still has it.
  EXPECT_EQ(store->Has(a), shared());
  EXPECT_TRUE(store->Has(b));
  EXPECT_EQ(store->TotalBytes(), 2u);
  EXPECT_TRUE(absl::IsNotFound(store->Remove(a)));
}

TEST_P(BlobStoreContract, UnknownSizeIsDeclaredLaterAndPassedToAdmit) {
  ScratchDir dir;
  auto store = OpenStore(dir, /*max=*/100);
  uint64_t admitted = 0;
  auto writer = store->BeginWrite(Sha256Hex("abc"), BlobStore::kUnknownSize, [&](uint64_t size) {
    admitted = size;
    return absl::OkStatus();
  });
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->Write("abc").code(), absl::StatusCode::kFailedPrecondition);

  auto second = store->BeginWrite(Sha256Hex("abc"), BlobStore::kUnknownSize, [&](uint64_t size) {
    admitted = size;
    return absl::OkStatus();
  });
  EXPECT_EQ((*second)->DeclareSize(101).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(admitted, 0u);

  auto third = store->BeginWrite(Sha256Hex("abc"), BlobStore::kUnknownSize, [&](uint64_t size) {
    admitted = size;
    return absl::OkStatus();
  });
  ASSERT_TRUE((*third)->DeclareSize(3).ok());
  EXPECT_EQ(admitted, 3u);
  ASSERT_TRUE((*third)->Write("abc").ok());
  EXPECT_TRUE((*third)->Commit().ok());
}

INSTANTIATE_TEST_SUITE_P(Stores, BlobStoreContract, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("SharedPostgres") : std::string("Local");
                         });

}  // namespace
}  // namespace artel
