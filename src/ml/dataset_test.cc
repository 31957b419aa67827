#include "ml/dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace artel::ml {
namespace {

using ::testing::HasSubstr;

// n images of 2x3 pixels, pixel j of image i = (i * 6 + j) * 5 % 256; label i % 10.
IdxArray Images(int64_t n) {
  IdxArray a{{n, 2, 3}, {}};
  for (int64_t i = 0; i < n * 6; ++i) a.u8.push_back(static_cast<char>(i * 5 % 256));
  return a;
}
IdxArray Labels(int64_t n) {
  IdxArray a{{n}, {}};
  for (int64_t i = 0; i < n; ++i) a.u8.push_back(static_cast<char>(i % 10));
  return a;
}

TensorMap Parse(const Shard& shard) {
  auto map = ParseSafetensors(shard.bytes);
  EXPECT_TRUE(map.ok()) << map.status();
  return map.ok() ? *map : TensorMap{};
}

TEST(ShardIdx, CutsIntoFullShardsAndASmallerLastOne) {
  auto shards = ShardIdx(Images(25), Labels(25), 10);
  ASSERT_TRUE(shards.ok()) << shards.status();
  ASSERT_EQ(shards->size(), 3u);
  const int64_t sizes[] = {10, 10, 5};
  for (int s = 0; s < 3; ++s) {
    SCOPED_TRACE(s);
    EXPECT_EQ((*shards)[s].samples, sizes[s]);
    TensorMap map = Parse((*shards)[s]);
    EXPECT_EQ(map.metadata.at("samples"), std::to_string(sizes[s]));
    EXPECT_EQ(map.metadata.at("first"), std::to_string(s * 10));
    EXPECT_EQ(map.tensors.at("x").shape, (std::vector<int64_t>{sizes[s], 1, 2, 3}));
    EXPECT_EQ(map.tensors.at("y").shape, (std::vector<int64_t>{sizes[s]}));
  }
}

TEST(ShardIdx, ScalesPixelsIntoUnitRangeAndKeepsLabels) {
  IdxArray images = Images(12);
  images.u8[0] = static_cast<char>(255);
  auto shards = ShardIdx(images, Labels(12), 5);
  ASSERT_TRUE(shards.ok()) << shards.status();
  for (size_t s = 0; s < shards->size(); ++s) {
    TensorMap map = Parse((*shards)[s]);
    const Tensor& x = map.tensors.at("x");
    const Tensor& y = map.tensors.at("y");
    ASSERT_EQ(x.dtype, DType::kF32);
    ASSERT_EQ(y.dtype, DType::kI64);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const size_t global = s * 5 * 6 + static_cast<size_t>(i);
      EXPECT_FLOAT_EQ(x.f32()[i], static_cast<unsigned char>(images.u8[global]) / 255.0f);
      EXPECT_GE(x.f32()[i], 0.0f);
      EXPECT_LE(x.f32()[i], 1.0f);
    }
    const int64_t* labels = reinterpret_cast<const int64_t*>(y.data.data());
    for (int64_t i = 0; i < y.numel(); ++i) EXPECT_EQ(labels[i], (s * 5 + i) % 10);
  }
  EXPECT_FLOAT_EQ(Parse((*shards)[0]).tensors.at("x").f32()[0], 1.0f);
}

TEST(ShardIdx, RefusesMismatchedCounts) {
  auto shards = ShardIdx(Images(10), Labels(9), 4);
  EXPECT_EQ(shards.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(shards.status().message(), HasSubstr("10 samples but the labels file 9"));
}

TEST(ShardIdx, RefusesNonPositiveShardSizeAndWrongRanks) {
  EXPECT_THAT(ShardIdx(Images(4), Labels(4), 0).status().message(), HasSubstr("at least 1 sample"));
  EXPECT_THAT(ShardIdx(Labels(4), Labels(4), 2).status().message(),
              HasSubstr("[samples, rows, cols]"));
}

TEST(ShardIdx, ShardsFashionMnistTestSet) {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  auto images = ReadIdx(dir + "t10k-images-idx3-ubyte.gz");
  auto labels = ReadIdx(dir + "t10k-labels-idx1-ubyte.gz");
  if (images.status().code() == absl::StatusCode::kNotFound) GTEST_SKIP() << dir << " is missing";
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_EQ(images->shape, (std::vector<int64_t>{10000, 28, 28}));
  auto shards = ShardIdx(*images, *labels, 4096);
  ASSERT_TRUE(shards.ok()) << shards.status();
  ASSERT_EQ(shards->size(), 3u);
  EXPECT_EQ(shards->back().samples, 10000 - 2 * 4096);
  TensorMap last = Parse(shards->back());
  EXPECT_EQ(last.tensors.at("x").shape, (std::vector<int64_t>{1808, 1, 28, 28}));
  EXPECT_EQ(last.metadata.at("first"), "8192");
}

TensorMap UserData(int64_t n) {
  TensorMap map;
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) {
    x.push_back(static_cast<float>(i));
    x.push_back(-static_cast<float>(i));
    y.push_back(i * 100);
  }
  map.tensors["x"] = Tensor::F32({n, 2}, x);
  map.tensors["y"] = Tensor::I64({n}, y);
  return map;
}

TEST(ShardSafetensors, CutsRowsAndKeepsValues) {
  auto shards = ShardSafetensors(UserData(7), 3);
  ASSERT_TRUE(shards.ok()) << shards.status();
  ASSERT_EQ(shards->size(), 3u);
  EXPECT_EQ((*shards)[2].samples, 1);
  TensorMap last = Parse((*shards)[2]);
  EXPECT_EQ(last.metadata.at("first"), "6");
  EXPECT_EQ(last.tensors.at("x").shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(last.tensors.at("x").f32()[1], -6.0f);
  EXPECT_EQ(reinterpret_cast<const int64_t*>(last.tensors.at("y").data.data())[0], 600);
}

TEST(ShardSafetensors, RefusesMissingTensor) {
  TensorMap data = UserData(3);
  data.tensors.erase("y");
  EXPECT_THAT(ShardSafetensors(data, 2).status().message(),
              HasSubstr("no tensor \"y\"; a data set needs exactly \"x\" (F32"));
}

TEST(ShardSafetensors, RefusesWrongDTypeAndMismatchedCounts) {
  TensorMap data = UserData(3);
  data.tensors["y"] = Tensor::F32({3}, {0, 1, 2});
  EXPECT_THAT(ShardSafetensors(data, 2).status().message(), HasSubstr("tensor \"y\" is F32 [3]"));
  data = UserData(3);
  data.tensors["y"] = Tensor::I64({2}, {0, 1});
  EXPECT_THAT(ShardSafetensors(data, 2).status().message(),
              HasSubstr("\"x\" holds 3 samples but \"y\" 2"));
}

TEST(ShardSafetensors, RefusesExtraTensors) {
  TensorMap data = UserData(3);
  data.tensors["z"] = Tensor::I64({1}, {0});
  EXPECT_THAT(ShardSafetensors(data, 2).status().message(), HasSubstr("unexpected tensor 'z'"));
}

}  // namespace
}  // namespace artel::ml
