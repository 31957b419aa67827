// The parameter server's optimizer: PyTorch's SGD / SGD(momentum) /
// SGD(nesterov=True) / Adam, in plain C++ over F32 TensorMaps (no libtorch),
// with state that round-trips through safetensors so a restarted
// coordinator resumes exactly where it stopped.
//
// Formulas (as torch.optim defines them; g = grad + weight_decay * param):
//   sgd:      p -= lr * g
//   momentum: buf = g on the first step, else buf = momentum * buf + g;
//             p -= lr * buf
//   nesterov: buf as momentum; p -= lr * (g + momentum * buf)
//   adam:     t += 1; m = beta1 * m + (1 - beta1) * g;
//             v = beta2 * v + (1 - beta2) * g * g;
//             p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// (L2 weight decay added to the gradient, i.e. Adam, not AdamW.) Each element
// is computed in double and rounded to float, so results agree with PyTorch's
// float32 arithmetic to about 1e-7 relative, and are bitwise deterministic.
//
// DiLoCo / local SGD (mode `local`): workers run H inner steps from the
// round's params and send their new params (or their delta new - old). The
// coordinator averages them (WeightedAverage, or a robust aggregation, after
// CheckFinite on each update) and turns the average into a pseudo-gradient
// old - new, then applies an outer optimizer, typically
// {kind = "nesterov", lr = 0.7, momentum = 0.9}:
//   TensorMap pseudo = params;                        // old
//   RETURN_IF_ERROR(AddInPlace(pseudo, avg_new, -1));  // old - new
//   // or, from averaged deltas (new - old): pseudo = Negate(avg_delta);
//   RETURN_IF_ERROR(outer.Step(params, pseudo));
// With sgd and lr = 1 this is plain parameter averaging.
//
// Thread safety: not thread-safe; the owner serializes calls.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "ml/aggregate.h"
#include "ml/safetensors.h"

namespace artel::ml {

struct OptimizerConfig {
  // "sgd" | "momentum" | "nesterov" | "adam". No default: must be set.
  std::string kind;
  // Learning rate; > 0. Default 0.01.
  double lr = 0.01;
  // Momentum factor for "momentum" / "nesterov"; in (0, 1). Default 0.9.
  double momentum = 0.9;
  // Adam's moment decay rates, each in [0, 1). Defaults 0.9, 0.999.
  double beta1 = 0.9, beta2 = 0.999;
  // Adam's denominator term; > 0. Default 1e-8.
  double eps = 1e-8;
  // L2 penalty added to the gradient; >= 0. Default 0 (none).
  double weight_decay = 0;
};

// OK when `config` is usable; InvalidArgument saying which field is wrong
// and what values are allowed otherwise (unknown kind, lr <= 0, ...).
absl::Status ValidateOptimizerConfig(const OptimizerConfig& config);

class Optimizer {
 public:
  // REQUIRES: ValidateOptimizerConfig(config).ok() (checked; a violation
  // stops the process). Use Create for configs that come from users.
  explicit Optimizer(OptimizerConfig config);
  static absl::StatusOr<Optimizer> Create(OptimizerConfig config);

  // Applies one step: params -= update(grads), per the formulas above.
  // Errors (InvalidArgument / FailedPrecondition), leaving params and state
  // untouched: grads whose layout differs from params, non-F32 tensors,
  // non-finite grads, state (from earlier steps or LoadState) whose layout
  // differs from params.
  absl::Status Step(TensorMap& params, const TensorMap& grads);

  // The state needed to resume: "m/<param>" (momentum buffer, or Adam's
  // first moment) and "v/<param>" (Adam's second moment) as F32 tensors;
  // metadata "kind" and "step" (decimal count of steps taken). Save it with
  // WriteSafetensors.
  TensorMap State() const;

  // Replaces this optimizer's state with `state` (as State() wrote it).
  // InvalidArgument, leaving the state untouched, when the kind differs from
  // this optimizer's, "step" is missing or not a count >= 0, a tensor has an
  // unexpected name or is not F32 or not finite, or Adam's m and v differ in
  // layout. Their layout against params is checked by the next Step.
  absl::Status LoadState(const TensorMap& state);

  // Number of Step calls that succeeded, including those before LoadState.
  int64_t steps() const { return step_; }
  const OptimizerConfig& config() const { return config_; }

 private:
  absl::Status CheckState(const TensorMap& params) const;

  OptimizerConfig config_;
  int64_t step_ = 0;
  TensorMap m_;  // momentum buffer or Adam's first moment, by param name
  TensorMap v_;  // Adam's second moment
};

}  // namespace artel::ml
