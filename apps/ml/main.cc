// artel-ml: the worker-side program of artel's training jobs (DESIGN.md §6).
// It runs inside the sandbox, reads its inputs by path (relative to the
// working directory) and writes its outputs as safetensors files into the
// output directory: --out DIR, else $ARTEL_OUTPUT_DIR.
//
//   artel-ml init   --model M                        -> params.safetensors
//   artel-ml grad   --model M --params P --data D [--batch-size B --batch-index K | --all]
//                   [--seed S]                       -> grad.safetensors
//   artel-ml local  --model M --params P --data D --steps H --batch-size B --lr LR
//                   --optimizer sgd|momentum|adam [--seed S] [--start-batch K]
//                   [--state S]                      -> delta.safetensors, state.safetensors
//   artel-ml eval   --model M --params P --data D [--data D2 ...] [--predictions]
//                                                    -> metrics.safetensors (over all D)
//   artel-ml export --model M --params P [--out DIR | --out FILE.pt]
//                                                    -> trained.pt
//   artel-ml serve  [--requests FIFO --responses FIFO]
//                   a warm executor: runs the commands above as they arrive
//                   (docs/EXECUTORS.md); also what artel-ml does when started
//                   with no arguments and $ARTEL_EXECUTOR_REQUESTS set
//
// Testing aid: with ARTEL_INJECT_FAULT set (by `artel worker --inject-fault`)
// the process attacks training: sign-flip negates its updates, noise adds
// Gaussian noise (std 1) to every value, scale:K multiplies them by K, and
// label-flip trains on labels C-1-y (C: one more than the largest label of
// the data). Buffers are left alone.
//
// Exit codes: 0 done; 2 bad input or usage (message on stderr); 1 any other
// failure. Single-threaded unless --threads N.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "commands.h"
#include "ml/buffers.h"
#include "ml/compress.h"
#include "model.h"
#include "session.h"

