// A TorchScript model and the training computations artel-ml runs on it:
// gradients, local optimizer steps, evaluation and export (DESIGN.md §6).
// This header is free of libtorch so the command line stays a fast-compiling
// translation unit; model.cc is where libtorch lives.
//
// Data shards are as batches.h describes them. The model maps x [b, ...] to
// logits [b, classes]; the loss is the cross-entropy of the logits against y.
// Parameters, gradients and deltas are TensorMaps of F32 tensors named as
// TorchScript's named_parameters() names them ("conv1.weight"). The model's
// buffers (BatchNorm's running statistics and num_batches_tracked, any
// registered buffer) travel in the same maps as "buffers/<name>"
// (ml/buffers.h; named as named_buffers() names them), in their own dtype,
// always as values: the state after the computation, never a gradient or a
// delta. Gradients and local steps run in train mode (dropout on, batch
// statistics, buffers updated by each forward pass); evaluation and export
// in eval mode (dropout off, the running statistics).
//
// Not thread-safe; one Model per thread. Results are deterministic for a
// fixed libtorch build and thread count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "batches.h"
#include "common/status.h"
#include "ml/safetensors.h"

namespace artel::ml {

enum class Optimizer { kSgd, kMomentum, kAdam };

// Parses "sgd", "momentum" or "adam". Errors: InvalidArgument listing them.
absl::StatusOr<Optimizer> ParseOptimizer(const std::string& name);

struct LocalOptions {
  int64_t steps = 1;        // optimizer steps H, >= 1
  int64_t batch_size = 32;  // samples per step B, >= 1
  double lr = 0.01;         // learning rate, > 0
  Optimizer optimizer = Optimizer::kSgd;
  double momentum = 0.9;    // kMomentum only: PyTorch's SGD momentum
  double beta1 = 0.9;       // kAdam only
  double beta2 = 0.999;     // kAdam only
  double eps = 1e-8;        // kAdam only
  double weight_decay = 0;  // L2 added to the gradient (PyTorch's weight_decay)
  // Sample order: 0 keeps the shard's order; any other seed walks a
  // permutation drawn from std::mt19937_64(seed) (same on every platform).
  // The seed also seeds libtorch's generator (dropout).
  uint64_t seed = 0;
  // Step i uses positions [(start_batch + i) * B, ... + B) of that order,
  // wrapping around the shard's end.
  int64_t start_batch = 0;
};

class Model {
 public:
  // Loads a TorchScript file. Errors: NotFound when it does not exist;
  // InvalidArgument "<path> is not a TorchScript file: ..." otherwise, or when
  // a buffer has a dtype safetensors does not hold (complex, quantized).
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::filesystem::path& path);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // The model's parameters as F32 tensors plus its buffers ("buffers/...").
  TensorMap Parameters() const;

  // Replaces every parameter's values and the values of the buffers given
  // ("buffers/<name>"); buffers absent from `params` keep their values (params
  // stored by older versions hold none). Errors: InvalidArgument when the
  // parameter names differ from the model's (listing missing and unknown
  // ones), a parameter's shape differs or it is not F32, a buffer is unknown
  // to the model (listing the model's buffers), or a buffer's dtype or shape
  // differs from the model's.
  absl::Status SetParameters(const TensorMap& params);

  // Gradient of the mean cross-entropy over `rows` of `data`, computed in
  // train mode in micro-batches of `micro_batch` rows (0: all at once; the
  // result is the same up to float rounding when the model has no
  // batch-dependent layers: batch statistics are per micro-batch). libtorch's
  // generator (dropout) is seeded with `seed` first, so equal arguments give
  // equal results. Returns the gradients and "buffers/<name>": the buffers'
  // values after the forward passes, which the model keeps. Metadata: "loss"
  // (mean), "samples", "correct" (argmax == y). Errors: InvalidArgument for a
  // bad shard, rows outside it, or a forward pass that fails or does not
  // return [rows, classes] logits.
  absl::StatusOr<TensorMap> Gradient(const TensorMap& data, RowRange rows, int64_t micro_batch,
                                     uint64_t seed = 0);

  // Runs options.steps optimizer steps and returns the delta new - old of
  // every parameter plus "buffers/<name>", the buffers' values after the
  // steps; the model keeps the new values. Metadata: "loss" (mean
  // of the steps' batch losses, measured before each step), "samples"
  // (steps * batch_size), "correct", "steps".
  //
  // The optimizer starts from `state_in` when given (as a previous call's
  // `state_out` wrote it, or an average of several), else fresh. When
  // `state_out` is given it receives the final state: "m/<param>" (momentum
  // buffer or Adam's first moment), "v/<param>" (Adam's second moment) and
  // metadata "step" (steps taken so far, for Adam's bias correction); plain
  // SGD has no tensors. Two calls of H steps chained through the state equal
  // one call of 2H steps. Errors (besides Gradient's): InvalidArgument when
  // `state_in` does not match the parameters or the optimizer.
  absl::StatusOr<TensorMap> Local(const TensorMap& data, const LocalOptions& options,
                                  const TensorMap* state_in = nullptr,
                                  TensorMap* state_out = nullptr);

  // Eval mode, no gradients, micro-batches of `micro_batch` rows (0: all).
  // Returns metadata "loss" (mean), "correct", "samples", "accuracy"; with
  // `predictions`, also the tensor "predictions" I64 [n] (argmax classes).
  absl::StatusOr<TensorMap> Evaluate(const TensorMap& data, int64_t micro_batch, bool predictions);

  // Writes the model with its current parameters and buffers, in eval mode, as a
  // TorchScript file (via path.tmp and a rename) that torch.jit.load opens.
  absl::Status Save(const std::filesystem::path& path);

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Sets libtorch's intra-op and inter-op thread counts. Call once, first.
void SetTorchThreads(int threads);

}  // namespace artel::ml
