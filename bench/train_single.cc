// artel-bench-single: the single-process baseline of the training benchmark
// (docs/BENCHMARKS.md). Trains a TorchScript model on an IDX data set (the
// MNIST family) in one process with libtorch's own optimizer, evaluating on
// the test set every --eval-every steps, until --target test accuracy or
// --epochs passes. Prints one line per evaluation and a summary; --json
// prints the summary as one JSON object instead (and the progress lines to
// stderr).
//
// The clock that matters, "train_s", counts only training steps (not data
// loading, not evaluation), which makes this baseline as fast as it can be.
#include <torch/script.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "ml/idx.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  std::string model;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  int64_t batch_size = 64;
  double lr = 0.002;
  std::string optimizer = "adam";
  double target = 0.90;
  int epochs = 4;
  int64_t eval_every = 235;  // steps within an epoch; a quarter of Fashion-MNIST's at B=64
  int threads = 1;
  uint64_t seed = 0;
  bool json = false;
};

struct Split {
  at::Tensor x;  // F32 [n, 1, rows, cols] in [0, 1]
  at::Tensor y;  // I64 [n]
};

Split Load(const std::filesystem::path& images, const std::filesystem::path& labels) {
  auto img = artel::ml::ReadIdx(images);
  auto lab = artel::ml::ReadIdx(labels);
  if (!img.ok() || !lab.ok()) {
    throw std::runtime_error(
        std::string(img.ok() ? lab.status().message() : img.status().message()));
  }
  if (img->shape.size() != 3 || lab->shape.size() != 1 || img->shape[0] != lab->shape[0]) {
    throw std::runtime_error("expected images [n, rows, cols] and labels [n] in " +
                             images.string() + " and " + labels.string());
  }
  const int64_t n = img->shape[0], r = img->shape[1], c = img->shape[2];
  Split s;
  s.x = torch::from_blob(img->u8.data(), {n, 1, r, c}, torch::kUInt8).to(torch::kFloat) / 255.0;
  s.y = torch::from_blob(lab->u8.data(), {n}, torch::kUInt8).to(torch::kLong);
  return s;
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const Flags& f,
                                                       std::vector<at::Tensor> params) {
  if (f.optimizer == "adam") {
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(f.lr));
  }
  if (f.optimizer == "momentum") {
    return std::make_unique<torch::optim::SGD>(params,
                                               torch::optim::SGDOptions(f.lr).momentum(0.9));
  }
  if (f.optimizer == "sgd") {
    return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(f.lr));
  }
  throw std::runtime_error("unknown optimizer \"" + f.optimizer + "\"; use sgd, momentum or adam");
}

