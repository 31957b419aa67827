// What a store shared through PostgreSQL adds: a blob one coordinator stored
// is readable by another (through its own cache), verified on the way.
#include <libpq-fe.h>

#include <fstream>

#include "blob/blob_store.h"
#include "blob/blob_test_util.h"
#include "gtest/gtest.h"
#include "store/pg_blobs.h"
#include "store/pg_test_server.h"

namespace artel {
namespace {

class SharedBlobs : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = PgTestServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    for (auto* pg : {&pg_a_, &pg_b_}) {
      auto opened = PgBlobs::Open(server_->Url());
      ASSERT_TRUE(opened.ok()) << opened.status();
      *pg = *std::move(opened);
    }
    auto a = BlobStore::Open(dir_.path() / "a", 4ull << 30, pg_a_.get());
    auto b = BlobStore::Open(dir_.path() / "b", 4ull << 30, pg_b_.get());
    ASSERT_TRUE(a.ok() && b.ok());
    a_ = *std::move(a);
    b_ = *std::move(b);
  }
  static std::string Read(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }

  ScratchDir dir_;
  std::unique_ptr<PgTestServer> server_;
  std::unique_ptr<PgBlobs> pg_a_, pg_b_;
  std::unique_ptr<BlobStore> a_, b_;  // two coordinators' caches
};

TEST_F(SharedBlobs, ABlobOneCoordinatorStoredIsReadByAnotherThroughItsCache) {
  std::string data(3 * 1024 * 1024 + 17, '\0');  // several chunks
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 1000);
  auto digest = a_->PutBytes(data);
  ASSERT_TRUE(digest.ok()) << digest.status();

  EXPECT_TRUE(b_->Has(*digest));
  EXPECT_EQ(*b_->SizeOf(*digest), data.size());
  EXPECT_TRUE(b_->List().empty());  // not cached yet
  const std::filesystem::path path = b_->PathOf(*digest);
  EXPECT_EQ(path, dir_.path() / "b" / digest->substr(0, 2) / *digest);
  EXPECT_EQ(Read(path), data);
  EXPECT_EQ(b_->List().size(), 1u);  // cached now
}

TEST_F(SharedBlobs, ACorruptedChunkIsCaughtByTheDigestAndNeverCached) {
  auto digest = a_->PutBytes("precious bytes");
  ASSERT_TRUE(digest.ok());
  PGconn* conn = PQconnectdb(server_->Url().c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK);
  PGresult* r = PQexec(conn, "UPDATE artel_blob_chunks SET data = 'tampered bytes'::bytea");
  EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(conn);

  EXPECT_FALSE(std::filesystem::exists(b_->PathOf(*digest)));
  EXPECT_TRUE(b_->List().empty());
}

TEST_F(SharedBlobs, AnUploadIsAcknowledgedOnlyOnceTheDatabaseHasIt) {
  ASSERT_TRUE(server_->Stop().ok());
  auto refused = a_->PutBytes("while the database is down");
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  ASSERT_TRUE(server_->Restart().ok());
  auto again = a_->PutBytes("while the database is down");  // the client retries
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Read(b_->PathOf(*again)), "while the database is down");
}

}  // namespace
}  // namespace artel
