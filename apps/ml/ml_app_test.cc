// Tests of artel-ml: the binary runs as a subprocess on a small TorchScript
// CNN written by /usr/bin/python3 and a random data shard, as a worker runs
// it. Skipped when /usr/bin/python3 cannot import torch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "batches.h"
#include "common/subprocess.h"
#include "ml/safetensors.h"

namespace artel::ml {
namespace {

namespace fs = std::filesystem;

constexpr char kPython[] = "/usr/bin/python3";
constexpr int64_t kSamples = 64;

constexpr char kMakeModel[] = R"(import sys, torch, torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.fc = nn.Linear(8 * 13 * 13, 10)
    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        return self.fc(torch.flatten(x, 1))
torch.manual_seed(0)
torch.jit.script(Net()).save(sys.argv[1])
)";

// The same CNN with batch norm and dropout: train and eval mode differ, and
// the model has buffers (bn1.running_mean, bn1.running_var,
// bn1.num_batches_tracked).
constexpr char kMakeBatchNormModel[] = R"(import sys, torch, torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.bn1 = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8 * 13 * 13, 10)
    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        return self.fc(self.drop(torch.flatten(x, 1)))
torch.manual_seed(0)
torch.jit.script(Net()).save(sys.argv[1])
)";

// Prints the argmax classes of a TorchScript model on a shard's "x", reading
// the safetensors file by hand (the format is 8 bytes of header length, a
// JSON header, then the data).
constexpr char kPredict[] = R"(import sys, json, struct, torch
raw = open(sys.argv[2], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
meta = json.loads(raw[8:8 + n])['x']
b, e = meta['data_offsets']
x = torch.frombuffer(bytearray(raw[8 + n + b:8 + n + e]), dtype=torch.float32).reshape(meta['shape'])
model = torch.jit.load(sys.argv[1])
model.eval()
with torch.no_grad():
    print(','.join(str(int(c)) for c in model(x).argmax(1)))
)";

struct RunResult {
  int code = -1;
  std::string log;  // stdout and stderr
};

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteText(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

class MlAppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
    }
    const char* bin = std::getenv("ARTEL_BINARY_DIR");
    ASSERT_NE(bin, nullptr) << "ARTEL_BINARY_DIR is not set (ctest sets it)";
    binary_ = fs::path(bin) / "bin" / "artel-ml";
    ASSERT_TRUE(fs::exists(binary_)) << binary_;
    // artel-ml reads its inputs relative to its working directory, as in the
    // sandbox: the test runs it (and python) in a temporary directory.
    char tmpl[] = "/tmp/artel_ml_app_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    old_cwd_ = fs::current_path();
    fs::current_path(dir_);
    WriteText(dir_ / "make_model.py", kMakeModel);
    ASSERT_EQ(Python({"make_model.py", "model.pt"}).code, 0);
    // Noise images in [0, 0.5) whose label c brightens rows 2c+4 and 2c+5:
    // random, yet learnable in a few steps.
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> pixel(0, 0.5);
    std::vector<float> x(kSamples * 28 * 28);
    std::vector<int64_t> y(kSamples);
    for (float& v : x) v = pixel(rng);
    for (int64_t i = 0; i < kSamples; ++i) {
      y[i] = static_cast<int64_t>(rng() % 10);
      for (int64_t k = (2 * y[i] + 4) * 28; k < (2 * y[i] + 6) * 28; ++k) x[i * 784 + k] += 0.5f;
    }
    TensorMap shard;
    shard.tensors["x"] = Tensor::F32({kSamples, 1, 28, 28}, x);
    shard.tensors["y"] = Tensor::I64({kSamples}, y);
    ASSERT_TRUE(WriteSafetensors(shard, dir_ / "shard.safetensors").ok());
    ASSERT_EQ(Ml({"init", "--model", "model.pt", "--out", "init"}).code, 0);
  }

  void TearDown() override {
    if (dir_.empty()) return;
    fs::current_path(old_cwd_);
    fs::remove_all(dir_);
  }

  fs::path Path(const std::string& name) const { return dir_ / name; }

  // Runs a program in the test directory.
  RunResult Exec(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) {
    const fs::path log = dir_ / ("run" + std::to_string(++runs_) + ".log");
    auto child = Subprocess::Start(argv, log, env);
    if (!child.ok()) return {-1, std::string(child.status().message())};
    RunResult run;
    run.code = child->Wait();
    run.log = ReadText(log);
    return run;
  }

  RunResult Ml(std::vector<std::string> args) {
    args.insert(args.begin(), binary_.string());
    return Exec(args);
  }

  RunResult Python(std::vector<std::string> args) {
    args.insert(args.begin(), kPython);
    return Exec(args);
  }

  TensorMap Read(const std::string& name) {
    auto map = ReadSafetensors(dir_ / name);
    EXPECT_TRUE(map.ok()) << map.status();
    return map.ok() ? *map : TensorMap{};
  }

  // Grad over a part (or all) of the shard, from the initial params.
  TensorMap Grad(const std::string& out, std::vector<std::string> selection) {
    std::vector<std::string> args = {
        "grad",   "--model",           "model.pt", "--params", "init/params.safetensors",
        "--data", "shard.safetensors", "--out",    out};
    args.insert(args.end(), selection.begin(), selection.end());
    RunResult run = Ml(args);
    EXPECT_EQ(run.code, 0) << run.log;
    return Read(out + "/grad.safetensors");
  }

  // Eval of `params` (a path under the test directory) on the shard.
  TensorMap Eval(const std::string& params, const std::string& out) {
    RunResult run = Ml({"eval", "--model", "model.pt", "--params", params, "--data",
                        "shard.safetensors", "--out", out, "--predictions"});
    EXPECT_EQ(run.code, 0) << run.log;
    return Read(out + "/metrics.safetensors");
  }

  // Writes the batch-norm model as bn.pt and its params as bn/params.safetensors.
  void MakeBatchNormModel() {
    WriteText(dir_ / "make_bn_model.py", kMakeBatchNormModel);
    ASSERT_EQ(Python({"make_bn_model.py", "bn.pt"}).code, 0);
    RunResult run = Ml({"init", "--model", "bn.pt", "--out", "bn"});
    ASSERT_EQ(run.code, 0) << run.log;
  }

  // Grad of the batch-norm model over the first 32 rows with `seed`.
  TensorMap BatchNormGrad(const std::string& params, const std::string& seed,
                          const std::string& out) {
    RunResult run =
        Ml({"grad", "--model", "bn.pt", "--params", params, "--data", "shard.safetensors",
            "--batch-size", "32", "--batch-index", "0", "--seed", seed, "--out", out});
    EXPECT_EQ(run.code, 0) << run.log;
    return Read(out + "/grad.safetensors");
  }

  fs::path binary_;
  fs::path dir_;
  fs::path old_cwd_;
  int runs_ = 0;
};