double Accuracy(torch::jit::Module& m, const Split& test) {
  torch::NoGradGuard no_grad;
  m.eval();
  int64_t correct = 0;
  const int64_t n = test.x.size(0);
  for (int64_t b = 0; b < n; b += 1000) {
    const int64_t e = std::min(b + 1000, n);
    at::Tensor logits = m.forward({test.x.slice(0, b, e)}).toTensor();
    correct += logits.argmax(1).eq(test.y.slice(0, b, e)).sum().item<int64_t>();
  }
  m.train();
  return static_cast<double>(correct) / static_cast<double>(n);
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

int Run(const Flags& f) {
  at::set_num_threads(f.threads);
  at::set_num_interop_threads(f.threads);
  torch::manual_seed(f.seed);
  const std::filesystem::path d = f.data_dir;
  const Split train = Load(d / "train-images-idx3-ubyte.gz", d / "train-labels-idx1-ubyte.gz");
  const Split test = Load(d / "t10k-images-idx3-ubyte.gz", d / "t10k-labels-idx1-ubyte.gz");
  torch::jit::Module m = torch::jit::load(f.model, at::kCPU);
  m.train();
  std::vector<at::Tensor> params;
  for (const auto& p : m.parameters(/*recurse=*/true)) params.push_back(p);
  auto opt = MakeOptimizer(f, params);

  const int64_t n = train.x.size(0);
  Clock::duration train_time{};
  const auto wall_start = Clock::now();
  int64_t step = 0;
  double accuracy = 0, reached_train_s = -1, reached_wall_s = -1, reached_epoch = -1;
  for (int epoch = 0; epoch < f.epochs && reached_train_s < 0; ++epoch) {
    at::Tensor order = torch::randperm(n, torch::kLong);
    for (int64_t b = 0; b < n && reached_train_s < 0; b += f.batch_size) {
      const auto t0 = Clock::now();
      at::Tensor idx = order.slice(0, b, std::min(b + f.batch_size, n));
      at::Tensor logits = m.forward({train.x.index_select(0, idx)}).toTensor();
      at::Tensor loss = torch::cross_entropy_loss(logits, train.y.index_select(0, idx));
      opt->zero_grad();
      loss.backward();
      opt->step();
      train_time += Clock::now() - t0;
      ++step;
      const int64_t step_in_epoch = b / f.batch_size + 1;
      const bool last = b + f.batch_size >= n;
      // Every --eval-every steps of each epoch, and at its end.
      if (step_in_epoch % f.eval_every != 0 && !last) continue;
      accuracy = Accuracy(m, test);
      const double ep = epoch + static_cast<double>(std::min(b + f.batch_size, n)) / n;
      // Progress goes to stderr under --json, so that stdout is the summary.
      FILE* progress = f.json ? stderr : stdout;
      std::fprintf(progress,
                   "step %6lld  epoch %5.2f  loss %.4f  test accuracy %.2f%%  train %.1f s\n",
                   static_cast<long long>(step), ep, loss.item<double>(), accuracy * 100,
                   Seconds(train_time));
      std::fflush(progress);
      if (accuracy >= f.target) {
        reached_train_s = Seconds(train_time);
        reached_wall_s = Seconds(Clock::now() - wall_start);
        reached_epoch = ep;
      }
    }
  }
  const double samples_per_s = static_cast<double>(step * f.batch_size) / Seconds(train_time);
  if (f.json) {
    std::printf(
        "{\"run\": \"single\", \"threads\": %d, \"optimizer\": \"%s\", \"batch_size\": %lld, "
        "\"lr\": %g, \"target\": %g, \"reached\": %s, \"time_to_target_s\": %.1f, "
        "\"wall_to_target_s\": %.1f, \"epochs_to_target\": %.2f, \"accuracy\": %.4f, "
        "\"steps\": %lld, \"samples_per_s\": %.0f}\n",
        f.threads, f.optimizer.c_str(), static_cast<long long>(f.batch_size), f.lr, f.target,
        reached_train_s >= 0 ? "true" : "false", reached_train_s, reached_wall_s, reached_epoch,
        accuracy, static_cast<long long>(step), samples_per_s);
  } else if (reached_train_s >= 0) {
    std::printf(
        "single process (%d thread%s): %.2f%% test accuracy after %.1f s of training "
        "(%.1f s with evaluation), %.2f epochs, %.0f samples/s\n",
        f.threads, f.threads == 1 ? "" : "s", accuracy * 100, reached_train_s, reached_wall_s,
        reached_epoch, samples_per_s);
  } else {
    std::printf("single process: target %.2f%% not reached in %d epochs (%.2f%%, %.1f s)\n",
                f.target * 100, f.epochs, accuracy * 100, Seconds(train_time));
  }
  return reached_train_s >= 0 ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "artel-bench-single: the single-process libtorch baseline of the training benchmark");
  Flags f;
  app.add_option("--model", f.model, "TorchScript file (torch.jit.script(m).save)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--data-dir", f.data_dir, "directory with the four *-ubyte.gz IDX files")
      ->capture_default_str();
  app.add_option("--batch-size", f.batch_size, "samples per step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--lr", f.lr, "learning rate")->capture_default_str();
  app.add_option("--optimizer", f.optimizer, "sgd, momentum or adam")->capture_default_str();
  app.add_option("--target-accuracy", f.target, "stop at this test accuracy")
      ->capture_default_str();
  app.add_option("--epochs", f.epochs, "most passes over the data")->capture_default_str();
  app.add_option("--eval-every", f.eval_every, "steps between test-set evaluations")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--threads", f.threads, "libtorch threads")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--seed", f.seed, "libtorch seed (data order)")->capture_default_str();
  app.add_flag("--json", f.json, "print the summary as one JSON object");
  CLI11_PARSE(app, argc, argv);
  try {
    return Run(f);
  } catch (const c10::Error& e) {
    std::cerr << "artel-bench-single: " << e.what_without_backtrace() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "artel-bench-single: " << e.what() << "\n";
  }
  return 2;
}
