#include "ml/optimizer.h"

#include <filesystem>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace artel::ml {
namespace {

using ::testing::HasSubstr;

// Reference values from PyTorch 1.13 (torch.optim, CPU, float32), produced
// once with /usr/bin/python3:
//
//   import torch
//   P0 = {'a': [[0.5, -1.0], [2.0, 0.25]], 'b': [1.0, -0.5, 0.0]}
//   G = [{'a': [[0.1, -0.2], [0.3, 0.4]], 'b': [0.5, -0.6, 0.7]},
//        {'a': [[-0.3, 0.1], [0.2, -0.5]], 'b': [0.25, 0.125, -0.75]},
//        {'a': [[0.05, 0.6], [-0.4, 0.2]], 'b': [-0.1, 0.9, 0.3]}]
//   def run(make):
//       ps = {k: torch.tensor(v, requires_grad=True) for k, v in P0.items()}
//       opt = make(list(ps.values()))
//       for g in G:
//           for k, p in ps.items(): p.grad = torch.tensor(g[k])
//           opt.step()
//       return {k: [float(x) for x in p.detach().flatten()] for k, p in ps.items()}
//   run(lambda p: torch.optim.SGD(p, lr=0.1))                              # sgd
//   run(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))                # momentum
//   run(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True,
//                                 weight_decay=0.01))                      # nesterov
//   run(lambda p: torch.optim.Adam(p, lr=0.1))                             # adam
//   run(lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6,
//                                  weight_decay=0.1))                      # adam_wd
//   # printed with '%.9g'
TensorMap Params() {
  TensorMap m;
  m.tensors["a"] = Tensor::F32({2, 2}, {0.5, -1.0, 2.0, 0.25});
  m.tensors["b"] = Tensor::F32({3}, {1.0, -0.5, 0.0});
  return m;
}

TensorMap Grads(int step) {
  static const std::vector<std::vector<float>> kA = {
      {0.1, -0.2, 0.3, 0.4}, {-0.3, 0.1, 0.2, -0.5}, {0.05, 0.6, -0.4, 0.2}};
  static const std::vector<std::vector<float>> kB = {
      {0.5, -0.6, 0.7}, {0.25, 0.125, -0.75}, {-0.1, 0.9, 0.3}};
  TensorMap m;
  m.tensors["a"] = Tensor::F32({2, 2}, kA[step % 3]);
  m.tensors["b"] = Tensor::F32({3}, kB[step % 3]);
  return m;
}

struct Case {
  const char* name;
  OptimizerConfig config;
  std::vector<float> a, b;  // params after the 3 steps of Grads(0..2)
};

std::vector<Case> Cases() {
  return {
      {"sgd",
       {.kind = "sgd", .lr = 0.1},
       {0.515000045f, -1.05000007f, 1.99000001f, 0.239999995f},
       {0.935000002f, -0.542499959f, -0.0250000004f}},
      {"momentum",
       {.kind = "momentum", .lr = 0.1, .momentum = 0.9},
       {0.524900019f, -1.02480006f, 1.92069995f, 0.216599986f},
       {0.827000022f, -0.45115f, -0.0771999955f}},
      {"nesterov",
       {.kind = "nesterov", .lr = 0.1, .momentum = 0.9, .weight_decay = 0.01},
       {0.533387065f, -1.06445467f, 1.90294075f, 0.208162382f},
       {0.771869719f, -0.495089799f, -0.0940303653f}},
      {"adam",
       {.kind = "adam", .lr = 0.1},
       {0.477168798f, -0.926048458f, 1.80023539f, 0.159221843f},
       {0.747110963f, -0.380486459f, -0.102776498f}},
      {"adam_wd",
       {.kind = "adam", .lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1},
       {0.493641078f, -0.987486184f, 1.97554362f, 0.240461454f},
       {0.973816872f, -0.487932771f, -0.00951175671f}},
  };
}

void ExpectNear(const Tensor& t, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.f32()[i], want[i], 1e-6) << what << i;
}

TEST(Optimizer, MatchesPyTorchForEveryKind) {
  for (const Case& c : Cases()) {
    Optimizer opt(c.config);
    TensorMap params = Params();
    for (int s = 0; s < 3; ++s) ASSERT_TRUE(opt.Step(params, Grads(s)).ok()) << c.name;
    EXPECT_EQ(opt.steps(), 3);
    ExpectNear(params.tensors.at("a"), c.a, std::string(c.name) + " a");
    ExpectNear(params.tensors.at("b"), c.b, std::string(c.name) + " b");
  }
}

TEST(Optimizer, StateRoundTripsThroughSafetensorsBitwise) {
  const auto dir = std::filesystem::path(::testing::TempDir());
  for (const Case& c : Cases()) {
    Optimizer straight(c.config);
    TensorMap p_straight = Params();
    for (int s = 0; s < 5; ++s) ASSERT_TRUE(straight.Step(p_straight, Grads(s)).ok());

    Optimizer before(c.config);
    TensorMap p = Params();
    for (int s = 0; s < 3; ++s) ASSERT_TRUE(before.Step(p, Grads(s)).ok());
    const auto path = dir / (std::string(c.name) + "_opt.safetensors");
    ASSERT_TRUE(WriteSafetensors(before.State(), path).ok());

    auto loaded = ReadSafetensors(path);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    Optimizer after(c.config);
    ASSERT_TRUE(after.LoadState(*loaded).ok()) << c.name;
    EXPECT_EQ(after.steps(), 3);
    for (int s = 3; s < 5; ++s) ASSERT_TRUE(after.Step(p, Grads(s)).ok());
    for (const char* name : {"a", "b"}) {
      EXPECT_EQ(p.tensors.at(name).data, p_straight.tensors.at(name).data) << c.name << name;
    }
    EXPECT_EQ(SerializeSafetensors(after.State()), SerializeSafetensors(straight.State()));
  }
}