// params + delta, written as `name`; the delta's buffers ("buffers/...",
// values) replace the params' as the coordinator's do.
void ApplyDelta(const TensorMap& params, const TensorMap& delta, const fs::path& path) {
  TensorMap out = params;
  for (auto& [name, t] : out.tensors) {
    const Tensor& d = delta.tensors.at(name);
    if (name.starts_with("buffers/")) {
      t = d;
      continue;
    }
    ASSERT_EQ(d.shape, t.shape) << name;
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_f32()[i] += d.f32()[i];
  }
  ASSERT_TRUE(WriteSafetensors(out, path).ok());
}

TEST_F(MlAppTest, InitWritesTheModelsParameterNamesAndShapes) {
  TensorMap params = Read("init/params.safetensors");
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, t] : params.tensors) {
    EXPECT_EQ(t.dtype, DType::kF32) << name;
    shapes[name] = t.shape;
  }
  const std::map<std::string, std::vector<int64_t>> expected = {{"conv1.weight", {8, 1, 3, 3}},
                                                                {"conv1.bias", {8}},
                                                                {"fc.weight", {10, 8 * 13 * 13}},
                                                                {"fc.bias", {10}}};
  EXPECT_EQ(shapes, expected);
}

TEST_F(MlAppTest, OutputsGoToArtelOutputDirWithoutOut) {
  RunResult run = Exec({binary_.string(), "init", "--model", "model.pt"},
                       {"ARTEL_OUTPUT_DIR=" + Path("sandbox_out").string()});
  ASSERT_EQ(run.code, 0) << run.log;
  EXPECT_EQ(ReadText(Path("sandbox_out/params.safetensors")),
            ReadText(Path("init/params.safetensors")));
}

// The basis of "a distributed sync step equals a single-process step": the
// gradient of the mean loss over a shard is the size-weighted mean of the
// gradients over its parts.
TEST_F(MlAppTest, WholeShardGradientIsTheSizeWeightedMeanOfItsBatches) {
  TensorMap all = Grad("all", {"--all"});
  TensorMap whole = Grad("whole", {"--micro-batch", "0"});
  TensorMap first = Grad("first", {"--batch-size", "40", "--batch-index", "0"});
  TensorMap second = Grad("second", {"--batch-size", "40", "--batch-index", "1"});
  EXPECT_EQ(all.metadata["samples"], "64");
  EXPECT_EQ(first.metadata["samples"], "40");
  EXPECT_EQ(second.metadata["samples"], "24");
  EXPECT_NEAR(
      std::stod(all.metadata["loss"]),
      (40 * std::stod(first.metadata["loss"]) + 24 * std::stod(second.metadata["loss"])) / 64,
      1e-5);
  ASSERT_EQ(all.tensors.size(), 4u);
  double largest = 0;
  for (const auto& [name, g] : all.tensors) {
    const Tensor& a = first.tensors.at(name);
    const Tensor& b = second.tensors.at(name);
    const Tensor& w = whole.tensors.at(name);
    ASSERT_EQ(g.shape, a.shape);
    for (int64_t i = 0; i < g.numel(); ++i) {
      const double mean = (40.0 * a.f32()[i] + 24.0 * b.f32()[i]) / 64.0;
      ASSERT_NEAR(g.f32()[i], mean, 1e-5) << name << "[" << i << "]";
      ASSERT_NEAR(g.f32()[i], w.f32()[i], 1e-5) << name << "[" << i << "]";
      largest = std::max(largest, std::abs(mean));
    }
  }
  EXPECT_GT(largest, 1e-3);  // the gradients are not trivially zero
}

