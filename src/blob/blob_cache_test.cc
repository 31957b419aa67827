#include "blob/blob_cache.h"

#include <thread>

#include "absl/synchronization/mutex.h"
#include "blob/blob_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace artel {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// A fetch that serves `data` and counts its calls.
BlobCache::FetchFn Serve(std::string data, int* calls = nullptr) {
  return [data, calls](BlobWriter& writer) -> absl::Status {
    if (calls != nullptr) ++*calls;
    RETURN_IF_ERROR(writer.DeclareSize(data.size()));
    return writer.Write(data);
  };
}

class BlobCacheTest : public ::testing::Test {
 protected:
  std::unique_ptr<BlobCache> MakeCache(uint64_t budget) {
    auto store = BlobStore::Open(dir_.path() / "cache");
    EXPECT_TRUE(store.ok()) << store.status();
    return std::make_unique<BlobCache>(std::move(*store), budget);
  }
  // Acquires and releases at once, so the blob is cached but unpinned.
  void Load(BlobCache& cache, const std::string& data) {
    auto path = cache.Acquire(Sha256Hex(data), Serve(data));
    ASSERT_TRUE(path.ok()) << path.status();
    cache.Release(Sha256Hex(data));
  }

  ScratchDir dir_;
};

TEST_F(BlobCacheTest, AcquireFetchesAMissingBlobOnceAndReturnsItsPath) {
  auto cache = MakeCache(100);
  int calls = 0;
  auto path = cache->Acquire(Sha256Hex("data"), Serve("data", &calls));
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_TRUE(std::filesystem::exists(*path));
  auto again = cache->Acquire(Sha256Hex("data"), Serve("data", &calls));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *path);
  EXPECT_EQ(calls, 1);
  EXPECT_THAT(cache->CachedDigests(), UnorderedElementsAre(Sha256Hex("data")));
  EXPECT_EQ(cache->UsedBytes(), 4u);
  cache->Release(Sha256Hex("data"));
  cache->Release(Sha256Hex("data"));
}

TEST_F(BlobCacheTest, PlacementHintsAreTheBigBlobsMostRecentlyUsedFirst) {
  auto cache = MakeCache(100);
  Load(*cache, "big-one");
  Load(*cache, "tiny");
  Load(*cache, "big-two");
  Load(*cache, "big-one");  // now the most recent
  EXPECT_THAT(cache->PlacementHints(5, 10),
              ElementsAre(Sha256Hex("big-one"), Sha256Hex("big-two")));
  EXPECT_THAT(cache->PlacementHints(5, 1), ElementsAre(Sha256Hex("big-one")));
  EXPECT_THAT(cache->PlacementHints(0, 10),
              ElementsAre(Sha256Hex("big-one"), Sha256Hex("big-two"), Sha256Hex("tiny")));
  EXPECT_TRUE(cache->PlacementHints(100, 10).empty());
}

TEST_F(BlobCacheTest, EvictsLeastRecentlyUsedUnpinnedBlobsToFitTheBudget) {
  auto cache = MakeCache(10);
  Load(*cache, "aaaa");
  Load(*cache, "bbbb");
  Load(*cache, "aaaa");  // a is now more recent than b
  Load(*cache, "cccc");  // 12 > 10: b goes
  EXPECT_THAT(cache->CachedDigests(), UnorderedElementsAre(Sha256Hex("aaaa"), Sha256Hex("cccc")));
  EXPECT_EQ(cache->UsedBytes(), 8u);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "cache" / Sha256Hex("bbbb").substr(0, 2) /
                                       Sha256Hex("bbbb")));
}

