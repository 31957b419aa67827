#include "ml/optimizer.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace artel::ml {
namespace {

constexpr char kMomentPrefix[] = "m/";
constexpr char kSecondMomentPrefix[] = "v/";

bool IsKnownKind(const std::string& kind) {
  return kind == "sgd" || kind == "momentum" || kind == "nesterov" || kind == "adam";
}

absl::Status RequireAllF32(const TensorMap& map, std::string_view what) {
  for (const auto& [name, t] : map.tensors) {
    if (t.dtype != DType::kF32) {
      return absl::InvalidArgumentError(absl::StrCat(std::string(what), ": tensor '", name, "' is ",
                                                     std::string(DTypeName(t.dtype)),
                                                     "; the optimizer handles F32 only"));
    }
  }
  return absl::OkStatus();
}

absl::Status Prefixed(std::string_view prefix, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(std::string(prefix), s.message()));
}

// A copy of `params`' layout with every element zero.
TensorMap ZerosLike(const TensorMap& params) {
  TensorMap out;
  for (const auto& [name, p] : params.tensors) {
    Tensor t = p;
    std::fill(t.data.begin(), t.data.end(), '\0');  // IEEE 0.0f is all zero bits
    out.tensors.emplace(name, std::move(t));
  }
  return out;
}

}  // namespace

absl::Status ValidateOptimizerConfig(const OptimizerConfig& c) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("optimizer '", c.kind, "': ", what));
  };
  if (!IsKnownKind(c.kind)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown optimizer kind '", c.kind,
                                                   "'; use one of sgd, momentum, nesterov, adam"));
  }
  if (!(std::isfinite(c.lr) && c.lr > 0)) {
    return bad(absl::StrCat("lr is ", c.lr, "; it must be a finite number > 0"));
  }
  if (!(std::isfinite(c.weight_decay) && c.weight_decay >= 0)) {
    return bad(absl::StrCat("weight_decay is ", c.weight_decay, "; it must be >= 0"));
  }
  if ((c.kind == "momentum" || c.kind == "nesterov") && !(c.momentum > 0 && c.momentum < 1)) {
    return bad(absl::StrCat("momentum is ", c.momentum, "; it must be in (0, 1)"));
  }
  if (c.kind == "adam") {
    if (!(c.beta1 >= 0 && c.beta1 < 1) || !(c.beta2 >= 0 && c.beta2 < 1)) {
      return bad(absl::StrCat("betas are (", c.beta1, ", ", c.beta2, "); each must be in [0, 1)"));
    }
    if (!(std::isfinite(c.eps) && c.eps > 0)) {
      return bad(absl::StrCat("eps is ", c.eps, "; it must be > 0"));
    }
  }
  return absl::OkStatus();
}

Optimizer::Optimizer(OptimizerConfig config) : config_(std::move(config)) {
  absl::Status s = ValidateOptimizerConfig(config_);
  ARTEL_CHECK(s.ok(), std::string(s.message()));
}

absl::StatusOr<Optimizer> Optimizer::Create(OptimizerConfig config) {
  RETURN_IF_ERROR(ValidateOptimizerConfig(config));
  return Optimizer(std::move(config));
}

absl::Status Optimizer::CheckState(const TensorMap& params) const {
  if (config_.kind == "sgd") return absl::OkStatus();
  if (m_.tensors.empty()) {
    if (step_ > 0 && !params.tensors.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the optimizer has taken ", step_,
                       " steps but holds no state for these params; "
                       "restore its saved state with LoadState"));
    }
    return absl::OkStatus();
  }
  return Prefixed("optimizer state does not match params (was the model changed?): ",
                  CheckSameLayout(m_, params, "the optimizer state", "params"));
}

