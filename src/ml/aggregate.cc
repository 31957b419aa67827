#include "ml/aggregate.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace artel::ml {
namespace {

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

absl::Status RequireF32(const TensorMap& map, std::string_view what) {
  for (const auto& [name, t] : map.tensors) {
    if (t.dtype != DType::kF32) {
      return absl::InvalidArgumentError(absl::StrCat(
          Sv(what), ": tensor '", name, "' is ", Sv(DTypeName(t.dtype)),
          "; only F32 tensors can be aggregated (convert it, or leave it out of the update)"));
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status CheckFiniteValues(const std::string& name, const T* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "' holds a non-finite value (", static_cast<double>(v[i]),
          ") at flat index ", i, "; the update is refused (the sender diverged or is faulty)"));
    }
  }
  return absl::OkStatus();
}

// Checks the parts all exist, are F32, share part 0's layout and are finite.
absl::Status ValidateParts(const std::vector<const TensorMap*>& parts) {
  if (parts.empty()) {
    return absl::InvalidArgumentError("nothing to aggregate: no parts were given");
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string label = absl::StrCat("part ", i);
    if (parts[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(label, " is null"));
    }
    if (i == 0) {
      RETURN_IF_ERROR(RequireF32(*parts[0], label));
    } else {
      RETURN_IF_ERROR(CheckSameLayout(*parts[0], *parts[i], "part 0", label));
    }
    absl::Status finite = CheckFinite(*parts[i]);
    if (!finite.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(label, ": ", finite.message()));
    }
  }
  return absl::OkStatus();
}

// Builds a map with part 0's layout whose element j of tensor `name` is
// reduce(values of element j across parts), values given as doubles.
template <typename Reduce>
TensorMap PerCoordinate(const std::vector<const TensorMap*>& parts, Reduce reduce) {
  TensorMap out;
  std::vector<double> values(parts.size());
  for (const auto& [name, first] : parts[0]->tensors) {
    std::vector<const float*> srcs;
    for (const TensorMap* p : parts) srcs.push_back(p->tensors.at(name).f32());
    Tensor t = first;
    float* dst = t.mutable_f32();
    const int64_t n = t.numel();
    for (int64_t j = 0; j < n; ++j) {
      for (size_t i = 0; i < srcs.size(); ++i) values[i] = srcs[i][j];
      dst[j] = static_cast<float>(reduce(values));
    }
    out.tensors.emplace(name, std::move(t));
  }
  return out;
}

}  // namespace

absl::Status CheckSameLayout(const TensorMap& a, const TensorMap& b, std::string_view a_name,
                             std::string_view b_name) {
  for (const auto& [name, ta] : a.tensors) {
    auto it = b.tensors.find(name);
    if (it == b.tensors.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' is in ", Sv(a_name), " but missing from ", Sv(b_name)));
    }
    const Tensor& tb = it->second;
    if (ta.dtype != tb.dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' is ", Sv(DTypeName(ta.dtype)), " in ", Sv(a_name),
                       " but ", Sv(DTypeName(tb.dtype)), " in ", Sv(b_name)));
    }
    if (ta.shape != tb.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' has shape ", ShapeString(ta.shape), " in ", Sv(a_name),
                       " but ", ShapeString(tb.shape), " in ", Sv(b_name)));
    }
  }
  for (const auto& [name, tb] : b.tensors) {
    if (!a.tensors.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' is in ", Sv(b_name), " but missing from ", Sv(a_name)));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckFinite(const TensorMap& map) {
  for (const auto& [name, t] : map.tensors) {
    switch (t.dtype) {
      case DType::kF32:
        RETURN_IF_ERROR(CheckFiniteValues(name, t.f32(), t.numel()));
        break;
      case DType::kF64:
        RETURN_IF_ERROR(
            CheckFiniteValues(name, reinterpret_cast<const double*>(t.data.data()), t.numel()));
        break;
      case DType::kF16:
      case DType::kBF16:
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", name, "' is ", Sv(DTypeName(t.dtype)),
                         "; finiteness checks support F32 and F64 only, send F32"));
      default:
        break;  // integers and bools are always finite
    }
  }
  return absl::OkStatus();
}

absl::Status CheckWeights(size_t parts, const std::vector<double>& weights) {
  if (weights.size() != parts) {
    return absl::InvalidArgumentError(absl::StrCat("got ", parts, " parts but ", weights.size(),
                                                   " weights; give one weight per part"));
  }
  double total = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!std::isfinite(weights[i]) || weights[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("weight of part ", i, " is ", weights[i],
                                                     "; weights must be finite and >= 0"));
    }
    total += weights[i];
  }
  if (total <= 0) {
    return absl::InvalidArgumentError("the weights sum to 0; at least one part needs weight > 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<TensorMap> WeightedAverage(const std::vector<const TensorMap*>& parts,
                                          const std::vector<double>& weights) {
  RETURN_IF_ERROR(ValidateParts(parts));
  RETURN_IF_ERROR(CheckWeights(parts.size(), weights));
  double total = 0;
  for (double w : weights) total += w;
  return PerCoordinate(parts, [&](const std::vector<double>& v) {
    double sum = 0;
    for (size_t i = 0; i < v.size(); ++i) sum += weights[i] * v[i];
    return sum / total;
  });
}

absl::StatusOr<TensorMap> CoordinateMedian(const std::vector<const TensorMap*>& parts) {
  RETURN_IF_ERROR(ValidateParts(parts));
  return PerCoordinate(parts, [](std::vector<double>& v) {
    const size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + mid, v.end());
    const double upper = v[mid];
    if (v.size() % 2 == 1) return upper;
    const double lower = *std::max_element(v.begin(), v.begin() + mid);
    return (lower + upper) / 2;
  });
}

