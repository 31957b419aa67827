#include "model.h"

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ml/buffers.h"
#include "torch_tensors.h"

namespace artel::ml {
namespace {

std::string Num(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

std::string ShapeText(at::IntArrayRef sizes) {
  return absl::StrCat("[", absl::StrJoin(sizes, ", "), "]");
}

// Runs `body`, turning exceptions that escape libtorch into a Status.
template <typename Body>
auto Guarded(std::string_view what, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(std::string(what), ": ", e.what()));
  }
}

struct ShardTensors {
  at::Tensor x;
  at::Tensor y;
  int64_t samples = 0;
};

absl::StatusOr<ShardTensors> ToShard(const TensorMap& data) {
  ShardTensors shard;
  ASSIGN_OR_RETURN(shard.samples, CheckShard(data));
  ASSIGN_OR_RETURN(shard.x, ToTorch(data.tensors.at("x")));
  ASSIGN_OR_RETURN(shard.y, ToTorch(data.tensors.at("y")));
  return shard;
}

// Loss and accuracy of one forward pass.
struct Pass {
  double loss_sum = 0;  // sum of the per-sample cross-entropies
  int64_t correct = 0;
  at::Tensor predicted;  // argmax classes, I64 [batch]
};

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// "F32", "I64", ... as safetensors names a tensor's dtype.
std::string DTypeText(const at::Tensor& t) {
  std::optional<DType> dtype = DTypeOfTorch(t.scalar_type());
  return dtype ? std::string(DTypeName(*dtype)) : std::string(c10::toString(t.scalar_type()));
}

}  // namespace

absl::StatusOr<Optimizer> ParseOptimizer(const std::string& name) {
  if (name == "sgd") return Optimizer::kSgd;
  if (name == "momentum") return Optimizer::kMomentum;
  if (name == "adam") return Optimizer::kAdam;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown optimizer \"", name, "\"; use sgd, momentum or adam"));
}

void SetTorchThreads(int threads) {
  at::set_num_threads(threads);
  at::set_num_interop_threads(threads);
}

struct Model::Impl {
  torch::jit::Module module;
  NamedTensors params;  // in module order

  // The module's buffers in module order, read afresh each time: a module's
  // forward may assign a new tensor to a buffer instead of updating it.
  NamedTensors Buffers() const {
    NamedTensors out;
    for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace_back(b.name, b.value);
    return out;
  }