TEST_F(MlAppTest, LocalStepsLowerTheLossOnTheShardWithEveryOptimizer) {
  const double before = std::stod(Eval("init/params.safetensors", "eval0").metadata["loss"]);
  for (const std::string optimizer : {"sgd", "momentum", "adam"}) {
    const std::string lr = optimizer == "adam" ? "0.003" : "0.05";
    RunResult run = Ml({"local", "--model", "model.pt", "--params", "init/params.safetensors",
                        "--data", "shard.safetensors", "--steps", "20", "--batch-size", "16",
                        "--lr", lr, "--optimizer", optimizer, "--seed", "7", "--out", optimizer});
    ASSERT_EQ(run.code, 0) << run.log;
    TensorMap delta = Read(optimizer + "/delta.safetensors");
    EXPECT_EQ(delta.metadata["samples"], "320");
    ApplyDelta(Read("init/params.safetensors"), delta, Path(optimizer + "/params.safetensors"));
    const double after =
        std::stod(Eval(optimizer + "/params.safetensors", optimizer + "/eval").metadata["loss"]);
    EXPECT_LT(after, 0.8 * before) << optimizer;
  }
}

TEST_F(MlAppTest, LocalIsDeterministicForAGivenSeedAndStart) {
  auto local = [&](const std::string& out, const std::string& seed) {
    RunResult run = Ml({"local",
                        "--model",
                        "model.pt",
                        "--params",
                        "init/params.safetensors",
                        "--data",
                        "shard.safetensors",
                        "--steps",
                        "3",
                        "--batch-size",
                        "24",
                        "--lr",
                        "0.1",
                        "--optimizer",
                        "momentum",
                        "--seed",
                        seed,
                        "--start-batch",
                        "2",
                        "--out",
                        out});
    EXPECT_EQ(run.code, 0) << run.log;
    return ReadText(Path(out + "/delta.safetensors"));
  };
  EXPECT_EQ(local("a", "5"), local("b", "5"));
  EXPECT_NE(local("a", "5"), local("c", "6"));
}

TEST_F(MlAppTest, LocalOnSeveralShardsTrainsOnThemAsOne) {
  // Cut the fixture's shard in two; training on both halves must equal
  // training on the whole, byte for byte.
  TensorMap whole = Read("shard.safetensors");
  const Tensor& x = whole.tensors.at("x");
  const Tensor& y = whole.tensors.at("y");
  const int64_t n = x.shape[0], half = n / 2;
  const size_t row = x.data.size() / static_cast<size_t>(n);
  auto part = [&](int64_t begin, int64_t end, const std::string& name) {
    TensorMap m;
    Tensor px = x, py = y;
    px.shape[0] = py.shape[0] = end - begin;
    px.data =
        x.data.substr(static_cast<size_t>(begin) * row, static_cast<size_t>(end - begin) * row);
    py.data = y.data.substr(static_cast<size_t>(begin) * 8, static_cast<size_t>(end - begin) * 8);
    m.tensors = {{"x", px}, {"y", py}};
    ASSERT_TRUE(WriteSafetensors(m, Path(name)).ok());
  };
  part(0, half, "a.safetensors");
  part(half, n, "b.safetensors");
  auto local = [&](std::vector<std::string> data, const std::string& out) {
    std::vector<std::string> args = {"local", "--model", "model.pt", "--params",
                                     "init/params.safetensors"};
    for (const std::string& d : data) args.insert(args.end(), {"--data", d});
    args.insert(args.end(), {"--steps", "4", "--batch-size", "24", "--lr", "0.003", "--optimizer",
                             "adam", "--seed", "3", "--out", out});
    RunResult run = Ml(args);
    EXPECT_EQ(run.code, 0) << run.log;
    return ReadText(Path(out + "/delta.safetensors"));
  };
  const std::string joined = local({"a.safetensors", "b.safetensors"}, "joined");
  EXPECT_FALSE(joined.empty());
  EXPECT_EQ(joined, local({"shard.safetensors"}, "whole"));
  EXPECT_NE(joined, local({"b.safetensors", "a.safetensors"}, "swapped"));
}

