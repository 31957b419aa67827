#include "ml/buffers.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ml/aggregate.h"
#include "ml/compress.h"

namespace artel::ml {
namespace {

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

float Bf16ToFloat(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// Round to nearest, ties to even. REQUIRES: `value` is finite.
uint16_t FloatToBf16(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

template <typename T>
T Load(const Tensor& t, int64_t i) {
  T v;
  std::memcpy(&v, t.data.data() + i * sizeof(T), sizeof(T));
  return v;
}

template <typename T>
void Store(Tensor& t, int64_t i, T v) {
  std::memcpy(t.data.data() + i * sizeof(T), &v, sizeof(T));
}

bool IsFloat(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF64 || dtype == DType::kF16 ||
         dtype == DType::kBF16;
}

// Element i as a number. Integers up to 2^63 are exact in long double on the
// platforms artel builds for (x86-64's 80-bit and aarch64's 128-bit formats).
long double Element(const Tensor& t, int64_t i) {
  switch (t.dtype) {
    case DType::kF32:
      return Load<float>(t, i);
    case DType::kF64:
      return Load<double>(t, i);
    case DType::kF16:
      return HalfToFloat(Load<uint16_t>(t, i));
    case DType::kBF16:
      return Bf16ToFloat(Load<uint16_t>(t, i));
    case DType::kI64:
      return static_cast<long double>(Load<int64_t>(t, i));
    case DType::kI32:
      return Load<int32_t>(t, i);
    case DType::kI16:
      return Load<int16_t>(t, i);
    case DType::kI8:
      return Load<int8_t>(t, i);
    case DType::kU8:
      return Load<uint8_t>(t, i);
    case DType::kBool:
      return Load<uint8_t>(t, i) != 0 ? 1 : 0;
  }
  return 0;  // unreachable: the switch covers every DType
}

// Writes `v` as element i, rounded to t's dtype. REQUIRES: `v` is finite and
// lies within the dtype's range (a mean of values of that dtype does).
void SetElement(Tensor& t, int64_t i, long double v) {
  if (IsFloat(t.dtype)) {
    const double d = static_cast<double>(v);
    switch (t.dtype) {
      case DType::kF32:
        return Store<float>(t, i, static_cast<float>(d));
      case DType::kF64:
        return Store<double>(t, i, d);
      case DType::kF16:
        return Store<uint16_t>(t, i, FloatToHalf(static_cast<float>(d)));
      default:
        return Store<uint16_t>(t, i, FloatToBf16(static_cast<float>(d)));
    }
  }
  const int64_t n = static_cast<int64_t>(std::round(v));
  switch (t.dtype) {
    case DType::kI64:
      return Store<int64_t>(t, i, n);
    case DType::kI32:
      return Store<int32_t>(t, i, static_cast<int32_t>(n));
    case DType::kI16:
      return Store<int16_t>(t, i, static_cast<int16_t>(n));
    case DType::kI8:
      return Store<int8_t>(t, i, static_cast<int8_t>(n));
    default:  // kU8, kBool
      return Store<uint8_t>(t, i, static_cast<uint8_t>(n));
  }
}

absl::Status CheckFiniteBuffer(const std::string& name, const Tensor& t, size_t part) {
  if (!IsFloat(t.dtype)) return absl::OkStatus();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const long double v = Element(t, i);
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "part ", part, ": buffer '", name, "' holds a non-finite value (", static_cast<double>(v),
          ") at flat index ", i, "; the update is refused (the sender diverged or is faulty)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

TensorMap SplitBuffers(TensorMap& map) {
  TensorMap buffers;
  for (auto it = map.tensors.begin(); it != map.tensors.end();) {
    if (IsBufferName(it->first)) {
      buffers.tensors.insert(map.tensors.extract(it++));
    } else {
      ++it;
    }
  }
  return buffers;
}

absl::StatusOr<TensorMap> AverageBuffers(const std::vector<const TensorMap*>& parts,
                                         const std::vector<double>& weights) {
  if (parts.empty()) {
    return absl::InvalidArgumentError("no buffers to average: no parts were given");
  }
  RETURN_IF_ERROR(CheckWeights(parts.size(), weights));
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] == nullptr)
      return absl::InvalidArgumentError(absl::StrCat("part ", i, " is null"));
    if (i > 0) {
      RETURN_IF_ERROR(CheckSameLayout(*parts[0], *parts[i], "part 0", absl::StrCat("part ", i)));
    }
    for (const auto& [name, t] : parts[i]->tensors) RETURN_IF_ERROR(CheckFiniteBuffer(name, t, i));
  }
  double total = 0;
  for (double w : weights) total += w;
  TensorMap out;
  for (const auto& [name, first] : parts[0]->tensors) {
    Tensor avg = first;
    for (int64_t j = 0; j < avg.numel(); ++j) {
      const long double v0 = Element(first, j);
      bool same = true;
      long double sum = 0;
      for (size_t i = 0; i < parts.size(); ++i) {
        const long double v = Element(parts[i]->tensors.at(name), j);
        same &= v == v0;
        sum += static_cast<long double>(weights[i]) * v;
      }
      if (!same) SetElement(avg, j, sum / static_cast<long double>(total));
    }
    out.tensors.emplace(name, std::move(avg));
  }
  return out;
}

absl::Status MergeBuffers(TensorMap& params, const TensorMap& buffers) {
  for (const auto& [name, t] : buffers.tensors) {
    if (!IsBufferName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' is not a buffer: its name must start with \"",
                       Sv(kBufferPrefix), "\""));
    }
    auto it = params.tensors.find(name);
    if (it == params.tensors.end()) continue;
    if (it->second.dtype != t.dtype || it->second.shape != t.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "buffer '", name, "' is ", Sv(DTypeName(t.dtype)), " [", absl::StrJoin(t.shape, ","),
          "] but the params hold it as ", Sv(DTypeName(it->second.dtype)), " [",
          absl::StrJoin(it->second.shape, ","), "]"));
    }
  }
  for (const auto& [name, t] : buffers.tensors) params.tensors[name] = t;
  return absl::OkStatus();
}

}  // namespace artel::ml