  // Adds "buffers/<name>" with every buffer's current value, in its dtype.
  absl::Status AddBuffers(TensorMap& out) const {
    for (const auto& [name, b] : Buffers()) {
      absl::StatusOr<Tensor> t = FromTorch(b);
      if (!t.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("buffer \"", name, "\": ", t.status().message()));
      }
      out.tensors[std::string(kBufferPrefix) + name] = *std::move(t);
    }
    return absl::OkStatus();
  }

  at::ScalarType InputType() const {
    return params.empty() ? at::kFloat : params.front().second.scalar_type();
  }

  void ZeroGrad() {
    for (auto& [name, p] : params) p.mutable_grad() = at::Tensor();
  }

  static absl::Status ForwardFailed(const at::Tensor& x, std::string_view error) {
    return absl::InvalidArgumentError(absl::StrCat("the model's forward failed on x of shape ",
                                                   ShapeText(x.sizes()), ": ", std::string(error)));
  }

  absl::StatusOr<at::Tensor> Forward(const at::Tensor& x) {
    c10::IValue out;
    try {
      out = module.forward({x.to(InputType())});
    } catch (const c10::Error& e) {
      return ForwardFailed(x, e.what_without_backtrace());
    } catch (const std::exception& e) {  // torch::jit::JITException and others
      return ForwardFailed(x, e.what());
    }
    if (!out.isTensor()) {
      return absl::InvalidArgumentError(absl::StrCat("the model's forward returned a ",
                                                     out.tagKind(),
                                                     "; it must return logits [batch, classes]"));
    }
    at::Tensor logits = out.toTensor();
    if (logits.dim() != 2 || logits.size(0) != x.size(0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the model's forward returned shape ", ShapeText(logits.sizes()), " for x of shape ",
          ShapeText(x.sizes()), "; it must return logits [batch, classes]"));
    }
    return logits;
  }

  // Forward pass over (x, y); with `backward`, accumulates the gradient of
  // scale * (sum of losses) into the parameters' .grad.
  absl::StatusOr<Pass> Run(const at::Tensor& x, const at::Tensor& y, bool backward, double scale) {
    ASSIGN_OR_RETURN(at::Tensor logits, Forward(x));
    const int64_t classes = logits.size(1);
    const int64_t low = y.min().item<int64_t>();
    const int64_t high = y.max().item<int64_t>();
    if (low < 0 || high >= classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("labels \"y\" span [", low, ", ", high, "] but the model gives ", classes,
                       " classes; labels must lie in [0, ", classes - 1, "]"));
    }
    at::Tensor loss = at::cross_entropy_loss(logits, y, c10::nullopt, at::Reduction::Sum);
    if (backward) (loss * scale).backward();
    at::Tensor predicted = logits.argmax(1);
    return Pass{loss.item<double>(), predicted.eq(y).sum().item<int64_t>(), predicted};
  }

  TensorMap Snapshot(bool grads) const {
    TensorMap out;
    for (const auto& [name, p] : params) {
      const at::Tensor& t = grads ? p.grad() : p;
      out.tensors[name] = FromTorchF32(t.defined() ? t : at::zeros_like(p));
    }
    return out;
  }
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat("model file ", path.string(), " not found"));
  }
  auto impl = std::make_unique<Impl>();
  try {
    impl->module = torch::jit::load(path.string(), at::kCPU);
    for (const auto& p : impl->module.named_parameters(/*recurse=*/true)) {
      impl->params.emplace_back(p.name, p.value);
    }
    for (const auto& [name, b] : impl->Buffers()) {
      if (!DTypeOfTorch(b.scalar_type())) {
        return absl::InvalidArgumentError(absl::StrCat(
            path.string(), ": buffer \"", name, "\" is ", c10::toString(b.scalar_type()),
            ", which safetensors cannot carry; register it as a float or integer tensor"));
      }
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), " is not a TorchScript file: ", e.what_without_backtrace(),
                     " (write it with torch.jit.script(model).save)"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), " is not a TorchScript file: ", e.what()));
  }
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

TensorMap Model::Parameters() const {
  TensorMap out = impl_->Snapshot(/*grads=*/false);
  absl::Status buffers = impl_->AddBuffers(out);
  ARTEL_CHECK(buffers.ok(), std::string(buffers.message()));  // Load checked their dtypes
  return out;
}