TEST_F(MlAppTest, LocalChainedThroughItsStateEqualsOneLongerRun) {
  for (const std::string optimizer : {"momentum", "adam"}) {
    SCOPED_TRACE(optimizer);
    auto local = [&](const std::string& params, const std::string& steps, const std::string& start,
                     const std::string& state, const std::string& out) {
      std::vector<std::string> args = {"local",
                                       "--model",
                                       "model.pt",
                                       "--params",
                                       params,
                                       "--data",
                                       "shard.safetensors",
                                       "--steps",
                                       steps,
                                       "--batch-size",
                                       "8",
                                       "--lr",
                                       optimizer == "adam" ? "0.003" : "0.05",
                                       "--optimizer",
                                       optimizer,
                                       "--seed",
                                       "3",
                                       "--start-batch",
                                       start,
                                       "--out",
                                       out};
      if (!state.empty()) args.insert(args.end(), {"--state", state});
      RunResult run = Ml(args);
      EXPECT_EQ(run.code, 0) << run.log;
    };
    const std::string o = optimizer;
    local("init/params.safetensors", "6", "0", "", o + "-long");
    local("init/params.safetensors", "3", "0", "", o + "-first");
    TensorMap state = Read(o + "-first/state.safetensors");
    EXPECT_EQ(state.metadata["step"], "3");
    EXPECT_EQ(state.tensors.count("m/fc.bias"), 1u);
    EXPECT_EQ(state.tensors.count("v/fc.bias"), optimizer == "adam" ? 1u : 0u);
    ApplyDelta(Read("init/params.safetensors"), Read(o + "-first/delta.safetensors"),
               Path(o + "-mid.safetensors"));
    local(o + "-mid.safetensors", "3", "3", o + "-first/state.safetensors", o + "-second");
    EXPECT_EQ(Read(o + "-second/state.safetensors").metadata["step"], "6");

    const TensorMap long_run = Read(o + "-long/delta.safetensors");
    const TensorMap first = Read(o + "-first/delta.safetensors");
    const TensorMap second = Read(o + "-second/delta.safetensors");
    // Without the state the second half restarts the optimizer: a different path.
    local(o + "-mid.safetensors", "3", "3", "", o + "-fresh");
    const TensorMap fresh = Read(o + "-fresh/delta.safetensors");
    double worst = 0, fresh_gap = 0;
    for (const auto& [name, t] : long_run.tensors) {
      for (int64_t i = 0; i < t.numel(); ++i) {
        const double chained = first.tensors.at(name).f32()[i] + second.tensors.at(name).f32()[i];
        const double restarted = first.tensors.at(name).f32()[i] + fresh.tensors.at(name).f32()[i];
        worst = std::max(worst, std::abs(chained - t.f32()[i]));
        fresh_gap = std::max(fresh_gap, std::abs(restarted - t.f32()[i]));
      }
    }
    EXPECT_LT(worst, 1e-5);
    EXPECT_GT(fresh_gap, 1e-4) << "the state made no difference; the check proves nothing";
  }
}

TEST_F(MlAppTest, AStateOfAnotherOptimizerIsRejected) {
  RunResult run = Ml({"local", "--model", "model.pt", "--params", "init/params.safetensors",
                      "--data", "shard.safetensors", "--steps", "1", "--batch-size", "8", "--lr",
                      "0.05", "--optimizer", "momentum", "--out", "mom"});
  ASSERT_EQ(run.code, 0) << run.log;
  run = Ml({"local", "--model", "model.pt", "--params", "init/params.safetensors", "--data",
            "shard.safetensors", "--steps", "1", "--batch-size", "8", "--lr", "0.003",
            "--optimizer", "adam", "--state", "mom/state.safetensors", "--out", "adam"});
  EXPECT_EQ(run.code, 2);
  EXPECT_NE(run.log.find("mom/state.safetensors: optimizer state lacks \"v/"), std::string::npos)
      << run.log;
}

TEST_F(MlAppTest, EvalCountsSamplesAndCorrectPredictions) {
  TensorMap metrics = Eval("init/params.safetensors", "eval");
  EXPECT_EQ(metrics.metadata["samples"], "64");
  const int correct = std::stoi(metrics.metadata["correct"]);
  EXPECT_GE(correct, 0);
  EXPECT_LE(correct, 64);
  EXPECT_GT(std::stod(metrics.metadata["loss"]), 0);
  ASSERT_TRUE(metrics.tensors.contains("predictions"));
  EXPECT_EQ(metrics.tensors.at("predictions").shape, std::vector<int64_t>{64});
}

