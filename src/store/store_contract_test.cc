// The contract every Store implementation keeps. Instantiated for SqliteStore
// on a file and in memory, and for PostgresStore on a real PostgreSQL server
// started for the test (PgTestServer).
#include <functional>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "store/pg_test_server.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace artel {
namespace {

using store_test::AsSnapshot;
using store_test::ExpectSnapshotEq;
using store_test::FullApp;
using store_test::FullReplica;
using store_test::FullTask;
using store_test::FullWorker;
using store_test::OneOfEach;

// Makes the Store under test. Open() may be called again once the previous
// store is destroyed: a persistent factory then opens the same data, a
// non-persistent one an empty store.
class StoreFactory {
 public:
  virtual ~StoreFactory() = default;
  virtual absl::StatusOr<std::unique_ptr<Store>> Open() = 0;
  virtual bool persistent() const = 0;
};

class SqliteFileFactory final : public StoreFactory {
 public:
  absl::StatusOr<std::unique_ptr<Store>> Open() override {
    ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> store, SqliteStore::Open(dir_.File("db")));
    return std::unique_ptr<Store>(std::move(store));
  }
  bool persistent() const override { return true; }

 private:
  store_test::TempDir dir_;
};

class SqliteMemoryFactory final : public StoreFactory {
 public:
  absl::StatusOr<std::unique_ptr<Store>> Open() override {
    ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> store, SqliteStore::Open(":memory:"));
    return std::unique_ptr<Store>(std::move(store));
  }
  bool persistent() const override { return false; }
};

// One server per test process (each test runs in a process of its own under
// ctest), a fresh database per factory.
class PostgresFactory final : public StoreFactory {
 public:
  absl::StatusOr<std::unique_ptr<Store>> Open() override {
    // Stopped and removed when the test process exits.
    static absl::StatusOr<std::unique_ptr<PgTestServer>> server = PgTestServer::Start();
    if (!server.ok()) return server.status();
    if (url_.empty()) {
      static int databases = 0;
      ASSIGN_OR_RETURN(url_, (*server)->CreateDatabase("contract" + std::to_string(++databases)));
    }
    ASSIGN_OR_RETURN(std::unique_ptr<PostgresStore> store, PostgresStore::Open(url_));
    return std::unique_ptr<Store>(std::move(store));
  }
  bool persistent() const override { return true; }

 private:
  std::string url_;
};

struct FactoryParam {
  std::string name;
  std::function<std::unique_ptr<StoreFactory>()> make;
};
void PrintTo(const FactoryParam& param, std::ostream* os) { *os << param.name; }