absl::Status Model::SetParameters(const TensorMap& params) {
  std::vector<std::string> missing, unknown;
  for (const auto& [name, p] : impl_->params) {
    if (!params.tensors.contains(name)) missing.push_back(name);
  }
  for (const auto& [name, t] : params.tensors) {
    if (IsBufferName(name)) continue;
    bool known = false;
    for (const auto& [model_name, p] : impl_->params) known |= model_name == name;
    if (!known) unknown.push_back(name);
  }
  if (!missing.empty() || !unknown.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the params do not match the model's parameters: missing [",
                     absl::StrJoin(missing, ", "), "], unknown [", absl::StrJoin(unknown, ", "),
                     "]; use params written by `artel-ml init` for this model"));
  }
  for (const auto& [name, p] : impl_->params) {
    const Tensor& t = params.tensors.at(name);
    if (t.dtype != DType::kF32 ||
        !std::equal(t.shape.begin(), t.shape.end(), p.sizes().begin(), p.sizes().end())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "param \"", name, "\" is ", std::string(DTypeName(t.dtype)), " [",
          absl::StrJoin(t.shape, ", "), "] but the model's is F32 ", ShapeText(p.sizes()),
          "; use params written by `artel-ml init` for this model"));
    }
  }
  // Buffers: each given one must be the model's, in its dtype and shape.
  const NamedTensors buffers = impl_->Buffers();
  std::vector<std::pair<const Tensor*, at::Tensor>> buffer_updates;
  for (const auto& [key, t] : params.tensors) {
    if (!IsBufferName(key)) continue;
    const std::string name = key.substr(kBufferPrefix.size());
    auto it = std::find_if(buffers.begin(), buffers.end(),
                           [&](const auto& b) { return b.first == name; });
    if (it == buffers.end()) {
      std::vector<std::string> known;
      for (const auto& b : buffers) known.push_back(b.first);
      return absl::InvalidArgumentError(
          absl::StrCat("the params hold buffer \"", key, "\" but the model has no buffer \"", name,
                       "\" (its buffers: [", absl::StrJoin(known, ", "),
                       "]); use params written by `artel-ml init` for this model"));
    }
    const at::Tensor& b = it->second;
    if (DTypeText(b) != DTypeName(t.dtype) ||
        !std::equal(t.shape.begin(), t.shape.end(), b.sizes().begin(), b.sizes().end())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "buffer \"", name, "\" is ", std::string(DTypeName(t.dtype)), " [",
          absl::StrJoin(t.shape, ", "), "] but the model's is ", DTypeText(b), " ",
          ShapeText(b.sizes()), "; use params written by `artel-ml init` for this model"));
    }
    buffer_updates.emplace_back(&t, b);
  }
  return Guarded("setting params", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    for (auto& [name, p] : impl_->params) {
      ASSIGN_OR_RETURN(at::Tensor t, ToTorch(params.tensors.at(name)));
      p.copy_(t);
    }
    for (auto& [t, b] : buffer_updates) {
      ASSIGN_OR_RETURN(at::Tensor value, ToTorch(*t));
      b.copy_(value);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<TensorMap> Model::Gradient(const TensorMap& data, RowRange rows, int64_t micro_batch,
                                          uint64_t seed) {
  ASSIGN_OR_RETURN(ShardTensors shard, ToShard(data));
  if (rows.begin < 0 || rows.end > shard.samples || rows.size() < 1) {
    return absl::OutOfRangeError(absl::StrCat("rows [", rows.begin, ", ", rows.end,
                                              ") are not a non-empty part of the shard's ",
                                              shard.samples, " samples"));
  }
  return Guarded("computing the gradient", [&]() -> absl::StatusOr<TensorMap> {
    at::manual_seed(seed);
    impl_->module.train(true);
    impl_->ZeroGrad();
    const int64_t n = rows.size();
    const int64_t step = micro_batch > 0 ? micro_batch : n;
    Pass total;
    for (int64_t b = rows.begin; b < rows.end; b += step) {
      const int64_t e = std::min(b + step, rows.end);
      ASSIGN_OR_RETURN(Pass pass, impl_->Run(shard.x.slice(0, b, e), shard.y.slice(0, b, e),
                                             /*backward=*/true, 1.0 / static_cast<double>(n)));
      total.loss_sum += pass.loss_sum;
      total.correct += pass.correct;
    }
    TensorMap out = impl_->Snapshot(/*grads=*/true);
    RETURN_IF_ERROR(impl_->AddBuffers(out));
    out.metadata = {{"loss", Num(total.loss_sum / static_cast<double>(n))},
                    {"samples", std::to_string(n)},
                    {"correct", std::to_string(total.correct)}};
    return out;
  });
}

namespace {

absl::Status CheckLocalOptions(const LocalOptions& o) {
  if (o.steps < 1) return absl::InvalidArgumentError("--steps must be >= 1");
  if (o.batch_size < 1) return absl::InvalidArgumentError("--batch-size must be >= 1");
  if (o.start_batch < 0) return absl::InvalidArgumentError("--start-batch must be >= 0");
  if (!(o.lr > 0) || !std::isfinite(o.lr)) {
    return absl::InvalidArgumentError("--lr must be a positive number");
  }
  if (!(o.momentum >= 0 && o.momentum < 1) || !(o.beta1 >= 0 && o.beta1 < 1) ||
      !(o.beta2 >= 0 && o.beta2 < 1) || !(o.eps > 0) || !(o.weight_decay >= 0)) {
    return absl::InvalidArgumentError(
        "optimizer settings out of range: momentum, beta1 and beta2 must lie in [0, 1), "
        "eps must be > 0 and weight decay >= 0");
  }
  return absl::OkStatus();
}

// Optimizer state across the steps of one Local call (PyTorch's update rules).
class Stepper {
 public:
  Stepper(const LocalOptions& options, size_t params)
      : o_(options), first_(params), second_(params) {}

  // Takes the state `Save` wrote for parameters `params` (same order).
  absl::Status Load(const TensorMap& state, const NamedTensors& params) {
    auto step = state.metadata.find("step");
    int64_t steps = -1;
    if (step != state.metadata.end()) {
      auto [end, ec] =
          std::from_chars(step->second.data(), step->second.data() + step->second.size(), steps);
      if (ec != std::errc() || end != step->second.data() + step->second.size()) steps = -1;
    }
    if (steps < 0) {
      return absl::InvalidArgumentError(
          "optimizer state has no metadata \"step\" >= 0; use a state written by "
          "`artel-ml local`");
    }
    const bool has_first = o_.optimizer != Optimizer::kSgd;
    const bool has_second = o_.optimizer == Optimizer::kAdam;
    size_t expected = 0;
    for (size_t k = 0; k < params.size(); ++k) {
      const auto& [name, p] = params[k];
      for (auto [prefix, wanted, slot] :
           {std::tuple{"m/", has_first, &first_[k]}, std::tuple{"v/", has_second, &second_[k]}}) {
        if (!wanted) continue;
        ++expected;
        auto it = state.tensors.find(prefix + name);
        if (it == state.tensors.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("optimizer state lacks \"", prefix, name,
                           "\"; it was written for another model or optimizer"));
        }
        const Tensor& t = it->second;
        if (t.dtype != DType::kF32 ||
            !std::equal(t.shape.begin(), t.shape.end(), p.sizes().begin(), p.sizes().end())) {
          return absl::InvalidArgumentError(absl::StrCat(
              "optimizer state \"", prefix, name, "\" is ", std::string(DTypeName(t.dtype)), " [",
              absl::StrJoin(t.shape, ", "), "] but the parameter is F32 ", ShapeText(p.sizes())));
        }
        ASSIGN_OR_RETURN(at::Tensor value, ToTorch(t));
        *slot = value.clone();
      }
    }
    if (state.tensors.size() != expected) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer state has ", state.tensors.size(), " tensors but optimizer ",
                       OptimizerName(o_.optimizer), " of this model keeps ", expected));
    }
    step_ = steps;
    return absl::OkStatus();
  }

  // The state after the steps taken; see Model::Local.
  TensorMap Save(const NamedTensors& params) const {
    TensorMap out;
    for (size_t k = 0; k < params.size(); ++k) {
      const auto& [name, p] = params[k];
      if (o_.optimizer != Optimizer::kSgd) {
        out.tensors["m/" + name] =
            FromTorchF32(first_[k].defined() ? first_[k] : at::zeros_like(p));
      }
      if (o_.optimizer == Optimizer::kAdam) {
        out.tensors["v/" + name] =
            FromTorchF32(second_[k].defined() ? second_[k] : at::zeros_like(p));
      }
    }
    out.metadata["step"] = std::to_string(step_);
    return out;
  }

  void NextStep() { ++step_; }

  // REQUIRES: called under NoGradGuard, after NextStep(); `index` identifies
  // the parameter.
  void Step(size_t index, at::Tensor& p) {
    if (!p.grad().defined()) return;
    at::Tensor g = p.grad();
    if (o_.weight_decay > 0) g = g.add(p, o_.weight_decay);
    switch (o_.optimizer) {
      case Optimizer::kSgd:
        p.add_(g, -o_.lr);
        break;
      case Optimizer::kMomentum: {
        at::Tensor& buf = first_[index];
        buf = buf.defined() ? buf.mul_(o_.momentum).add_(g) : g.clone();
        p.add_(buf, -o_.lr);
        break;
      }
      case Optimizer::kAdam: {
        at::Tensor& m = first_[index];
        at::Tensor& v = second_[index];
        if (!m.defined()) m = at::zeros_like(p), v = at::zeros_like(p);
        m.mul_(o_.beta1).add_(g, 1 - o_.beta1);
        v.mul_(o_.beta2).addcmul_(g, g, 1 - o_.beta2);
        const double bias1 = 1 - std::pow(o_.beta1, static_cast<double>(step_));
        const double bias2 = 1 - std::pow(o_.beta2, static_cast<double>(step_));
        at::Tensor denom = (v.sqrt() / std::sqrt(bias2)).add_(o_.eps);
        p.addcdiv_(m, denom, -o_.lr / bias1);
        break;
      }
    }
  }

 private:
  static const char* OptimizerName(Optimizer o) {
    return o == Optimizer::kSgd ? "sgd" : o == Optimizer::kMomentum ? "momentum" : "adam";
  }

  const LocalOptions& o_;
  std::vector<at::Tensor> first_;   // momentum buffer or Adam's first moment
  std::vector<at::Tensor> second_;  // Adam's second moment
  int64_t step_ = 0;                // steps taken, counting those of a loaded state
};

}  // namespace