TEST(Optimizer, StateNamesBuffersAfterParams) {
  Optimizer adam({.kind = "adam"});
  TensorMap p = Params();
  ASSERT_TRUE(adam.Step(p, Grads(0)).ok());
  TensorMap state = adam.State();
  EXPECT_EQ(state.metadata.at("step"), "1");
  EXPECT_EQ(state.metadata.at("kind"), "adam");
  EXPECT_TRUE(state.tensors.contains("m/a") && state.tensors.contains("v/b"));
  EXPECT_EQ(state.tensors.size(), 4u);
  Optimizer sgd({.kind = "sgd"});
  ASSERT_TRUE(sgd.Step(p, Grads(0)).ok());
  EXPECT_TRUE(sgd.State().tensors.empty());
}

TEST(Optimizer, RefusesGradsWhoseLayoutDiffersAndLeavesParamsUntouched) {
  Optimizer opt({.kind = "momentum"});
  TensorMap params = Params();
  TensorMap grads = Grads(0);
  grads.tensors["b"] = Tensor::F32({1, 3}, {1, 2, 3});
  absl::Status s = opt.Step(params, grads);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'b' has shape [3] in params but [1,3] in grads"));
  EXPECT_EQ(params.tensors.at("b").data, Params().tensors.at("b").data);
  EXPECT_EQ(opt.steps(), 0);
}

TEST(Optimizer, RefusesNonFiniteGrads) {
  Optimizer opt({.kind = "sgd"});
  TensorMap params = Params();
  TensorMap grads = Grads(0);
  grads.tensors["a"].mutable_f32()[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THAT(opt.Step(params, grads).message(), HasSubstr("grads: tensor 'a'"));
  EXPECT_EQ(params.tensors.at("a").data, Params().tensors.at("a").data);
}

TEST(Optimizer, RefusesParamsThatNoLongerMatchItsState) {
  Optimizer opt({.kind = "adam"});
  TensorMap params = Params();
  ASSERT_TRUE(opt.Step(params, Grads(0)).ok());
  params.tensors.erase("b");
  TensorMap grads = Grads(1);
  grads.tensors.erase("b");
  EXPECT_THAT(opt.Step(params, grads).message(), HasSubstr("optimizer state does not match"));
}

TEST(Optimizer, LoadStateRefusesOtherKindAndBadTensors) {
  Optimizer adam({.kind = "adam"});
  TensorMap p = Params();
  ASSERT_TRUE(adam.Step(p, Grads(0)).ok());
  TensorMap state = adam.State();

  Optimizer momentum({.kind = "momentum"});
  EXPECT_THAT(momentum.LoadState(state).message(),
              HasSubstr("it is for optimizer 'adam' but this optimizer is 'momentum'"));

  Optimizer fresh({.kind = "adam"});
  TensorMap no_v = state;
  no_v.tensors.erase("v/a");
  EXPECT_THAT(fresh.LoadState(no_v).message(), HasSubstr("m and v differ"));
  TensorMap stray = state;
  stray.tensors["w/a"] = Tensor::F32({1}, {0});
  EXPECT_THAT(fresh.LoadState(stray).message(), HasSubstr("unexpected tensor 'w/a'"));
  TensorMap bad_step = state;
  bad_step.metadata["step"] = "-2";
  EXPECT_THAT(fresh.LoadState(bad_step).message(), HasSubstr("'step'"));
  EXPECT_EQ(fresh.steps(), 0);
  EXPECT_TRUE(fresh.LoadState(state).ok());
}

TEST(OptimizerConfig, RefusesUnknownKindAndNonPositiveLr) {
  EXPECT_THAT(ValidateOptimizerConfig({.kind = "rmsprop"}).message(),
              HasSubstr("unknown optimizer kind 'rmsprop'; use one of"));
  EXPECT_THAT(ValidateOptimizerConfig({.kind = "sgd", .lr = 0}).message(),
              HasSubstr("lr is 0; it must be"));
  EXPECT_THAT(ValidateOptimizerConfig({.kind = "nesterov", .momentum = 0}).message(),
              HasSubstr("momentum is 0"));
  EXPECT_THAT(ValidateOptimizerConfig({.kind = "adam", .beta2 = 1}).message(), HasSubstr("betas"));
  EXPECT_FALSE(Optimizer::Create({.kind = ""}).ok());
  EXPECT_TRUE(Optimizer::Create({.kind = "adam"}).ok());
}

TEST(Optimizer, DiLoCoOuterStepWithSgdLrOneIsParameterAveraging) {
  TensorMap params = Params();
  TensorMap w1 = Params(), w2 = Params();
  ASSERT_TRUE(AddInPlace(w1, Grads(0), 1).ok());
  ASSERT_TRUE(AddInPlace(w2, Grads(1), 1).ok());
  auto avg = WeightedAverage({&w1, &w2}, {1, 1});
  ASSERT_TRUE(avg.ok());
  TensorMap pseudo = params;
  ASSERT_TRUE(AddInPlace(pseudo, *avg, -1).ok());
  Optimizer outer({.kind = "sgd", .lr = 1});
  ASSERT_TRUE(outer.Step(params, pseudo).ok());
  for (const char* name : {"a", "b"}) {
    const Tensor& got = params.tensors.at(name);
    for (int64_t i = 0; i < got.numel(); ++i) {
      EXPECT_NEAR(got.f32()[i], avg->tensors.at(name).f32()[i], 1e-6);
    }
  }
}

}  // namespace
}  // namespace artel::ml
