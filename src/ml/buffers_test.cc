#include "ml/buffers.h"

#include <cstdint>
#include <cstring>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace artel::ml {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

template <typename T>
Tensor Raw(DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data.resize(values.size() * sizeof(T));
  std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

template <typename T>
std::vector<T> Values(const Tensor& t) {
  std::vector<T> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.data.data(), t.data.size());
  return v;
}

// A BatchNorm layer's buffers as a worker reports them.
TensorMap BatchNorm(std::vector<float> mean, std::vector<float> var, int64_t batches) {
  TensorMap m;
  m.tensors["buffers/bn.running_mean"] = Tensor::F32({2}, mean);
  m.tensors["buffers/bn.running_var"] = Tensor::F32({2}, var);
  m.tensors["buffers/bn.num_batches_tracked"] = Tensor::I64({}, {batches});
  return m;
}

TEST(SplitBuffers, MovesTheBufferTensorsOutAndKeepsParametersAndMetadata) {
  TensorMap update = BatchNorm({1, 2}, {3, 4}, 5);
  update.tensors["bn.weight"] = Tensor::F32({2}, {0.5f, 0.25f});
  update.tensors["buffersx"] = Tensor::F32({1}, {1});  // not under "buffers/"
  update.metadata["samples"] = "32";
  TensorMap buffers = SplitBuffers(update);
  std::vector<std::string> left, moved;
  for (const auto& [name, t] : update.tensors) left.push_back(name);
  for (const auto& [name, t] : buffers.tensors) moved.push_back(name);
  EXPECT_THAT(left, ElementsAre("bn.weight", "buffersx"));
  EXPECT_THAT(moved, ElementsAre("buffers/bn.num_batches_tracked", "buffers/bn.running_mean",
                                 "buffers/bn.running_var"));
  EXPECT_EQ(update.metadata.at("samples"), "32");
  EXPECT_TRUE(buffers.metadata.empty());
  EXPECT_THAT(Values<float>(buffers.tensors.at("buffers/bn.running_var")), ElementsAre(3, 4));
}

TEST(SplitBuffers, AMapWithoutBuffersGivesAnEmptyMap) {
  TensorMap params;
  params.tensors["fc.bias"] = Tensor::F32({1}, {1});
  EXPECT_TRUE(SplitBuffers(params).tensors.empty());
  EXPECT_EQ(params.tensors.size(), 1u);
}

TEST(AverageBuffers, WeighsFloatsAndRoundsIntegersToTheNearest) {
  TensorMap a = BatchNorm({1, 2}, {4, 4}, 10);
  TensorMap b = BatchNorm({3, 6}, {8, 4}, 13);
  auto avg = AverageBuffers({&a, &b}, {3, 1});
  ASSERT_TRUE(avg.ok()) << avg.status();
  EXPECT_THAT(Values<float>(avg->tensors.at("buffers/bn.running_mean")), ElementsAre(1.5, 3));
  EXPECT_THAT(Values<float>(avg->tensors.at("buffers/bn.running_var")), ElementsAre(5, 4));
  // (3 * 10 + 13) / 4 = 10.75 -> 11.
  const Tensor& n = avg->tensors.at("buffers/bn.num_batches_tracked");
  EXPECT_EQ(n.dtype, DType::kI64);
  EXPECT_TRUE(n.shape.empty());
  EXPECT_THAT(Values<int64_t>(n), ElementsAre(11));
  EXPECT_TRUE(avg->metadata.empty());
}

TEST(AverageBuffers, IntegerHalvesRoundAwayFromZero) {
  TensorMap a, b;
  a.tensors["buffers/n"] = Tensor::I64({3}, {1, -1, 4});
  b.tensors["buffers/n"] = Tensor::I64({3}, {2, -2, 4});
  auto avg = AverageBuffers({&a, &b}, {1, 1});
  ASSERT_TRUE(avg.ok()) << avg.status();
  EXPECT_THAT(Values<int64_t>(avg->tensors.at("buffers/n")), ElementsAre(2, -2, 4));
}

TEST(AverageBuffers, LargeIntegersStayExact) {
  const int64_t big = std::numeric_limits<int64_t>::max() - 1;
  TensorMap a, b;
  a.tensors["buffers/n"] = Tensor::I64({2}, {big, (int64_t{1} << 60) + 1});
  b.tensors["buffers/n"] = Tensor::I64({2}, {big, (int64_t{1} << 60) + 3});
  auto avg = AverageBuffers({&a, &b}, {1, 1});
  ASSERT_TRUE(avg.ok()) << avg.status();
  EXPECT_THAT(Values<int64_t>(avg->tensors.at("buffers/n")),
              ElementsAre(big, (int64_t{1} << 60) + 2));
}