TEST_F(MlAppTest, EvalOfSeveralShardsSumsTheirMetrics) {
  TensorMap one = Eval("init/params.safetensors", "eval1");
  // A second shard: the first half of the shard's rows.
  TensorMap shard = Read("shard.safetensors");
  TensorMap half;
  for (const auto& [name, t] : shard.tensors) {
    Tensor h = t;
    h.shape[0] = t.shape[0] / 2;
    h.data.resize(h.data.size() / 2);
    half.tensors[name] = h;
  }
  ASSERT_TRUE(WriteSafetensors(half, Path("half.safetensors")).ok());
  TensorMap first_half = [&] {
    RunResult run = Ml({"eval", "--model", "model.pt", "--params", "init/params.safetensors",
                        "--data", "half.safetensors", "--out", "evalh"});
    EXPECT_EQ(run.code, 0) << run.log;
    return Read("evalh/metrics.safetensors");
  }();
  RunResult run =
      Ml({"eval", "--model", "model.pt", "--params", "init/params.safetensors", "--data",
          "shard.safetensors", "--data", "half.safetensors", "--out", "eval2", "--predictions"});
  ASSERT_EQ(run.code, 0) << run.log;
  TensorMap both = Read("eval2/metrics.safetensors");
  EXPECT_EQ(both.metadata["samples"], "96");
  EXPECT_EQ(std::stoi(both.metadata["correct"]),
            std::stoi(one.metadata["correct"]) + std::stoi(first_half.metadata["correct"]));
  const double want =
      (std::stod(one.metadata["loss"]) * 64 + std::stod(first_half.metadata["loss"]) * 32) / 96;
  EXPECT_NEAR(std::stod(both.metadata["loss"]), want, 1e-5);
  ASSERT_TRUE(both.tensors.contains("predictions"));
  const Tensor& p = both.tensors.at("predictions");
  ASSERT_EQ(p.shape, std::vector<int64_t>{96});
  // The first 64 predictions are the whole shard's, in order.
  EXPECT_EQ(p.data.substr(0, 64 * 8), one.tensors.at("predictions").data);
}

TEST_F(MlAppTest, ParamsOfTheWrongShapeOrNamesAreRejected) {
  TensorMap params = Read("init/params.safetensors");
  params.tensors["fc.bias"] = Tensor::F32({11}, std::vector<float>(11, 0.f));
  ASSERT_TRUE(WriteSafetensors(params, Path("wrong_shape.safetensors")).ok());
  RunResult run = Ml({"eval", "--model", "model.pt", "--params", "wrong_shape.safetensors",
                      "--data", "shard.safetensors", "--out", "e1"});
  EXPECT_EQ(run.code, 2);
  EXPECT_NE(run.log.find("\"fc.bias\" is F32 [11] but the model's is F32 [10]"), std::string::npos)
      << run.log;

  params.tensors.erase("fc.bias");
  ASSERT_TRUE(WriteSafetensors(params, Path("missing.safetensors")).ok());
  run = Ml({"grad", "--model", "model.pt", "--params", "missing.safetensors", "--data",
            "shard.safetensors", "--out", "e2"});
  EXPECT_EQ(run.code, 2);
  EXPECT_NE(run.log.find("missing [fc.bias]"), std::string::npos) << run.log;
}

TEST_F(MlAppTest, AFileThatIsNotTorchScriptIsRejected) {
  WriteText(Path("not_a_model.pt"), "import torch  # a script, not a TorchScript archive\n");
  RunResult run = Ml({"init", "--model", "not_a_model.pt", "--out", "bad"});
  EXPECT_EQ(run.code, 2);
  EXPECT_NE(run.log.find("is not a TorchScript file"), std::string::npos) << run.log;
}

TEST_F(MlAppTest, MalformedDataIsRejected) {
  WriteText(Path("garbage.safetensors"), std::string(64, '\x7f'));
  TensorMap no_y;
  no_y.tensors["x"] = Tensor::F32({2, 1, 28, 28}, std::vector<float>(2 * 28 * 28));
  ASSERT_TRUE(WriteSafetensors(no_y, Path("no_y.safetensors")).ok());
  TensorMap short_y = no_y;
  short_y.tensors["y"] = Tensor::I64({3}, {0, 1, 2});
  ASSERT_TRUE(WriteSafetensors(short_y, Path("short_y.safetensors")).ok());
  TensorMap float_y = no_y;
  float_y.tensors["y"] = Tensor::F32({2}, {0, 1});
  ASSERT_TRUE(WriteSafetensors(float_y, Path("float_y.safetensors")).ok());
  TensorMap bad_label = no_y;
  bad_label.tensors["y"] = Tensor::I64({2}, {3, 10});
  ASSERT_TRUE(WriteSafetensors(bad_label, Path("bad_label.safetensors")).ok());
  TensorMap wrong_image = no_y;
  wrong_image.tensors["x"] = Tensor::F32({2, 3, 5}, std::vector<float>(30));
  wrong_image.tensors["y"] = Tensor::I64({2}, {0, 1});
  ASSERT_TRUE(WriteSafetensors(wrong_image, Path("wrong_image.safetensors")).ok());

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"garbage.safetensors", "garbage.safetensors"},
      {"no_y.safetensors", "no tensor \"y\""},
      {"short_y.safetensors", "\"x\" has 2 samples and \"y\" 3"},
      {"float_y.safetensors", "\"y\" is F32 [2]"},
      {"bad_label.safetensors", "labels \"y\" span [3, 10] but the model gives 10 classes"},
      {"wrong_image.safetensors", "the model's forward failed on x of shape [2, 3, 5]"}};
  for (const auto& [file, message] : cases) {
    RunResult run = Ml({"grad", "--model", "model.pt", "--params", "init/params.safetensors",
                        "--data", file, "--out", "bad"});
    EXPECT_EQ(run.code, 2) << file << ": " << run.log;
    EXPECT_NE(run.log.find(message), std::string::npos) << file << ": " << run.log;
    EXPECT_EQ(run.log.find("terminate"), std::string::npos) << run.log;
  }
}

