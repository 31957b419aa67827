#include "ml/compress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace artel::ml {
namespace {

constexpr char kScalePrefix[] = "int8_scale/";
constexpr std::string_view kBufferPrefix = "buffers/";
constexpr float kHalfMax = 65504.0f;

bool Encoded(const std::string& name, const Tensor& t) {
  return t.dtype == DType::kF32 && name.compare(0, kBufferPrefix.size(), kBufferPrefix) != 0;
}

std::string Digits(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

// Values of `t` plus the matching residual tensor, if any.
std::vector<float> WithResidual(const std::string& name, const Tensor& t,
                                const TensorMap* residual) {
  std::vector<float> v(t.f32(), t.f32() + t.numel());
  if (residual != nullptr) {
    auto it = residual->tensors.find(name);
    if (it != residual->tensors.end()) {
      const float* r = it->second.f32();
      for (size_t i = 0; i < v.size(); ++i) v[i] += r[i];
    }
  }
  return v;
}

bool SameLayout(const TensorMap& update, const TensorMap& residual) {
  size_t encoded = 0;
  for (const auto& [name, t] : update.tensors) {
    if (!Encoded(name, t)) continue;
    ++encoded;
    auto it = residual.tensors.find(name);
    if (it == residual.tensors.end() || it->second.shape != t.shape ||
        it->second.dtype != DType::kF32) {
      return false;
    }
  }
  return encoded == residual.tensors.size();
}

}  // namespace

absl::StatusOr<Compression> ParseCompression(const std::string& name) {
  if (name == "none" || name.empty()) return Compression::kNone;
  if (name == "fp16") return Compression::kFp16;
  if (name == "int8") return Compression::kInt8;
  return absl::InvalidArgumentError("unknown compression \"" + name + "\"; use none, fp16 or int8");
}

const char* CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "none";
    case Compression::kFp16:
      return "fp16";
    case Compression::kInt8:
      return "int8";
  }
  return "none";
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mant = x & 0x7fffffu;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xffu);
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant != 0 ? 0x200u : 0u));
  const int32_t e = exp - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {  // a half subnormal, or zero
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mant >> shift;
    const uint32_t rest = mant & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent
  return static_cast<uint16_t>(half);
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      x = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, sizeof(f));
  return f;
}

TensorMap Compress(const TensorMap& update, Compression c, TensorMap* residual) {
  if (c == Compression::kNone) return update;
  if (residual != nullptr && !residual->tensors.empty() && !SameLayout(update, *residual)) {
    residual->tensors.clear();
  }
  TensorMap out;
  out.metadata = update.metadata;
  TensorMap lost;
  for (const auto& [name, t] : update.tensors) {
    if (!Encoded(name, t)) {
      out.tensors[name] = t;
      continue;
    }
    const std::vector<float> v = WithResidual(name, t, residual);
    const size_t n = v.size();
    std::vector<float> sent(n);
    Tensor enc;
    enc.shape = t.shape;
    if (c == Compression::kFp16) {
      enc.dtype = DType::kF16;
      enc.data.resize(n * 2);
      auto* h = reinterpret_cast<uint16_t*>(enc.data.data());
      for (size_t i = 0; i < n; ++i) {
        const float x = std::isfinite(v[i]) ? std::clamp(v[i], -kHalfMax, kHalfMax) : v[i];
        h[i] = FloatToHalf(x);
        sent[i] = HalfToFloat(h[i]);
      }
    } else {
      float max_abs = 0;
      for (float x : v) max_abs = std::max(max_abs, std::fabs(x));
      const float scale = max_abs / 127.0f;
      enc.dtype = DType::kI8;
      enc.data.resize(n);
      auto* q = reinterpret_cast<int8_t*>(enc.data.data());
      for (size_t i = 0; i < n; ++i) {
        const float r = scale > 0 ? std::nearbyint(v[i] / scale) : 0.0f;
        q[i] = static_cast<int8_t>(std::clamp(r, -127.0f, 127.0f));
        sent[i] = static_cast<float>(q[i]) * scale;
      }
      out.metadata[kScalePrefix + name] = Digits(scale);
    }
    if (residual != nullptr) {
      Tensor& l = lost.tensors[name];
      l.dtype = DType::kF32;
      l.shape = t.shape;
      l.data.resize(n * sizeof(float));
      float* lv = l.mutable_f32();
      for (size_t i = 0; i < n; ++i) lv[i] = v[i] - sent[i];
    }
    out.tensors[name] = std::move(enc);
  }
  if (residual != nullptr) residual->tensors = std::move(lost.tensors);
  return out;
}

absl::StatusOr<TensorMap> Decompress(TensorMap update) {
  for (auto it = update.metadata.begin(); it != update.metadata.end();) {
    if (it->first.rfind(kScalePrefix, 0) != 0) {
      ++it;
      continue;
    }
    const std::string name = it->first.substr(sizeof(kScalePrefix) - 1);
    auto t = update.tensors.find(name);
    if (t == update.tensors.end() || t->second.dtype != DType::kI8) {
      return absl::InvalidArgumentError("int8 scale for \"" + name +
                                        "\" has no I8 tensor of that name");
    }
    double scale = -1;
    try {
      scale = std::stod(it->second);
    } catch (const std::exception&) {
    }
    if (!std::isfinite(scale) || scale < 0) {
      return absl::InvalidArgumentError("int8 scale of \"" + name + "\" is \"" + it->second +
                                        "\"; it must be a finite number >= 0");
    }
    Tensor& q = t->second;
    Tensor f;
    f.dtype = DType::kF32;
    f.shape = q.shape;
    f.data.resize(q.data.size() * sizeof(float));
    const auto* qv = reinterpret_cast<const int8_t*>(q.data.data());
    float* fv = f.mutable_f32();
    const float s = static_cast<float>(scale);
    for (size_t i = 0; i < q.data.size(); ++i) fv[i] = static_cast<float>(qv[i]) * s;
    q = std::move(f);
    it = update.metadata.erase(it);
  }
  for (auto& [name, t] : update.tensors) {
    if (t.dtype != DType::kF16 || !Encoded(name, Tensor{DType::kF32, {}, {}})) continue;
    Tensor f;
    f.dtype = DType::kF32;
    f.shape = t.shape;
    const size_t n = t.data.size() / 2;
    f.data.resize(n * sizeof(float));
    const auto* h = reinterpret_cast<const uint16_t*>(t.data.data());
    float* fv = f.mutable_f32();
    for (size_t i = 0; i < n; ++i) fv[i] = HalfToFloat(h[i]);
    t = std::move(f);
  }
  return update;
}

}  // namespace artel::ml
