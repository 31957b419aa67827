#include "ml/aggregate.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace artel::ml {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatEq;
using ::testing::FloatNear;
using ::testing::HasSubstr;

TensorMap Map(std::vector<float> w, std::vector<float> b) {
  TensorMap m;
  m.tensors["fc.weight"] = Tensor::F32({2, 2}, w);
  m.tensors["fc.bias"] = Tensor::F32({2}, b);
  return m;
}

std::vector<float> Values(const TensorMap& m, const std::string& name) {
  const Tensor& t = m.tensors.at(name);
  return std::vector<float>(t.f32(), t.f32() + t.numel());
}

TEST(WeightedAverage, WeighsEachPartAndDividesByTotalWeight) {
  TensorMap a = Map({1, 2, 3, 4}, {10, -10});
  TensorMap b = Map({5, 6, 7, 8}, {20, 10});
  auto avg = WeightedAverage({&a, &b}, {1.0, 3.0});
  ASSERT_TRUE(avg.ok()) << avg.status();
  EXPECT_THAT(Values(*avg, "fc.weight"), ElementsAre(4, 5, 6, 7));
  EXPECT_THAT(Values(*avg, "fc.bias"), ElementsAre(17.5, 5));
  EXPECT_EQ(avg->tensors.at("fc.weight").shape, (std::vector<int64_t>{2, 2}));
}

TEST(WeightedAverage, AccumulatesInDouble) {
  // 1e8 + 1 - 1e8 in float loses the 1; in double it survives.
  TensorMap a = Map({1e8f, 0, 0, 0}, {0, 0});
  TensorMap b = Map({3, 0, 0, 0}, {0, 0});
  TensorMap c = Map({-1e8f, 0, 0, 0}, {0, 0});
  auto avg = WeightedAverage({&a, &b, &c}, {1, 1, 1});
  ASSERT_TRUE(avg.ok());
  EXPECT_THAT(Values(*avg, "fc.weight")[0], FloatEq(1.0f));
}