TEST_F(MlAppTest, ABatchPastTheShardsEndIsRejected) {
  RunResult run =
      Ml({"grad", "--model", "model.pt", "--params", "init/params.safetensors", "--data",
          "shard.safetensors", "--batch-size", "32", "--batch-index", "2", "--out", "bad"});
  EXPECT_EQ(run.code, 2);
  EXPECT_NE(run.log.find("batch 2 is out of range"), std::string::npos) << run.log;
}

TEST_F(MlAppTest, ExportedModelPredictsWhatEvalPredicts) {
  RunResult run = Ml({"local", "--model", "model.pt", "--params", "init/params.safetensors",
                      "--data", "shard.safetensors", "--steps", "5", "--batch-size", "16", "--lr",
                      "0.05", "--out", "trained"});
  ASSERT_EQ(run.code, 0) << run.log;
  ApplyDelta(Read("init/params.safetensors"), Read("trained/delta.safetensors"),
             Path("trained/params.safetensors"));
  run = Ml({"export", "--model", "model.pt", "--params", "trained/params.safetensors", "--out",
            "export/trained.pt"});
  ASSERT_EQ(run.code, 0) << run.log;
  TensorMap metrics = Eval("trained/params.safetensors", "eval");
  const Tensor& predicted = metrics.tensors.at("predictions");
  std::string expected;
  for (int64_t i = 0; i < predicted.numel(); ++i) {
    expected +=
        (i ? "," : "") + std::to_string(reinterpret_cast<const int64_t*>(predicted.data.data())[i]);
  }
  WriteText(Path("predict.py"), kPredict);
  run = Python({"predict.py", "export/trained.pt", "shard.safetensors"});
  ASSERT_EQ(run.code, 0) << run.log;
  EXPECT_EQ(run.log, expected + "\n");
  // The export carries the trained params, not the file's initial ones.
  run = Python({"predict.py", "model.pt", "shard.safetensors"});
  EXPECT_NE(run.log, expected + "\n");
}

int64_t FirstI64(const Tensor& t) {
  EXPECT_EQ(t.dtype, DType::kI64);
  return t.numel() > 0 ? reinterpret_cast<const int64_t*>(t.data.data())[0] : -1;
}

std::vector<float> Floats(const Tensor& t) {
  return std::vector<float>(t.f32(), t.f32() + t.numel());
}

TEST_F(MlAppTest, InitWritesTheBuffersInTheirOwnDtypes) {
  ASSERT_NO_FATAL_FAILURE(MakeBatchNormModel());
  TensorMap params = Read("bn/params.safetensors");
  std::map<std::string, std::pair<DType, std::vector<int64_t>>> buffers;
  for (const auto& [name, t] : params.tensors) {
    if (name.starts_with("buffers/")) buffers[name] = {t.dtype, t.shape};
  }
  const std::map<std::string, std::pair<DType, std::vector<int64_t>>> expected = {
      {"buffers/bn1.num_batches_tracked", {DType::kI64, {}}},
      {"buffers/bn1.running_mean", {DType::kF32, {8}}},
      {"buffers/bn1.running_var", {DType::kF32, {8}}}};
  EXPECT_EQ(buffers, expected);
  EXPECT_EQ(params.tensors.count("bn1.weight"), 1u);  // a parameter
  EXPECT_EQ(FirstI64(params.tensors.at("buffers/bn1.num_batches_tracked")), 0);
  EXPECT_EQ(Floats(params.tensors.at("buffers/bn1.running_mean")), std::vector<float>(8, 0.f));
  EXPECT_EQ(Floats(params.tensors.at("buffers/bn1.running_var")), std::vector<float>(8, 1.f));
}

