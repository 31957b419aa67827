#include "ml/compress.h"

#include <cmath>
#include <limits>
#include <random>

#include "gtest/gtest.h"

namespace artel::ml {
namespace {

TensorMap Update(const std::vector<float>& w) {
  TensorMap m;
  m.tensors["w"] = Tensor::F32({static_cast<int64_t>(w.size())}, w);
  m.tensors["buffers/bn.num_batches_tracked"] = Tensor::I64({}, {5});
  m.tensors["buffers/bn.running_mean"] = Tensor::F32({1}, {0.123456789f});
  m.metadata = {{"loss", "0.5"}, {"samples", "64"}};
  return m;
}

std::vector<float> Values(const Tensor& t) { return {t.f32(), t.f32() + t.numel()}; }

TEST(Compress, HalfConversionMatchesIeeeOnKnownValues) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00) << "rounds up to infinity";
  EXPECT_EQ(FloatToHalf(5.960464477539063e-08f), 0x0001) << "smallest subnormal";
  EXPECT_EQ(FloatToHalf(1.0f + 1.0f / 2048), 0x3c00) << "a tie rounds to even";
  EXPECT_EQ(FloatToHalf(1.0f + 3.0f / 2048), 0x3c02) << "a tie rounds to even";
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::nanf("")))));
  for (uint32_t h = 0; h < 0x7c00; ++h) {  // every finite positive half round-trips
    ASSERT_EQ(FloatToHalf(HalfToFloat(static_cast<uint16_t>(h))), h);
  }
}

TEST(Compress, Fp16KeepsBuffersAndMetadataAndHalvesTheBytes) {
  TensorMap m = Update({0.1f, -3.5f, 1e5f, 0});
  TensorMap c = Compress(m, Compression::kFp16);
  EXPECT_EQ(c.tensors.at("w").dtype, DType::kF16);
  EXPECT_EQ(c.tensors.at("w").data.size(), 8u);
  EXPECT_EQ(c.tensors.at("buffers/bn.running_mean").data,
            m.tensors.at("buffers/bn.running_mean").data);
  EXPECT_EQ(c.tensors.at("buffers/bn.num_batches_tracked").dtype, DType::kI64);
  EXPECT_EQ(c.metadata.at("samples"), "64");
  absl::StatusOr<TensorMap> d = Decompress(ParseSafetensors(SerializeSafetensors(c)).value());
  ASSERT_TRUE(d.ok()) << d.status();
  std::vector<float> v = Values(d->tensors.at("w"));
  EXPECT_NEAR(v[0], 0.1f, 1e-4);
  EXPECT_EQ(v[1], -3.5f);
  EXPECT_EQ(v[2], 65504.0f) << "clamped to the largest half";
  EXPECT_EQ(v[3], 0.0f);
}

TEST(Compress, Int8ErrorIsAtMostHalfAStepOfTheScale) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0, 0.01f);
  std::vector<float> w(1000);
  for (float& x : w) x = normal(rng);
  TensorMap c = Compress(Update(w), Compression::kInt8);
  EXPECT_EQ(c.tensors.at("w").dtype, DType::kI8);
  EXPECT_EQ(c.tensors.at("w").data.size(), 1000u);
  const double scale = std::stod(c.metadata.at("int8_scale/w"));
  absl::StatusOr<TensorMap> d = Decompress(c);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->metadata.count("int8_scale/w"), 0u);
  std::vector<float> v = Values(d->tensors.at("w"));
  for (size_t i = 0; i < w.size(); ++i) ASSERT_LE(std::fabs(v[i] - w[i]), scale / 2 + 1e-9);
}

TEST(Compress, ErrorFeedbackLosesNothingOverManyUpdates) {
  // Tiny updates that int8 alone would round to zero beside one large value.
  std::vector<float> w = {1.0f, 0.001f, -0.002f};
  TensorMap residual;
  std::vector<double> sent(3, 0);
  for (int step = 0; step < 1000; ++step) {
    absl::StatusOr<TensorMap> d = Decompress(Compress(Update(w), Compression::kInt8, &residual));
    ASSERT_TRUE(d.ok());
    std::vector<float> v = Values(d->tensors.at("w"));
    for (size_t i = 0; i < 3; ++i) sent[i] += v[i];
  }
  const float step_size = 1.0f / 127;
  EXPECT_NEAR(sent[1], 1.0, step_size);
  EXPECT_NEAR(sent[2], -2.0, step_size);
  // Without feedback the small values never travel.
  absl::StatusOr<TensorMap> once = Decompress(Compress(Update(w), Compression::kInt8));
  EXPECT_EQ(Values(once->tensors.at("w"))[1], 0.0f);
}

TEST(Compress, BadScaleIsRefused) {
  TensorMap c = Compress(Update({1, 2}), Compression::kInt8);
  c.metadata["int8_scale/w"] = "nan";
  EXPECT_TRUE(absl::IsInvalidArgument(Decompress(c).status()));
  c.metadata["int8_scale/w"] = "0.1";
  c.metadata["int8_scale/missing"] = "0.1";
  EXPECT_TRUE(absl::IsInvalidArgument(Decompress(c).status()));
}

TEST(Compress, ParsesTheNamesUsersType) {
  EXPECT_EQ(*ParseCompression("int8"), Compression::kInt8);
  EXPECT_EQ(*ParseCompression("none"), Compression::kNone);
  absl::StatusOr<Compression> bad = ParseCompression("int4");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("none, fp16 or int8"), std::string::npos);
}

}  // namespace
}  // namespace artel::ml