TEST(WeightedAverage, RefusesShapeMismatchNamingTheTensor) {
  TensorMap a = Map({1, 2, 3, 4}, {0, 0});
  TensorMap b = a;
  b.tensors["fc.bias"] = Tensor::F32({3}, {0, 0, 0});
  auto avg = WeightedAverage({&a, &b}, {1, 1});
  ASSERT_FALSE(avg.ok());
  EXPECT_EQ(avg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(avg.status().message(), HasSubstr("'fc.bias' has shape [2] in part 0 but [3]"));
}

TEST(WeightedAverage, RefusesMissingTensorAndOtherDtype) {
  TensorMap a = Map({1, 2, 3, 4}, {0, 0});
  TensorMap missing = a;
  missing.tensors.erase("fc.bias");
  EXPECT_THAT(WeightedAverage({&a, &missing}, {1, 1}).status().message(),
              HasSubstr("'fc.bias' is in part 0 but missing from part 1"));
  TensorMap ints = a;
  ints.tensors["fc.bias"] = Tensor::I64({2}, {0, 0});
  EXPECT_THAT(WeightedAverage({&a, &ints}, {1, 1}).status().message(),
              HasSubstr("'fc.bias' is F32 in part 0 but I64 in part 1"));
  EXPECT_THAT(WeightedAverage({&ints}, {1}).status().message(),
              HasSubstr("only F32 tensors can be aggregated"));
}

TEST(WeightedAverage, RefusesNaNUpdate) {
  TensorMap a = Map({1, 2, 3, 4}, {0, 0});
  TensorMap b = Map({1, std::numeric_limits<float>::quiet_NaN(), 3, 4}, {0, 0});
  auto avg = WeightedAverage({&a, &b}, {1, 1});
  ASSERT_FALSE(avg.ok());
  EXPECT_THAT(avg.status().message(), HasSubstr("part 1: tensor 'fc.weight'"));
  EXPECT_THAT(avg.status().message(), HasSubstr("flat index 1"));
}

TEST(WeightedAverage, RefusesBadWeights) {
  TensorMap a = Map({1, 2, 3, 4}, {0, 0});
  EXPECT_THAT(WeightedAverage({&a}, {1, 2}).status().message(), HasSubstr("1 parts but 2"));
  EXPECT_THAT(WeightedAverage({&a}, {-1}).status().message(), HasSubstr(">= 0"));
  EXPECT_THAT(WeightedAverage({&a}, {0}).status().message(), HasSubstr("sum to 0"));
  EXPECT_THAT(WeightedAverage({}, {}).status().message(), HasSubstr("no parts"));
  EXPECT_THAT(WeightedAverage({nullptr}, {1}).status().message(), HasSubstr("null"));
}

TEST(CheckFinite, RefusesInfNamingTheTensorAndAcceptsIntegers) {
  TensorMap m = Map({1, 2, 3, 4}, {std::numeric_limits<float>::infinity(), 0});
  absl::Status s = CheckFinite(m);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'fc.bias'"));
  TensorMap ok = Map({1, 2, 3, 4}, {0, 0});
  ok.tensors["bn.num_batches_tracked"] = Tensor::I64({}, {7});
  EXPECT_TRUE(CheckFinite(ok).ok());
}

TEST(CheckSameLayout, AcceptsEqualLayoutsWithDifferentValues) {
  EXPECT_TRUE(CheckSameLayout(Map({1, 2, 3, 4}, {0, 0}), Map({5, 6, 7, 8}, {1, 1})).ok());
  TensorMap extra = Map({1, 2, 3, 4}, {0, 0});
  extra.tensors["x"] = Tensor::F32({1}, {0});
  EXPECT_THAT(CheckSameLayout(Map({1, 2, 3, 4}, {0, 0}), extra, "params", "grads").message(),
              HasSubstr("'x' is in grads but missing from params"));
}

TEST(CoordinateMedian, IgnoresOneOutlierAmongThree) {
  TensorMap a = Map({1, 2, 3, 4}, {0, 0});
  TensorMap b = Map({1.5, 2.5, 3.5, 4.5}, {1, 1});
  TensorMap evil = Map({1e30f, -1e30f, 1e30f, -1e30f}, {1e30f, 1e30f});
  auto med = CoordinateMedian({&a, &evil, &b});
  ASSERT_TRUE(med.ok()) << med.status();
  EXPECT_THAT(Values(*med, "fc.weight"), ElementsAre(1.5, 2, 3.5, 4));
  EXPECT_THAT(Values(*med, "fc.bias"), ElementsAre(1, 1));
}

TEST(CoordinateMedian, AveragesTheTwoMiddleValuesForEvenCounts) {
  TensorMap a = Map({1, 0, 0, 0}, {0, 0});
  TensorMap b = Map({2, 0, 0, 0}, {0, 0});
  TensorMap c = Map({4, 0, 0, 0}, {0, 0});
  TensorMap evil = Map({1e30f, 0, 0, 0}, {0, 0});
  auto med = CoordinateMedian({&evil, &a, &c, &b});
  ASSERT_TRUE(med.ok());
  EXPECT_EQ(Values(*med, "fc.weight")[0], 3.0f);
}

TEST(TrimmedMean, DropsExtremesOnBothSides) {
  std::vector<TensorMap> maps;
  for (float x : {1.f, 2.f, 3.f, 4.f, 1000.f}) maps.push_back(Map({x, -x, x, x}, {x, 0}));
  maps.push_back(Map({-1000, 1000, 5, 5}, {5, 0}));
  std::vector<const TensorMap*> parts;
  for (const TensorMap& m : maps) parts.push_back(&m);
  // n = 6, trim 0.2 -> k = 1: drop the smallest and the largest per coordinate.
  auto tm = TrimmedMean(parts, 0.2);
  ASSERT_TRUE(tm.ok()) << tm.status();
  EXPECT_THAT(Values(*tm, "fc.weight"), ElementsAre(2.5, -2.5, 3.5, 3.5));
  EXPECT_THAT(Values(*tm, "fc.bias"), ElementsAre(3.5, 0));
  auto plain = TrimmedMean(parts, 0);
  ASSERT_TRUE(plain.ok());
  EXPECT_THAT(Values(*plain, "fc.weight")[2], FloatEq(1015.0f / 6));
}

TEST(TrimmedMean, RefusesFractionThatLeavesNothing) {
  TensorMap a = Map({1, 2, 3, 4}, {0, 0});
  EXPECT_THAT(TrimmedMean({&a}, 0.5).status().message(), HasSubstr("[0, 0.5)"));
  EXPECT_THAT(TrimmedMean({&a}, -0.1).status().message(), HasSubstr("[0, 0.5)"));
}

TEST(NegateAndAddInPlace, ComputeOldMinusNew) {
  TensorMap old_params = Map({1, 2, 3, 4}, {0, 0});
  TensorMap new_params = Map({0.5, 2, 4, 4}, {1, -1});
  TensorMap pseudo = old_params;
  ASSERT_TRUE(AddInPlace(pseudo, new_params, -1).ok());
  EXPECT_THAT(Values(pseudo, "fc.weight"), ElementsAre(0.5, 0, -1, 0));
  EXPECT_THAT(Values(pseudo, "fc.bias"), ElementsAre(-1, 1));
  TensorMap neg = Negate(pseudo);
  EXPECT_THAT(Values(neg, "fc.weight"), ElementsAre(-0.5, 0, 1, 0));
}

TEST(NegateAndAddInPlace, AddInPlaceRefusesOtherLayoutAndLeavesTargetUntouched) {
  TensorMap a = Map({1, 2, 3, 4}, {0, 0});
  TensorMap b;
  b.tensors["fc.weight"] = Tensor::F32({4}, {1, 1, 1, 1});
  b.tensors["fc.bias"] = Tensor::F32({2}, {1, 1});
  absl::Status s = AddInPlace(a, b, 1);
  EXPECT_THAT(s.message(), HasSubstr("'fc.weight' has shape [2,2] in the target but [4]"));
  EXPECT_THAT(Values(a, "fc.bias"), ElementsAre(0, 0));
}

TEST(CenteredClip, OutliersMoveTheCenterByAtMostTheRadius) {
  // Six honest updates near (1, 1, 1, 1 | 0, 0), two attackers far away.
  std::vector<TensorMap> maps;
  for (int i = 0; i < 6; ++i) {
    const float e = 0.01f * static_cast<float>(i - 3);
    maps.push_back(Map({1 + e, 1 - e, 1 + e, 1 - e}, {e, -e}));
  }
  maps.push_back(Map({-100, -100, -100, -100}, {50, 50}));
  maps.push_back(Map({1000, 1000, 1000, 1000}, {-500, -500}));
  std::vector<const TensorMap*> parts;
  for (const auto& m : maps) parts.push_back(&m);
  absl::StatusOr<ClipResult> r = CenteredClip(parts);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->radius, 0);
  EXPECT_LT(r->radius, 0.2) << "the automatic radius follows the honest spread";
  for (float v : Values(r->center, "fc.weight")) EXPECT_NEAR(v, 1.0f, 0.1f);
  for (float v : Values(r->center, "fc.bias")) EXPECT_NEAR(v, 0.0f, 0.1f);
  ASSERT_EQ(r->distances.size(), 8u);
  EXPECT_GT(r->distances[6], 100);
  EXPECT_GT(r->distances[7], 1000);
  for (int i = 0; i < 6; ++i) EXPECT_LT(r->distances[i], 0.2);

  // The plain mean is dragged far off by the same attackers.
  absl::StatusOr<TensorMap> mean = WeightedAverage(parts, std::vector<double>(8, 1.0));
  EXPECT_GT(Values(*mean, "fc.weight")[0], 50);
}