absl::StatusOr<TensorMap> TrimmedMean(const std::vector<const TensorMap*>& parts,
                                      double trim_fraction) {
  if (!(trim_fraction >= 0 && trim_fraction < 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trim_fraction is ", trim_fraction, "; it must be in [0, 0.5) so some values remain"));
  }
  RETURN_IF_ERROR(ValidateParts(parts));
  const size_t k = static_cast<size_t>(std::floor(trim_fraction * parts.size()));
  return PerCoordinate(parts, [k](std::vector<double>& v) {
    std::sort(v.begin(), v.end());
    double sum = 0;
    for (size_t i = k; i < v.size() - k; ++i) sum += v[i];
    return sum / static_cast<double>(v.size() - 2 * k);
  });
}

namespace {

// All F32 values of `m`, tensors in name order, as one vector.
std::vector<double> Flatten(const TensorMap& m) {
  std::vector<double> out;
  for (const auto& [name, t] : m.tensors) {
    const float* v = t.f32();
    out.insert(out.end(), v, v + t.numel());
  }
  return out;
}

double Distance(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(sum);
}

double MedianOf(std::vector<double> v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  if (v.size() % 2 == 1) return v[mid];
  return (v[mid] + *std::max_element(v.begin(), v.begin() + mid)) / 2;
}

}  // namespace

absl::StatusOr<ClipResult> CenteredClip(const std::vector<const TensorMap*>& parts, double radius,
                                        int iterations) {
  if (!(radius >= 0) || !std::isfinite(radius) || iterations < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("centered clipping needs a radius >= 0 (0: "
                     "automatic) and iterations >= 1; got radius ",
                     radius, ", iterations ", iterations));
  }
  ASSIGN_OR_RETURN(TensorMap median, CoordinateMedian(parts));
  std::vector<std::vector<double>> xs;
  for (const TensorMap* p : parts) xs.push_back(Flatten(*p));
  std::vector<double> v = Flatten(median);
  ClipResult out;
  if (radius == 0) {
    std::vector<double> d;
    for (const auto& x : xs) d.push_back(Distance(x, v));
    radius = MedianOf(d);
  }
  out.radius = radius;
  const double n = static_cast<double>(xs.size());
  for (int it = 0; it < iterations && radius > 0; ++it) {
    std::vector<double> step(v.size(), 0.0);
    for (const auto& x : xs) {
      const double d = Distance(x, v);
      const double w = d <= radius ? 1.0 : radius / d;
      for (size_t i = 0; i < v.size(); ++i) step[i] += (x[i] - v[i]) * w;
    }
    for (size_t i = 0; i < v.size(); ++i) v[i] += step[i] / n;
  }
  for (const auto& x : xs) out.distances.push_back(Distance(x, v));
  out.center = median;  // same layout; overwrite its values
  size_t at = 0;
  for (auto& [name, t] : out.center.tensors) {
    float* dst = t.mutable_f32();
    for (int64_t i = 0; i < t.numel(); ++i) dst[i] = static_cast<float>(v[at++]);
  }
  return out;
}

double L2Norm(const TensorMap& map) {
  double sum = 0;
  for (const auto& [name, t] : map.tensors) {
    if (t.dtype != DType::kF32) continue;
    const float* v = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) sum += static_cast<double>(v[i]) * v[i];
  }
  return std::sqrt(sum);
}

absl::StatusOr<std::vector<double>> DistancesTo(const std::vector<const TensorMap*>& parts,
                                                const TensorMap& center) {
  std::vector<double> out;
  const std::vector<double> c = Flatten(center);
  for (const TensorMap* p : parts) {
    RETURN_IF_ERROR(CheckSameLayout(*p, center, "an update", "the aggregate"));
    out.push_back(Distance(Flatten(*p), c));
  }
  return out;
}

TensorMap Negate(const TensorMap& map) {
  TensorMap out;
  for (const auto& [name, t] : map.tensors) {
    ARTEL_CHECK(t.dtype == DType::kF32, "Negate: tensor '" + name + "' is not F32");
    Tensor n = t;
    float* v = n.mutable_f32();
    for (int64_t i = 0; i < n.numel(); ++i) v[i] = -v[i];
    out.tensors.emplace(name, std::move(n));
  }
  return out;
}

absl::Status AddInPlace(TensorMap& a, const TensorMap& b, double scale) {
  RETURN_IF_ERROR(CheckSameLayout(a, b, "the target", "the addend"));
  RETURN_IF_ERROR(RequireF32(b, "AddInPlace"));
  for (auto& [name, ta] : a.tensors) {
    float* dst = ta.mutable_f32();
    const float* src = b.tensors.at(name).f32();
    for (int64_t i = 0; i < ta.numel(); ++i) {
      dst[i] = static_cast<float>(static_cast<double>(dst[i]) + scale * src[i]);
    }
  }
  return absl::OkStatus();
}

}  // namespace artel::ml