// Replicas of a grad task must agree (quorum validation): dropout draws from
// the --seed generator. The buffers come back as their values after the
// forward pass in train mode, from the buffers in the params.
TEST_F(MlAppTest, GradIsSeededAndReturnsTheBuffersAfterItsForwardPass) {
  ASSERT_NO_FATAL_FAILURE(MakeBatchNormModel());
  TensorMap a = BatchNormGrad("bn/params.safetensors", "7", "a");
  BatchNormGrad("bn/params.safetensors", "7", "again");
  TensorMap b = BatchNormGrad("bn/params.safetensors", "8", "b");
  EXPECT_EQ(ReadText(Path("a/grad.safetensors")), ReadText(Path("again/grad.safetensors")));
  EXPECT_NE(a.tensors.at("fc.weight").data, b.tensors.at("fc.weight").data)
      << "another seed drew the same dropout mask";
  EXPECT_EQ(FirstI64(a.tensors.at("buffers/bn1.num_batches_tracked")), 1);
  // Dropout comes after the batch norm: its statistics do not depend on the seed.
  EXPECT_EQ(a.tensors.at("buffers/bn1.running_mean").data,
            b.tensors.at("buffers/bn1.running_mean").data);
  EXPECT_NE(Floats(a.tensors.at("buffers/bn1.running_mean")), std::vector<float>(8, 0.f));
  EXPECT_NE(Floats(a.tensors.at("buffers/bn1.running_var")), std::vector<float>(8, 1.f));

  // From params whose buffers moved on: the pass starts from those.
  TensorMap params = Read("bn/params.safetensors");
  params.tensors["buffers/bn1.num_batches_tracked"] = Tensor::I64({}, {41});
  params.tensors["buffers/bn1.running_mean"] = Tensor::F32({8}, std::vector<float>(8, 10.f));
  ASSERT_TRUE(WriteSafetensors(params, Path("moved.safetensors")).ok());
  TensorMap c = BatchNormGrad("moved.safetensors", "7", "c");
  EXPECT_EQ(FirstI64(c.tensors.at("buffers/bn1.num_batches_tracked")), 42);
  const std::vector<float> mean = Floats(c.tensors.at("buffers/bn1.running_mean"));
  const std::vector<float> from_zero = Floats(a.tensors.at("buffers/bn1.running_mean"));
  for (size_t i = 0; i < mean.size(); ++i) {
    EXPECT_NEAR(mean[i], 0.9f * 10.f + from_zero[i], 1e-5) << i;  // momentum 0.1
  }
  // The gradients use batch statistics, not the running ones.
  EXPECT_EQ(c.tensors.at("conv1.weight").data, a.tensors.at("conv1.weight").data);
}

TEST_F(MlAppTest, LocalReturnsParameterDeltasAndBufferValues) {
  ASSERT_NO_FATAL_FAILURE(MakeBatchNormModel());
  TensorMap params = Read("bn/params.safetensors");
  params.tensors["buffers/bn1.num_batches_tracked"] = Tensor::I64({}, {41});
  params.tensors["buffers/bn1.running_mean"] = Tensor::F32({8}, std::vector<float>(8, 10.f));
  ASSERT_TRUE(WriteSafetensors(params, Path("moved.safetensors")).ok());
  RunResult run = Ml({"local", "--model", "bn.pt", "--params", "moved.safetensors", "--data",
                      "shard.safetensors", "--steps", "3", "--batch-size", "16", "--lr", "0.05",
                      "--seed", "5", "--out", "local"});
  ASSERT_EQ(run.code, 0) << run.log;
  TensorMap delta = Read("local/delta.safetensors");
  // Values, not differences: 41 + 3 batches; a mean that decays from 10 by
  // 0.9 per step towards batch means near 0 (a difference would be < 0).
  EXPECT_EQ(FirstI64(delta.tensors.at("buffers/bn1.num_batches_tracked")), 44);
  for (float v : Floats(delta.tensors.at("buffers/bn1.running_mean"))) EXPECT_GT(v, 5) << v;
  EXPECT_EQ(delta.tensors.at("bn1.weight").dtype, DType::kF32);
  EXPECT_EQ(delta.metadata["steps"], "3");
}

// Evaluation and export run in eval mode with the params' running statistics:
// the exported model predicts in PyTorch what eval predicts, and other
// buffers give another result.
TEST_F(MlAppTest, EvalAndExportUseTheBuffersOfTheParams) {
  ASSERT_NO_FATAL_FAILURE(MakeBatchNormModel());
  RunResult run = Ml({"local", "--model", "bn.pt", "--params", "bn/params.safetensors", "--data",
                      "shard.safetensors", "--steps", "8", "--batch-size", "16", "--lr", "0.05",
                      "--seed", "5", "--out", "trained"});
  ASSERT_EQ(run.code, 0) << run.log;
  TensorMap initial = Read("bn/params.safetensors");
  ApplyDelta(initial, Read("trained/delta.safetensors"), Path("trained/params.safetensors"));
  run = Ml({"export", "--model", "bn.pt", "--params", "trained/params.safetensors", "--out",
            "export/trained.pt"});
  ASSERT_EQ(run.code, 0) << run.log;
  auto eval = [&](const std::string& params, const std::string& out) {
    RunResult r = Ml({"eval", "--model", "bn.pt", "--params", params, "--data", "shard.safetensors",
                      "--out", out, "--predictions"});
    EXPECT_EQ(r.code, 0) << r.log;
    return Read(out + "/metrics.safetensors");
  };
  TensorMap metrics = eval("trained/params.safetensors", "eval");
  const Tensor& predicted = metrics.tensors.at("predictions");
  std::string expected;
  for (int64_t i = 0; i < predicted.numel(); ++i) {
    expected +=
        (i ? "," : "") + std::to_string(reinterpret_cast<const int64_t*>(predicted.data.data())[i]);
  }
  WriteText(Path("predict.py"), kPredict);
  run = Python({"predict.py", "export/trained.pt", "shard.safetensors"});
  ASSERT_EQ(run.code, 0) << run.log;
  EXPECT_EQ(run.log, expected + "\n");

  // The trained weights with the initial running statistics measure otherwise.
  TensorMap stale = Read("trained/params.safetensors");
  for (const auto& [name, t] : initial.tensors) {
    if (name.starts_with("buffers/")) stale.tensors[name] = t;
  }
  ASSERT_TRUE(WriteSafetensors(stale, Path("stale.safetensors")).ok());
  EXPECT_NE(eval("stale.safetensors", "eval-stale").metadata["loss"], metrics.metadata["loss"]);
}

