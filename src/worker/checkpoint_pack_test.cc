#include "worker/checkpoint_pack.h"

#include <gtest/gtest.h>

#include <fstream>

namespace artel {
namespace {

std::filesystem::path TempDir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() /
           (name + "-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

TEST(CheckpointPack, RoundTripsEveryTopLevelFile) {
  auto src = TempDir("ck-src"), dst = TempDir("ck-dst");
  std::ofstream(src / "state") << "count=41";
  std::ofstream(src / "weights.bin") << std::string(1000, '\x01');
  auto packed = PackCheckpoint(src);
  ASSERT_TRUE(packed.ok());
  ASSERT_TRUE(UnpackCheckpoint(*packed, dst).ok());
  std::ifstream in(dst / "state");
  std::string s;
  in >> s;
  EXPECT_EQ(s, "count=41");
  EXPECT_EQ(std::filesystem::file_size(dst / "weights.bin"), 1000u);
}

TEST(CheckpointPack, EmptyDirectoryPacksToNothing) {
  auto src = TempDir("ck-empty");
  auto packed = PackCheckpoint(src);
  ASSERT_TRUE(packed.ok());
  EXPECT_TRUE(packed->empty());
  EXPECT_TRUE(CheckpointFingerprint(src).empty());
}

TEST(CheckpointPack, RejectsTruncatedAndUnsafeData) {
  auto src = TempDir("ck-bad"), dst = TempDir("ck-bad-dst");
  std::ofstream(src / "a") << "hello";
  auto packed = PackCheckpoint(src);
  ASSERT_TRUE(packed.ok());
  EXPECT_FALSE(UnpackCheckpoint(packed->substr(0, packed->size() - 2), dst).ok());
  std::string evil = *packed;
  evil.replace(evil.find('a', 8 + 8 + 8), 1, "/");
  EXPECT_FALSE(UnpackCheckpoint(evil, dst).ok());
  EXPECT_FALSE(UnpackCheckpoint("not a checkpoint", dst).ok());
}

TEST(CheckpointPack, FingerprintChangesWhenAFileChanges) {
  auto src = TempDir("ck-fp");
  std::ofstream(src / "a") << "1";
  const std::string before = CheckpointFingerprint(src);
  std::ofstream(src / "a") << "12345";
  EXPECT_NE(CheckpointFingerprint(src), before);
}

}  // namespace
}  // namespace artel