TEST_F(BlobCacheTest, NeverEvictsPinnedBlobs) {
  auto cache = MakeCache(10);
  ASSERT_TRUE(cache->Acquire(Sha256Hex("aaaa"), Serve("aaaa")).ok());  // stays pinned
  Load(*cache, "bbbb");
  Load(*cache, "cccc");  // must evict b, not the older but pinned a
  EXPECT_THAT(cache->CachedDigests(), UnorderedElementsAre(Sha256Hex("aaaa"), Sha256Hex("cccc")));

  ASSERT_TRUE(cache->Acquire(Sha256Hex("cccc"), Serve("cccc")).ok());
  auto refused = cache->Acquire(Sha256Hex("dddd"), Serve("dddd"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(cache->CachedDigests(), UnorderedElementsAre(Sha256Hex("aaaa"), Sha256Hex("cccc")));

  cache->Release(Sha256Hex("aaaa"));
  EXPECT_TRUE(cache->Acquire(Sha256Hex("dddd"), Serve("dddd")).ok());
  EXPECT_THAT(cache->CachedDigests(), UnorderedElementsAre(Sha256Hex("cccc"), Sha256Hex("dddd")));
}

TEST_F(BlobCacheTest, RefusesABlobLargerThanTheBudgetAndKeepsWhatItHas) {
  auto cache = MakeCache(10);
  Load(*cache, "aaaa");
  std::string big(11, 'z');
  auto path = cache->Acquire(Sha256Hex(big), Serve(big));
  EXPECT_EQ(path.status().code(), absl::StatusCode::kResourceExhausted);
  std::string message(path.status().message());
  EXPECT_THAT(message, HasSubstr("(11 bytes)"));
  EXPECT_THAT(message, HasSubstr("budget of"));
  EXPECT_THAT(message, HasSubstr("(10 bytes"));
  EXPECT_THAT(message, HasSubstr("raise --disk"));
  EXPECT_THAT(cache->CachedDigests(), UnorderedElementsAre(Sha256Hex("aaaa")));
  EXPECT_TRUE(std::filesystem::is_empty(dir_.path() / "cache" / "tmp"));
}

TEST_F(BlobCacheTest, CorruptFetchIsNotCachedAndTheNextAcquireFetchesAgain) {
  auto cache = MakeCache(100);
  const std::string digest = Sha256Hex("good");
  auto bad = cache->Acquire(digest, Serve("evil"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(cache->CachedDigests().empty());
  EXPECT_EQ(cache->UsedBytes(), 0u);
  EXPECT_TRUE(cache->Acquire(digest, Serve("good")).ok());
  cache->Release(digest);
}

TEST_F(BlobCacheTest, ConcurrentAcquiresOfOneBlobFetchOnce) {
  auto cache = MakeCache(1 << 20);
  const std::string data(100'000, 'q');
  const std::string digest = Sha256Hex(data);
  constexpr int kThreads = 8;
  absl::Mutex mu;
  int started = 0;
  int fetches = 0;
  auto fetch = [&](BlobWriter& writer) -> absl::Status {
    {
      absl::MutexLock lock(&mu);
      ++fetches;
      // Hold the fetch open until every thread has at least started, so the
      // others arrive while it is in progress (bounded in case they don't).
      mu.AwaitWithTimeout(absl::Condition(
                              +[](int* n) { return *n == kThreads; }, &started),
                          absl::Seconds(5));
    }
    RETURN_IF_ERROR(writer.DeclareSize(data.size()));
    return writer.Write(data);
  };
  std::vector<std::filesystem::path> paths(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      {
        absl::MutexLock lock(&mu);
        ++started;
      }
      auto path = cache->Acquire(digest, fetch);
      ASSERT_TRUE(path.ok()) << path.status();
      paths[i] = *path;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(fetches, 1);
  for (const auto& p : paths) EXPECT_EQ(p, paths[0]);
  for (int i = 0; i < kThreads; ++i) cache->Release(digest);
  EXPECT_EQ(cache->UsedBytes(), data.size());
}

TEST_F(BlobCacheTest, TakesOverBlobsLeftOnDiskAndTrimsThemToTheBudget) {
  {
    auto cache = MakeCache(100);
    Load(*cache, "aaaa");
    Load(*cache, "bbbb");
  }
  {
    auto cache = MakeCache(100);
    EXPECT_THAT(cache->CachedDigests(), UnorderedElementsAre(Sha256Hex("aaaa"), Sha256Hex("bbbb")));
    int calls = 0;
    ASSERT_TRUE(cache->Acquire(Sha256Hex("aaaa"), Serve("aaaa", &calls)).ok());
    EXPECT_EQ(calls, 0);
    cache->Release(Sha256Hex("aaaa"));
  }

  auto small = MakeCache(4);
  EXPECT_EQ(small->CachedDigests().size(), 1u);
  EXPECT_EQ(small->UsedBytes(), 4u);
}

}  // namespace
}  // namespace artel