TEST(AverageBuffers, AnAverageOfOnePartIsThatPartBitForBit) {
  TensorMap a;
  a.tensors["buffers/f64"] = Raw<double>(DType::kF64, {2}, {0.1, 1.0 / 3});
  a.tensors["buffers/f32"] = Tensor::F32({2}, {0.1f, 1e-30f});
  a.tensors["buffers/i32"] = Raw<int32_t>(DType::kI32, {1}, {-7});
  auto avg = AverageBuffers({&a}, {37});
  ASSERT_TRUE(avg.ok()) << avg.status();
  for (const auto& [name, t] : a.tensors) EXPECT_EQ(avg->tensors.at(name).data, t.data) << name;
}

TEST(AverageBuffers, EveryDtypeKeepsItsDtype) {
  TensorMap a, b;
  // F16 1.0 = 0x3c00, 2.0 = 0x4000 -> 1.5 = 0x3e00; BF16 1.0 = 0x3f80, 2.0 =
  // 0x4000 -> 1.5 = 0x3fc0.
  a.tensors["buffers/f16"] = Raw<uint16_t>(DType::kF16, {1}, {0x3c00});
  b.tensors["buffers/f16"] = Raw<uint16_t>(DType::kF16, {1}, {0x4000});
  a.tensors["buffers/bf16"] = Raw<uint16_t>(DType::kBF16, {1}, {0x3f80});
  b.tensors["buffers/bf16"] = Raw<uint16_t>(DType::kBF16, {1}, {0x4000});
  a.tensors["buffers/f64"] = Raw<double>(DType::kF64, {1}, {1});
  b.tensors["buffers/f64"] = Raw<double>(DType::kF64, {1}, {2});
  a.tensors["buffers/u8"] = Raw<uint8_t>(DType::kU8, {2}, {0, 255});
  b.tensors["buffers/u8"] = Raw<uint8_t>(DType::kU8, {2}, {3, 254});
  a.tensors["buffers/i8"] = Raw<int8_t>(DType::kI8, {1}, {-128});
  b.tensors["buffers/i8"] = Raw<int8_t>(DType::kI8, {1}, {-125});
  a.tensors["buffers/mask"] = Raw<uint8_t>(DType::kBool, {2}, {1, 0});
  b.tensors["buffers/mask"] = Raw<uint8_t>(DType::kBool, {2}, {1, 1});
  auto avg = AverageBuffers({&a, &b}, {1, 1});
  ASSERT_TRUE(avg.ok()) << avg.status();
  for (const auto& [name, t] : a.tensors) EXPECT_EQ(avg->tensors.at(name).dtype, t.dtype) << name;
  EXPECT_THAT(Values<uint16_t>(avg->tensors.at("buffers/f16")), ElementsAre(0x3e00));
  EXPECT_THAT(Values<uint16_t>(avg->tensors.at("buffers/bf16")), ElementsAre(0x3fc0));
  EXPECT_THAT(Values<double>(avg->tensors.at("buffers/f64")), ElementsAre(1.5));
  EXPECT_THAT(Values<uint8_t>(avg->tensors.at("buffers/u8")), ElementsAre(2, 255));  // 1.5, 254.5
  EXPECT_THAT(Values<int8_t>(avg->tensors.at("buffers/i8")), ElementsAre(-127));     // -126.5
  EXPECT_THAT(Values<uint8_t>(avg->tensors.at("buffers/mask")), ElementsAre(1, 1));  // 1, 0.5
}

TEST(AverageBuffers, HalfPrecisionRoundsToNearestEven) {
  // F16 around 1: spacing 2^-10. The mean of 1 and 1 + 2^-10 is halfway and
  // rounds to the even 1.0 (0x3c00); of 1 + 2^-10 and 1 + 2^-9, to 0x3c02.
  TensorMap a, b;
  a.tensors["buffers/h"] = Raw<uint16_t>(DType::kF16, {2}, {0x3c00, 0x3c01});
  b.tensors["buffers/h"] = Raw<uint16_t>(DType::kF16, {2}, {0x3c01, 0x3c02});
  // Subnormals: 2^-24 (0x0001) and 3 * 2^-24 (0x0003) average to 0x0002.
  a.tensors["buffers/s"] = Raw<uint16_t>(DType::kF16, {1}, {0x0001});
  b.tensors["buffers/s"] = Raw<uint16_t>(DType::kF16, {1}, {0x0003});
  auto avg = AverageBuffers({&a, &b}, {1, 1});
  ASSERT_TRUE(avg.ok()) << avg.status();
  EXPECT_THAT(Values<uint16_t>(avg->tensors.at("buffers/h")), ElementsAre(0x3c00, 0x3c02));
  EXPECT_THAT(Values<uint16_t>(avg->tensors.at("buffers/s")), ElementsAre(0x0002));
}

TEST(AverageBuffers, PartsWithoutBuffersGiveAnEmptyMap) {
  TensorMap a, b;
  auto avg = AverageBuffers({&a, &b}, {1, 2});
  ASSERT_TRUE(avg.ok()) << avg.status();
  EXPECT_TRUE(avg->tensors.empty());
}