absl::Status Optimizer::Step(TensorMap& params, const TensorMap& grads) {
  RETURN_IF_ERROR(CheckSameLayout(params, grads, "params", "grads"));
  RETURN_IF_ERROR(RequireAllF32(params, "params"));
  RETURN_IF_ERROR(Prefixed("grads: ", CheckFinite(grads)));
  RETURN_IF_ERROR(CheckState(params));

  const OptimizerConfig& c = config_;
  const bool adam = c.kind == "adam";
  const bool uses_buffer = c.kind != "sgd";
  const bool first = m_.tensors.empty();
  if (adam && first) {
    m_ = ZerosLike(params);
    v_ = ZerosLike(params);
  } else if (uses_buffer && first) {
    m_ = ZerosLike(params);  // overwritten with g below: PyTorch's buf = clone(g)
  }
  const double t = static_cast<double>(step_ + 1);
  const double bc1 = 1 - std::pow(c.beta1, t);
  const double bc2_sqrt = std::sqrt(1 - std::pow(c.beta2, t));

  for (auto& [name, pt] : params.tensors) {
    float* p = pt.mutable_f32();
    const float* gr = grads.tensors.at(name).f32();
    float* m = uses_buffer ? m_.tensors.at(name).mutable_f32() : nullptr;
    float* v = adam ? v_.tensors.at(name).mutable_f32() : nullptr;
    for (int64_t i = 0; i < pt.numel(); ++i) {
      const double pd = p[i];
      const double g = static_cast<float>(gr[i] + c.weight_decay * pd);
      double update;
      if (adam) {
        m[i] = static_cast<float>(c.beta1 * m[i] + (1 - c.beta1) * g);
        v[i] = static_cast<float>(c.beta2 * v[i] + (1 - c.beta2) * g * g);
        const double denom = std::sqrt(static_cast<double>(v[i])) / bc2_sqrt + c.eps;
        update = c.lr / bc1 * m[i] / denom;
      } else if (uses_buffer) {
        m[i] = static_cast<float>(first ? g : c.momentum * m[i] + g);
        update = c.lr * (c.kind == "nesterov" ? g + c.momentum * m[i] : m[i]);
      } else {
        update = c.lr * g;
      }
      p[i] = static_cast<float>(pd - update);
    }
  }
  ++step_;
  return absl::OkStatus();
}

TensorMap Optimizer::State() const {
  TensorMap state;
  state.metadata["kind"] = config_.kind;
  state.metadata["step"] = absl::StrCat(step_);
  for (const auto& [name, t] : m_.tensors) state.tensors.emplace(kMomentPrefix + name, t);
  for (const auto& [name, t] : v_.tensors) state.tensors.emplace(kSecondMomentPrefix + name, t);
  return state;
}

absl::Status Optimizer::LoadState(const TensorMap& state) {
  auto bad = [](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("optimizer state: ", what));
  };
  auto kind = state.metadata.find("kind");
  if (kind == state.metadata.end() || kind->second != config_.kind) {
    return bad(absl::StrCat("it is for optimizer '",
                            kind == state.metadata.end() ? "(no kind)" : kind->second,
                            "' but this optimizer is '", config_.kind,
                            "'; load the state saved by the same optimizer kind"));
  }
  auto step_it = state.metadata.find("step");
  int64_t step = 0;
  if (step_it == state.metadata.end() || !absl::SimpleAtoi(step_it->second, &step) || step < 0) {
    return bad(
        "metadata 'step' is missing or not a count >= 0; the file is not an optimizer "
        "state written by Optimizer::State");
  }
  TensorMap m, v;
  for (const auto& [name, t] : state.tensors) {
    TensorMap* dst = nullptr;
    std::string param;
    if (config_.kind != "sgd" && absl::StartsWith(name, kMomentPrefix)) {
      dst = &m;
      param = name.substr(2);
    } else if (config_.kind == "adam" && absl::StartsWith(name, kSecondMomentPrefix)) {
      dst = &v;
      param = name.substr(2);
    } else {
      return bad(absl::StrCat("unexpected tensor '", name, "' for optimizer '", config_.kind,
                              "' (expected m/<param>", config_.kind == "adam" ? ", v/<param>" : "",
                              config_.kind == "sgd" ? ": sgd keeps no tensors)" : ")"));
    }
    dst->tensors.emplace(param, t);
  }
  if (step == 0 && !state.tensors.empty()) {
    return bad("it holds tensors but 'step' is 0; an optimizer gains state only by stepping");
  }
  RETURN_IF_ERROR(Prefixed("optimizer state: ", RequireAllF32(state, "state")));
  RETURN_IF_ERROR(Prefixed("optimizer state: ", CheckFinite(state)));
  if (config_.kind == "adam") {
    RETURN_IF_ERROR(Prefixed("optimizer state: m and v differ: ", CheckSameLayout(m, v, "m", "v")));
  }
  step_ = step;
  m_ = std::move(m);
  v_ = std::move(v);
  return absl::OkStatus();
}

}  // namespace artel::ml