absl::StatusOr<TensorMap> Model::Local(const TensorMap& data, const LocalOptions& options,
                                       const TensorMap* state_in, TensorMap* state_out) {
  RETURN_IF_ERROR(CheckLocalOptions(options));
  ASSIGN_OR_RETURN(ShardTensors shard, ToShard(data));
  return Guarded("local training", [&]() -> absl::StatusOr<TensorMap> {
    at::manual_seed(options.seed);
    impl_->module.train(true);
    const std::vector<int64_t> order = SampleOrder(shard.samples, options.seed);
    std::vector<at::Tensor> before;
    for (const auto& [name, p] : impl_->params) before.push_back(p.detach().clone());
    Stepper stepper(options, impl_->params.size());
    if (state_in != nullptr) RETURN_IF_ERROR(stepper.Load(*state_in, impl_->params));
    Pass total;
    for (int64_t i = 0; i < options.steps; ++i) {
      std::vector<int64_t> rows = StepRows(order, options.batch_size, options.start_batch, i);
      at::Tensor index = at::tensor(rows, at::kLong);
      impl_->ZeroGrad();
      ASSIGN_OR_RETURN(
          Pass pass, impl_->Run(shard.x.index_select(0, index), shard.y.index_select(0, index),
                                /*backward=*/true, 1.0 / static_cast<double>(options.batch_size)));
      total.loss_sum += pass.loss_sum;
      total.correct += pass.correct;
      at::NoGradGuard no_grad;
      stepper.NextStep();
      for (size_t k = 0; k < impl_->params.size(); ++k) stepper.Step(k, impl_->params[k].second);
    }
    impl_->ZeroGrad();
    if (state_out != nullptr) *state_out = stepper.Save(impl_->params);
    TensorMap out;
    for (size_t k = 0; k < impl_->params.size(); ++k) {
      const auto& [name, p] = impl_->params[k];
      out.tensors[name] = FromTorchF32(p.detach() - before[k]);
    }
    RETURN_IF_ERROR(impl_->AddBuffers(out));
    const int64_t samples = options.steps * options.batch_size;
    out.metadata = {{"loss", Num(total.loss_sum / static_cast<double>(samples))},
                    {"samples", std::to_string(samples)},
                    {"correct", std::to_string(total.correct)},
                    {"steps", std::to_string(options.steps)}};
    return out;
  });
}