namespace artel::ml {
namespace {

namespace fs = std::filesystem;

struct Flags {
  std::string out;
  int threads = 1;
  std::string model, params, data, state;
  std::vector<std::string> eval_data;   // eval: one or more shards
  std::vector<std::string> local_data;  // local: one or more shards, used as one
  int64_t batch_size = 0;
  int64_t batch_index = -1;
  bool all = false;
  int64_t micro_batch = 256;
  std::string optimizer = "sgd";
  LocalOptions local;
  bool predictions = false;
  std::string compress = "none";    // grad, local: encoding of the update
  bool error_feedback = false;      // grad, local: keep what encoding lost
  Session* session = nullptr;       // where models and shards are loaded
  std::string requests, responses;  // serve: the FIFOs
};

absl::StatusOr<fs::path> OutputDir(const Flags& flags) {
  fs::path dir = flags.out;
  if (dir.empty()) {
    const char* env = std::getenv("ARTEL_OUTPUT_DIR");
    if (env == nullptr || *env == '\0') {
      return absl::InvalidArgumentError(
          "no output directory: pass --out DIR or set ARTEL_OUTPUT_DIR");
    }
    dir = env;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  return dir;
}

absl::Status Write(const TensorMap& map, const Flags& flags, const std::string& name) {
  ASSIGN_OR_RETURN(fs::path dir, OutputDir(flags));
  RETURN_IF_ERROR(WriteSafetensors(map, dir / name));
  std::cout << name;
  for (const auto& [key, value] : map.metadata) std::cout << " " << key << "=" << value;
  std::cout << "\n";
  return absl::OkStatus();
}

// Loads the model and, unless `params_path` is empty, sets its parameters.
absl::StatusOr<Model*> LoadModel(const Flags& flags) {
  ASSIGN_OR_RETURN(Model * model, flags.session->LoadModel(flags.model));
  if (!flags.params.empty()) {
    ASSIGN_OR_RETURN(TensorMap params, ReadSafetensors(flags.params));
    absl::Status set = model->SetParameters(params);
    if (!set.ok()) return absl::Status(set.code(), absl::StrCat(flags.params, ": ", set.message()));
  }
  return model;
}

absl::StatusOr<const TensorMap*> ReadShard(const Flags& flags, const std::string& path) {
  ASSIGN_OR_RETURN(const TensorMap* data, flags.session->ReadTensors(path));
  absl::StatusOr<int64_t> n = CheckShard(*data);
  if (!n.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", n.status().message()));
  return data;
}

std::string InjectedFault() {
  const char* v = std::getenv("ARTEL_INJECT_FAULT");
  return v == nullptr ? "" : v;
}

// The testing aid's attack on an update (see the top of this file).
void AttackUpdate(TensorMap& update) {
  const std::string fault = InjectedFault();
  double k = 1;
  if (fault == "sign-flip") {
    k = -1;
  } else if (fault.rfind("scale:", 0) == 0) {
    if (!absl::SimpleAtod(fault.substr(6), &k)) return;
  } else if (fault != "noise") {
    return;
  }
  std::mt19937_64 rng(std::random_device{}());
  std::normal_distribution<float> noise(0.0f, 1.0f);
  for (auto& [name, t] : update.tensors) {
    if (IsBufferName(name) || t.dtype != DType::kF32) continue;
    float* v = t.mutable_f32();
    for (int64_t i = 0; i < t.numel(); ++i) {
      v[i] = fault == "noise" ? v[i] + noise(rng) : static_cast<float>(v[i] * k);
    }
  }
}

// The testing aid's label flip: a copy of `data` with labels C-1-y.
TensorMap FlipLabels(const TensorMap& data) {
  TensorMap out = data;
  Tensor& y = out.tensors.at("y");  // I64, checked by CheckShard
  int64_t* v = reinterpret_cast<int64_t*>(y.data.data());
  int64_t high = 0;
  for (int64_t i = 0; i < y.numel(); ++i) high = std::max(high, v[i]);
  for (int64_t i = 0; i < y.numel(); ++i) v[i] = high - v[i];
  return out;
}

// Compresses an update as --compress asks, with the session's residual
// when --error-feedback is given.
absl::StatusOr<TensorMap> Encode(TensorMap update, const Flags& flags, const std::string& what) {
  ASSIGN_OR_RETURN(Compression c, ParseCompression(flags.compress));
  if (c == Compression::kNone) return update;
  TensorMap* residual = nullptr;
  if (flags.error_feedback) {
    residual = &flags.session->Residual(flags.session->DigestOf(flags.model) + "/" + what);
  }
  return Compress(update, c, residual);
}

absl::Status Init(const Flags& flags) {
  ASSIGN_OR_RETURN(Model * model, flags.session->LoadModel(flags.model, /*fresh=*/true));
  return Write(model->Parameters(), flags, "params.safetensors");
}

absl::Status Grad(const Flags& flags) {
  ASSIGN_OR_RETURN(Model * model, LoadModel(flags));
  ASSIGN_OR_RETURN(const TensorMap* shard, ReadShard(flags, flags.data));
  TensorMap flipped;
  if (InjectedFault() == "label-flip") flipped = FlipLabels(*shard);
  const TensorMap& data = InjectedFault() == "label-flip" ? flipped : *shard;
  const int64_t n = data.tensors.at("x").shape[0];
  RowRange rows{0, n};
  if (flags.batch_index >= 0) {
    if (flags.batch_size < 1)
      return absl::InvalidArgumentError("--batch-index needs --batch-size B >= 1");
    ASSIGN_OR_RETURN(rows, BatchRows(n, flags.batch_size, flags.batch_index));
  }
  ASSIGN_OR_RETURN(TensorMap grad,
                   model->Gradient(data, rows, flags.micro_batch, flags.local.seed));
  AttackUpdate(grad);
  ASSIGN_OR_RETURN(grad, Encode(std::move(grad), flags, "grad"));
  return Write(grad, flags, "grad.safetensors");
}

absl::Status Local(const Flags& flags) {
  LocalOptions options = flags.local;
  options.batch_size = flags.batch_size;
  ASSIGN_OR_RETURN(options.optimizer, ParseOptimizer(flags.optimizer));
  ASSIGN_OR_RETURN(Model * model, LoadModel(flags));
  // Several shards train as one: a task of H * B samples then sees that many
  // distinct samples rather than passing over one small shard again.
  ASSIGN_OR_RETURN(const TensorMap* shard, ReadShard(flags, flags.local_data.front()));
  TensorMap joined;
  for (size_t i = 1; i < flags.local_data.size(); ++i) {
    if (i == 1) joined = *shard;  // the session may reuse *shard's storage
    ASSIGN_OR_RETURN(const TensorMap* next, ReadShard(flags, flags.local_data[i]));
    absl::StatusOr<TensorMap> both = ConcatShards({&joined, next});
    if (!both.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flags.local_data[i], ": ", both.status().message()));
    }
    joined = *std::move(both);
  }
  TensorMap flipped;
  if (InjectedFault() == "label-flip") {
    flipped = FlipLabels(flags.local_data.size() > 1 ? joined : *shard);
  }
  const TensorMap& data = InjectedFault() == "label-flip" ? flipped
                          : flags.local_data.size() > 1   ? joined
                                                          : *shard;
  TensorMap state_in, state_out;
  if (!flags.state.empty()) {
    ASSIGN_OR_RETURN(state_in, ReadSafetensors(flags.state));
  }
  absl::StatusOr<TensorMap> delta =
      model->Local(data, options, flags.state.empty() ? nullptr : &state_in, &state_out);
  if (!delta.ok() && !flags.state.empty() && absl::IsInvalidArgument(delta.status()) &&
      delta.status().message().find("optimizer state") != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flags.state, ": ", delta.status().message()));
  }
  if (!delta.ok()) return delta.status();
  AttackUpdate(*delta);
  ASSIGN_OR_RETURN(TensorMap encoded, Encode(*std::move(delta), flags, "local"));
  RETURN_IF_ERROR(Write(encoded, flags, "delta.safetensors"));
  return Write(state_out, flags, "state.safetensors");
}