TEST(AverageBuffers, RefusesMismatchedPartsBadWeightsAndNonFiniteValues) {
  TensorMap a = BatchNorm({1, 2}, {3, 4}, 5);
  TensorMap shorter = a;
  shorter.tensors["buffers/bn.running_mean"] = Tensor::F32({1}, {1});
  EXPECT_THAT(AverageBuffers({&a, &shorter}, {1, 1}).status().message(),
              HasSubstr("'buffers/bn.running_mean' has shape [2] in part 0 but [1] in part 1"));
  TensorMap other_dtype = a;
  other_dtype.tensors["buffers/bn.num_batches_tracked"] = Tensor::F32({}, {5});
  EXPECT_THAT(AverageBuffers({&a, &other_dtype}, {1, 1}).status().message(),
              HasSubstr("is I64 in part 0 but F32 in part 1"));
  TensorMap missing = a;
  missing.tensors.erase("buffers/bn.running_var");
  EXPECT_THAT(AverageBuffers({&a, &missing}, {1, 1}).status().message(),
              HasSubstr("'buffers/bn.running_var' is in part 0 but missing from part 1"));
  TensorMap nan = BatchNorm({1, std::numeric_limits<float>::quiet_NaN()}, {3, 4}, 5);
  EXPECT_THAT(AverageBuffers({&a, &nan}, {1, 1}).status().message(),
              HasSubstr("part 1: buffer 'buffers/bn.running_mean' holds a non-finite value"));
  EXPECT_THAT(AverageBuffers({&a, &a}, {1}).status().message(), HasSubstr("one weight per part"));
  EXPECT_THAT(AverageBuffers({&a, &a}, {0, 0}).status().message(), HasSubstr("sum to 0"));
  EXPECT_THAT(AverageBuffers({&a}, {-1}).status().message(), HasSubstr("must be finite and >= 0"));
  EXPECT_THAT(AverageBuffers({}, {}).status().message(), HasSubstr("no parts"));
  EXPECT_THAT(AverageBuffers({&a, nullptr}, {1, 1}).status().message(),
              HasSubstr("part 1 is null"));
}

TEST(MergeBuffers, ReplacesAndAddsBuffersAndKeepsTheParameters) {
  TensorMap params = BatchNorm({0, 0}, {1, 1}, 0);
  params.tensors["bn.weight"] = Tensor::F32({2}, {1, 1});
  params.tensors.erase("buffers/bn.num_batches_tracked");  // e.g. params of an older job
  ASSERT_TRUE(MergeBuffers(params, BatchNorm({1, 2}, {3, 4}, 7)).ok());
  EXPECT_EQ(params.tensors.size(), 4u);
  EXPECT_THAT(Values<float>(params.tensors.at("bn.weight")), ElementsAre(1, 1));
  EXPECT_THAT(Values<float>(params.tensors.at("buffers/bn.running_mean")), ElementsAre(1, 2));
  EXPECT_THAT(Values<int64_t>(params.tensors.at("buffers/bn.num_batches_tracked")), ElementsAre(7));
}

TEST(MergeBuffers, RefusesNonBuffersAndOtherLayoutsWithoutChangingTheParams) {
  TensorMap params = BatchNorm({0, 0}, {1, 1}, 0);
  const TensorMap before = params;
  TensorMap bad = BatchNorm({1, 2}, {3, 4}, 7);
  bad.tensors["buffers/bn.running_var"] = Tensor::F32({3}, {1, 2, 3});
  EXPECT_THAT(MergeBuffers(params, bad).message(),
              HasSubstr("buffer 'buffers/bn.running_var' is F32 [3] but the params hold it as "
                        "F32 [2]"));
  TensorMap not_buffer;
  not_buffer.tensors["bn.weight"] = Tensor::F32({2}, {1, 1});
  EXPECT_THAT(MergeBuffers(params, not_buffer).message(), HasSubstr("is not a buffer"));
  EXPECT_EQ(params.tensors.size(), before.tensors.size());
  for (const auto& [name, t] : before.tensors) EXPECT_EQ(params.tensors.at(name).data, t.data);
}

TEST(MergeBuffers, SplitThenMergeRestoresTheMap) {
  TensorMap params = BatchNorm({1, 2}, {3, 4}, 5);
  params.tensors["fc.bias"] = Tensor::F32({1}, {9});
  const TensorMap before = params;
  TensorMap buffers = SplitBuffers(params);
  ASSERT_TRUE(MergeBuffers(params, buffers).ok());
  ASSERT_EQ(params.tensors.size(), before.tensors.size());
  for (const auto& [name, t] : before.tensors) EXPECT_EQ(params.tensors.at(name).data, t.data);
}

}  // namespace
}  // namespace artel::ml