TEST(CenteredClip, WithoutOutliersItIsCloseToTheMean) {
  TensorMap a = Map({1, 2, 3, 4}, {0, 1}), b = Map({1.2f, 2.2f, 3.2f, 4.2f}, {0.2f, 1.2f}),
            c = Map({0.8f, 1.8f, 2.8f, 3.8f}, {-0.2f, 0.8f});
  absl::StatusOr<ClipResult> r = CenteredClip({&a, &b, &c}, /*radius=*/10);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(Values(r->center, "fc.weight"), ElementsAre(FloatNear(1, 1e-5), FloatNear(2, 1e-5),
                                                          FloatNear(3, 1e-5), FloatNear(4, 1e-5)));
  EXPECT_FALSE(CenteredClip({&a, &b}, -1).ok());
  EXPECT_FALSE(CenteredClip({&a, &b}, 1, 0).ok());
}

TEST(CenteredClip, DistancesToMeasureEachPart) {
  TensorMap a = Map({0, 0, 0, 0}, {0, 0}), b = Map({3, 4, 0, 0}, {0, 0});
  absl::StatusOr<std::vector<double>> d = DistancesTo({&a, &b}, a);
  ASSERT_TRUE(d.ok());
  EXPECT_THAT(*d, ElementsAre(0.0, 5.0));
  EXPECT_DOUBLE_EQ(L2Norm(b), 5.0);
}

}  // namespace
}  // namespace artel::ml