TEST_F(MlAppTest, ParamsWithoutBuffersAreAcceptedAndWrongBuffersRejected) {
  ASSERT_NO_FATAL_FAILURE(MakeBatchNormModel());
  TensorMap params = Read("bn/params.safetensors");
  TensorMap older = params;  // as stored before buffers travelled
  for (auto it = older.tensors.begin(); it != older.tensors.end();) {
    it = it->first.starts_with("buffers/") ? older.tensors.erase(it) : std::next(it);
  }
  ASSERT_TRUE(WriteSafetensors(older, Path("older.safetensors")).ok());
  RunResult run = Ml({"eval", "--model", "bn.pt", "--params", "older.safetensors", "--data",
                      "shard.safetensors", "--out", "older"});
  EXPECT_EQ(run.code, 0) << run.log;

  struct Case {
    std::string name;
    Tensor tensor;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"buffers/bn1.num_batches_tracked", Tensor::F32({}, {3.f}),
       "buffer \"bn1.num_batches_tracked\" is F32 [] but the model's is I64 []"},
      {"buffers/bn1.running_mean", Tensor::F32({7}, std::vector<float>(7)),
       "buffer \"bn1.running_mean\" is F32 [7] but the model's is F32 [8]"},
      {"buffers/bn2.running_mean", Tensor::F32({8}, std::vector<float>(8)),
       "the model has no buffer \"bn2.running_mean\" (its buffers: [bn1.running_mean, "
       "bn1.running_var, bn1.num_batches_tracked])"}};
  for (const Case& c : cases) {
    TensorMap bad = params;
    bad.tensors[c.name] = c.tensor;
    ASSERT_TRUE(WriteSafetensors(bad, Path("bad.safetensors")).ok());
    run = Ml({"grad", "--model", "bn.pt", "--params", "bad.safetensors", "--data",
              "shard.safetensors", "--out", "bad"});
    EXPECT_EQ(run.code, 2) << c.name << ": " << run.log;
    EXPECT_NE(run.log.find(c.message), std::string::npos) << c.name << ": " << run.log;
  }
}

TEST(Batches, BatchRowsCutsAShortLastBatchAndRejectsOnePastTheEnd) {
  EXPECT_EQ(BatchRows(64, 40, 1)->begin, 40);
  EXPECT_EQ(BatchRows(64, 40, 1)->end, 64);
  EXPECT_EQ(BatchRows(64, 40, 2).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(BatchRows(64, 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Batches, StepRowsWrapAroundTheOrder) {
  const std::vector<int64_t> order = {4, 3, 2, 1, 0};
  EXPECT_EQ(StepRows(order, 2, 0, 0), (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(StepRows(order, 2, 1, 1), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(StepRows(order, 7, 0, 0), (std::vector<int64_t>{4, 3, 2, 1, 0, 4, 3}));
}

TEST(Batches, ConcatShardsAppendsRowsInOrderAndRejectsOtherSampleShapes) {
  TensorMap a, b, c;
  a.tensors = {{"x", Tensor::F32({2, 2}, {1, 2, 3, 4})}, {"y", Tensor::I64({2}, {0, 1})}};
  b.tensors = {{"x", Tensor::F32({1, 2}, {5, 6})}, {"y", Tensor::I64({1}, {2})}};
  c.tensors = {{"x", Tensor::F32({1, 3}, {7, 8, 9})}, {"y", Tensor::I64({1}, {3})}};
  absl::StatusOr<TensorMap> ab = ConcatShards({&a, &b});
  ASSERT_TRUE(ab.ok()) << ab.status();
  const Tensor& x = ab->tensors.at("x");
  EXPECT_EQ(x.shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(std::vector<float>(x.f32(), x.f32() + 6), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(ab->tensors.at("y").shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(CheckShard(*ab).value_or(0), 3);
  absl::StatusOr<TensorMap> ac = ConcatShards({&a, &c});
  EXPECT_EQ(ac.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ac.status().message().find("shape [3]"), std::string_view::npos) << ac.status();
  EXPECT_EQ(ConcatShards({}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Batches, SampleOrderIsASeededPermutation) {
  EXPECT_EQ(SampleOrder(4, 0), (std::vector<int64_t>{0, 1, 2, 3}));
  std::vector<int64_t> order = SampleOrder(100, 9);
  EXPECT_EQ(order, SampleOrder(100, 9));
  EXPECT_NE(order, SampleOrder(100, 0));
  EXPECT_EQ(std::set<int64_t>(order.begin(), order.end()).size(), 100u);
}

}  // namespace
}  // namespace artel::ml