// Sums the metrics of every --data shard, so that one process (one libtorch
// start-up) measures several shards; predictions follow the shards' order.
absl::Status Eval(const Flags& flags) {
  ASSIGN_OR_RETURN(Model * model, LoadModel(flags));
  double loss_sum = 0;
  int64_t correct = 0, samples = 0;
  std::vector<int64_t> predicted;
  for (const std::string& path : flags.eval_data) {
    ASSIGN_OR_RETURN(const TensorMap* data, ReadShard(flags, path));
    ASSIGN_OR_RETURN(TensorMap m, model->Evaluate(*data, flags.micro_batch, flags.predictions));
    const int64_t n = std::stoll(m.metadata.at("samples"));
    loss_sum += std::stod(m.metadata.at("loss")) * static_cast<double>(n);
    correct += std::stoll(m.metadata.at("correct"));
    samples += n;
    if (flags.predictions) {
      const Tensor& p = m.tensors.at("predictions");
      const auto* v = reinterpret_cast<const int64_t*>(p.data.data());
      predicted.insert(predicted.end(), v, v + p.numel());
    }
  }
  TensorMap metrics;
  if (flags.predictions) {
    metrics.tensors["predictions"] =
        Tensor::I64({static_cast<int64_t>(predicted.size())}, predicted);
  }
  char loss[32], accuracy[32];
  std::snprintf(loss, sizeof(loss), "%.17g", loss_sum / static_cast<double>(samples));
  std::snprintf(accuracy, sizeof(accuracy), "%.17g",
                static_cast<double>(correct) / static_cast<double>(samples));
  metrics.metadata = {{"loss", loss},
                      {"samples", std::to_string(samples)},
                      {"correct", std::to_string(correct)},
                      {"accuracy", accuracy}};
  return Write(metrics, flags, "metrics.safetensors");
}

absl::Status Export(const Flags& flags) {
  ASSIGN_OR_RETURN(Model * model, LoadModel(flags));
  fs::path path;
  if (fs::path(flags.out).extension() == ".pt") {
    path = flags.out;
    if (path.has_parent_path()) fs::create_directories(path.parent_path());
  } else {
    ASSIGN_OR_RETURN(fs::path dir, OutputDir(flags));
    path = dir / "trained.pt";
  }
  RETURN_IF_ERROR(model->Save(path));
  std::cout << path.string() << "\n";
  return absl::OkStatus();
}

int ExitCode(const absl::Status& status) {
  if (status.ok()) return 0;
  std::cerr << "artel-ml: " << status.message() << "\n";
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return 2;
    default:
      return 1;
  }
}

}  // namespace

