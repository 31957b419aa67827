#include "ml/idx.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace artel::ml {
namespace {

using ::testing::HasSubstr;

namespace fs = std::filesystem;

// A 2x3 unsigned-byte IDX array holding 1..6.
std::string SmallIdx() {
  return std::string("\0\0\x08\x02\0\0\0\x02\0\0\0\x03\x01\x02\x03\x04\x05\x06", 18);
}

fs::path WritePlain(const std::string& name, const std::string& bytes) {
  fs::path path = fs::path(::testing::TempDir()) / name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

fs::path WriteGzip(const std::string& name, const std::string& bytes) {
  fs::path path = fs::path(::testing::TempDir()) / name;
  gzFile f = gzopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr);
  EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  gzclose(f);
  return path;
}

TEST(Idx, ReadsPlainFile) {
  auto array = ReadIdx(WritePlain("small.idx", SmallIdx()));
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(array->u8, "\x01\x02\x03\x04\x05\x06");
  EXPECT_EQ(array->numel(), 6);
}

TEST(Idx, ReadsGzipFile) {
  fs::path path = WriteGzip("small.idx.gz", SmallIdx());
  std::ifstream in(path, std::ios::binary);
  ASSERT_EQ(in.get(), 0x1f);  // really compressed
  auto array = ReadIdx(path);
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(array->u8, "\x01\x02\x03\x04\x05\x06");
}

TEST(Idx, RejectsBadMagic) {
  std::string bytes = SmallIdx();
  bytes[0] = 'P';
  auto array = ReadIdx(WritePlain("bad_magic.idx", bytes));
  EXPECT_EQ(array.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(array.status().message(), HasSubstr("bad magic number"));
}

TEST(Idx, RejectsOtherElementTypes) {
  std::string bytes = SmallIdx();
  bytes[2] = 0x0D;
  auto array = ReadIdx(WritePlain("float.idx", bytes));
  EXPECT_THAT(array.status().message(), HasSubstr("float32 (0x0D) is not supported"));
}

TEST(Idx, RejectsTruncatedData) {
  auto array = ReadIdx(WritePlain("truncated.idx", SmallIdx().substr(0, 16)));
  EXPECT_EQ(array.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(array.status().message(), HasSubstr("the header promises 6 bytes but only 4 follow"));
}

TEST(Idx, RejectsTruncatedHeader) {
  auto array = ReadIdx(WritePlain("short_header.idx", SmallIdx().substr(0, 9)));
  EXPECT_THAT(array.status().message(), HasSubstr("truncated in the header"));
}

TEST(Idx, RejectsTrailingBytes) {
  auto array = ReadIdx(WriteGzip("trailing.idx.gz", SmallIdx() + "x"));
  EXPECT_THAT(array.status().message(), HasSubstr("bytes after the 6"));
}

TEST(Idx, MissingFileIsNotFound) {
  EXPECT_EQ(ReadIdx(fs::path(::testing::TempDir()) / "no-such.idx").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(Idx, ReadsFashionMnistTestLabels) {
  const fs::path path = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  if (!fs::exists(path)) GTEST_SKIP() << path << " is not installed";
  auto labels = ReadIdx(path);
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_EQ(labels->shape, (std::vector<int64_t>{10000}));
  int counts[10] = {};
  for (char c : labels->u8) {
    ASSERT_LT(static_cast<unsigned char>(c), 10);
    ++counts[static_cast<unsigned char>(c)];
  }
  for (int count : counts) EXPECT_EQ(count, 1000);  // the test set is balanced
}

}  // namespace
}  // namespace artel::ml