class StoreContractTest : public ::testing::TestWithParam<FactoryParam> {
 protected:
  void SetUp() override {
    factory_ = GetParam().make();
    Reopen();
  }
  void Reopen() {
    store_.reset();
    auto store = factory_->Open();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  StoreSnapshot MustLoad() {
    auto snapshot = store_->Load();
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    return snapshot.ok() ? std::move(*snapshot) : StoreSnapshot{};
  }

  std::unique_ptr<StoreFactory> factory_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreContractTest, LoadOfEmptyStoreIsEmpty) {
  ExpectSnapshotEq(MustLoad(), StoreSnapshot{});
}

TEST_P(StoreContractTest, ApplyThenLoadRoundTripsEveryRecordKindWithAllFields) {
  WriteBatch batch = OneOfEach(1);
  ASSERT_TRUE(store_->Apply(batch).ok());
  ExpectSnapshotEq(MustLoad(), AsSnapshot(batch));
}

TEST_P(StoreContractTest, EmptyBatchAppliesAndChangesNothing) {
  ASSERT_TRUE(store_->Apply(OneOfEach(1)).ok());
  ASSERT_TRUE(store_->Apply(WriteBatch{}).ok());
  ExpectSnapshotEq(MustLoad(), AsSnapshot(OneOfEach(1)));
}

TEST_P(StoreContractTest, TaskRecordDoesNotKeepItsReplicas) {
  WriteBatch batch;
  batch.tasks.push_back(FullTask(1));
  *batch.tasks[0].add_replicas() = FullReplica(10, 1);
  ASSERT_TRUE(store_->Apply(batch).ok());
  StoreSnapshot snapshot = MustLoad();
  ASSERT_EQ(snapshot.tasks.size(), 1u);
  EXPECT_EQ(snapshot.tasks[0].replicas_size(), 0);
  EXPECT_TRUE(snapshot.replicas.empty());
  ExpectSnapshotEq(snapshot, AsSnapshot(batch));
}

TEST_P(StoreContractTest, UpsertReplacesThePreviousVersionOfEveryRecordKind) {
  ASSERT_TRUE(store_->Apply(OneOfEach(1, /*version=*/1)).ok());
  ASSERT_TRUE(store_->Apply(OneOfEach(1, /*version=*/2)).ok());
  ExpectSnapshotEq(MustLoad(), AsSnapshot(OneOfEach(1, 2)));
}

TEST_P(StoreContractTest, DuplicateKeyWithinOneBatchKeepsTheLast) {
  WriteBatch batch = OneOfEach(1, /*version=*/1);
  batch.Append(OneOfEach(1, /*version=*/2));
  ASSERT_EQ(batch.size(), 16u);
  ASSERT_TRUE(store_->Apply(batch).ok());
  ExpectSnapshotEq(MustLoad(), AsSnapshot(OneOfEach(1, 2)));
}

TEST_P(StoreContractTest, AppVersionsOfOneNameAreSeparateRecords) {
  WriteBatch batch;
  batch.apps = {FullApp("primes", "1"), FullApp("primes", "2"), FullApp("sieve", "1")};
  ASSERT_TRUE(store_->Apply(batch).ok());
  ExpectSnapshotEq(MustLoad(), AsSnapshot(batch));
}

TEST_P(StoreContractTest, LoadSortsEveryTableByKeyIncludingIdsAbove2To63) {
  const uint64_t big = (uint64_t{1} << 63) + 5;
  WriteBatch batch;
  batch.Append(OneOfEach(big));
  batch.Append(OneOfEach(3));
  batch.Append(OneOfEach(1));
  batch.Append(OneOfEach(2));
  ASSERT_TRUE(store_->Apply(batch).ok());

  WriteBatch sorted;
  for (uint64_t id : {uint64_t{1}, uint64_t{2}, uint64_t{3}, big}) sorted.Append(OneOfEach(id));
  // Text keys sort bytewise, which here is id order too ("w1" < ... < "w9223...").
  ExpectSnapshotEq(MustLoad(), AsSnapshot(sorted));
}

TEST_P(StoreContractTest, AppliedDataSurvivesClosingAndReopening) {
  if (!factory_->persistent()) GTEST_SKIP() << GetParam().name << " is not persistent";
  ASSERT_TRUE(store_->Apply(OneOfEach(1)).ok());
  ASSERT_TRUE(store_->Apply(OneOfEach(2)).ok());
  ASSERT_TRUE(store_->Apply(OneOfEach(1, /*version=*/2)).ok());
  Reopen();
  WriteBatch want = OneOfEach(1, 2);
  want.Append(OneOfEach(2));
  ExpectSnapshotEq(MustLoad(), AsSnapshot(want));
}

TEST_P(StoreContractTest, ManyBatchesAccumulate) {
  WriteBatch want;
  for (uint64_t id = 1; id <= 9; ++id) {
    ASSERT_TRUE(store_->Apply(OneOfEach(id)).ok());
    want.Append(OneOfEach(id));
  }
  StoreSnapshot snapshot = MustLoad();
  EXPECT_EQ(snapshot.tasks.size(), 9u);
  ExpectSnapshotEq(snapshot, AsSnapshot(want));
}

INSTANTIATE_TEST_SUITE_P(
    Stores, StoreContractTest,
    ::testing::Values(
        FactoryParam{"SqliteFile", [] { return std::make_unique<SqliteFileFactory>(); }},
        FactoryParam{"SqliteMemory", [] { return std::make_unique<SqliteMemoryFactory>(); }},
        FactoryParam{"Postgres", [] { return std::make_unique<PostgresFactory>(); }}),
    [](const ::testing::TestParamInfo<FactoryParam>& info) { return info.param.name; });

}  // namespace
}  // namespace artel