int RunCommand(int argc, const char* const* argv, Session& session, const CommandOptions& o) {
  CLI::App app("artel-ml: gradients, local training, evaluation and export of TorchScript models");
  app.require_subcommand(1);
  Flags f;
  f.session = &session;
  auto model_options = [&](CLI::App* cmd, bool params, bool data) {
    cmd->add_option("--model", f.model, "TorchScript file (torch.jit.script(m).save)")->required();
    cmd->add_option("--out", f.out,
                    "output directory (default $ARTEL_OUTPUT_DIR); export: or a .pt file");
    cmd->add_option("--threads", f.threads, "libtorch threads")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    if (params) cmd->add_option("--params", f.params, "params safetensors")->required();
    if (data) {
      cmd->add_option("--data", f.data, "shard safetensors: x F32 [n, ...], y I64 [n]")->required();
    }
  };
  CLI::App* init = app.add_subcommand("init", "write the model's initial params.safetensors");
  model_options(init, false, false);
  CLI::App* grad = app.add_subcommand("grad", "write grad.safetensors: gradient of the mean loss");
  model_options(grad, true, true);
  grad->add_option("--batch-size", f.batch_size, "rows per batch");
  auto* index = grad->add_option("--batch-index", f.batch_index, "use rows [K*B, (K+1)*B)");
  grad->add_flag("--all", f.all, "use the whole shard (the default)")->excludes(index);
  grad->add_option("--micro-batch", f.micro_batch, "rows per forward pass (0: all)")
      ->capture_default_str();
  grad->add_option("--seed", f.local.seed, "seed of libtorch's generator (dropout)")
      ->capture_default_str();
  CLI::App* local = app.add_subcommand("local", "write delta.safetensors after H optimizer steps");
  model_options(local, true, false);
  local
      ->add_option("--data", f.local_data,
                   "shard safetensors: x F32 [n, ...], y I64 [n]; repeat to train on several "
                   "as one")
      ->required();
  for (CLI::App* cmd : {grad, local}) {
    cmd->add_option("--compress", f.compress,
                    "encoding of the update: none, fp16 or int8 (per-tensor scale)")
        ->capture_default_str();
    cmd->add_flag("--error-feedback", f.error_feedback,
                  "add what earlier encodings lost before encoding (in a warm executor it "
                  "carries over from task to task)");
  }
  local->add_option("--steps", f.local.steps, "optimizer steps H")->required();
  local->add_option("--batch-size", f.batch_size, "samples per step B")->required();
  local->add_option("--lr", f.local.lr, "learning rate")->required();
  local->add_option("--optimizer", f.optimizer, "sgd, momentum or adam")->capture_default_str();
  local->add_option("--momentum", f.local.momentum, "momentum factor (--optimizer momentum)")
      ->capture_default_str();
  local->add_option("--weight-decay", f.local.weight_decay, "L2 weight decay")
      ->capture_default_str();
  local->add_option("--seed", f.local.seed, "0: shard order; else a seeded permutation")
      ->capture_default_str();
  local->add_option("--start-batch", f.local.start_batch, "first batch of that order")
      ->capture_default_str();
  local->add_option("--state", f.state,
                    "optimizer state to start from (a state.safetensors written by local)");
  CLI::App* eval = app.add_subcommand("eval", "write metrics.safetensors: loss, correct, samples");
  model_options(eval, true, false);
  eval->add_option("--data", f.eval_data,
                   "shard safetensors: x F32 [n, ...], y I64 [n]; repeat to measure several")
      ->required();
  eval->add_flag("--predictions", f.predictions, "also write the predicted classes");
  eval->add_option("--micro-batch", f.micro_batch, "rows per forward pass (0: all)")
      ->capture_default_str();
  CLI::App* exp = app.add_subcommand("export", "write trained.pt: the model with these params");
  model_options(exp, true, false);
  CLI::App* serve = app.add_subcommand(
      "serve", "run as a warm executor: tasks arrive as JSON lines (docs/EXECUTORS.md)");
  if (!o.in_executor) {
    serve->add_option("--requests", f.requests, "requests FIFO (default $ARTEL_EXECUTOR_REQUESTS)");
    serve->add_option("--responses", f.responses,
                      "responses FIFO (default $ARTEL_EXECUTOR_RESPONSES)");
    serve->add_option("--threads", f.threads, "libtorch threads")->capture_default_str();
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (serve->parsed()) {
    if (o.in_executor) {
      std::cerr << "artel-ml: serve inside an executor is not allowed\n";
      return 2;
    }
    return Serve(f.requests, f.responses, f.threads);
  }
  if (!o.out_dir.empty() && f.out.empty()) f.out = o.out_dir;
  try {
    if (!o.in_executor) SetTorchThreads(f.threads);
    if (init->parsed()) return ExitCode(Init(f));
    if (grad->parsed()) return ExitCode(Grad(f));
    if (local->parsed()) return ExitCode(Local(f));
    if (eval->parsed()) return ExitCode(Eval(f));
    return ExitCode(Export(f));
  } catch (const std::exception& e) {
    std::cerr << "artel-ml: unexpected error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace artel::ml

int main(int argc, char** argv) {
  // Started by a worker as a warm executor: no arguments, the FIFOs named
  // in the environment.
  if (argc == 1 && std::getenv("ARTEL_EXECUTOR_REQUESTS") != nullptr) {
    return artel::ml::Serve("", "", 1);
  }
  artel::ml::Session session;
  return artel::ml::RunCommand(argc, argv, session, {});
}