absl::StatusOr<TensorMap> Model::Evaluate(const TensorMap& data, int64_t micro_batch,
                                          bool predictions) {
  ASSIGN_OR_RETURN(ShardTensors shard, ToShard(data));
  return Guarded("evaluating", [&]() -> absl::StatusOr<TensorMap> {
    at::NoGradGuard no_grad;
    impl_->module.eval();
    const int64_t n = shard.samples;
    const int64_t step = micro_batch > 0 ? micro_batch : n;
    Pass total;
    std::vector<at::Tensor> classes;
    for (int64_t b = 0; b < n; b += step) {
      const int64_t e = std::min(b + step, n);
      ASSIGN_OR_RETURN(Pass pass, impl_->Run(shard.x.slice(0, b, e), shard.y.slice(0, b, e),
                                             /*backward=*/false, 1.0));
      total.loss_sum += pass.loss_sum;
      total.correct += pass.correct;
      if (predictions) classes.push_back(pass.predicted);
    }
    TensorMap out;
    if (predictions) out.tensors["predictions"] = *FromTorch(at::cat(classes).to(at::kLong));
    out.metadata = {{"loss", Num(total.loss_sum / static_cast<double>(n))},
                    {"samples", std::to_string(n)},
                    {"correct", std::to_string(total.correct)},
                    {"accuracy", Num(static_cast<double>(total.correct) / static_cast<double>(n))}};
    return out;
  });
}

absl::Status Model::Save(const std::filesystem::path& path) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  RETURN_IF_ERROR(Guarded("saving the model", [&]() -> absl::Status {
    impl_->module.eval();
    impl_->module.save(tmp.string());
    return absl::OkStatus();
  }));
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp.string(), " to ", path.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace artel::ml
