#include "coordinator/validator.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ml/compress.h"
#include "ml/safetensors.h"

namespace artel {
namespace {

std::map<std::string, std::string> ComparedOutputs(const v1::ReplicaInfo& r, bool skip_stdout) {
  std::map<std::string, std::string> out;
  for (const auto& f : r.outputs()) {
    if (f.name() == "stderr" || (skip_stdout && f.name() == "stdout")) continue;
    out[f.name()] = f.digest();
  }
  return out;
}

bool Close(double a, double b, double rtol, double atol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (a == b) return true;  // also equal infinities
  return std::abs(a - b) <= atol + rtol * std::max(std::abs(a), std::abs(b));
}

template <typename T>
bool CloseValues(const ml::Tensor& a, const ml::Tensor& b, double rtol, double atol) {
  const int64_t n = a.numel();
  for (int64_t i = 0; i < n; ++i) {
    T x, y;
    std::memcpy(&x, a.data.data() + i * sizeof(T), sizeof(T));
    std::memcpy(&y, b.data.data() + i * sizeof(T), sizeof(T));
    if (!Close(x, y, rtol, atol)) return false;
  }
  return true;
}

std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

}  // namespace

std::pair<uint64_t, uint64_t> VerdictKey(uint64_t a, uint64_t b) {
  return {std::min(a, b), std::max(a, b)};
}

std::optional<std::pair<std::string, std::string>> ParseAppValidator(const std::string& name) {
  absl::string_view rest = name;
  if (!absl::ConsumePrefix(&rest, "app:") || rest.empty()) return std::nullopt;
  const size_t at = rest.find('@');
  if (at == absl::string_view::npos) return std::make_pair(std::string(rest), std::string());
  return std::make_pair(std::string(rest.substr(0, at)), std::string(rest.substr(at + 1)));
}

bool AppVerdictValidator::Equivalent(const v1::ReplicaInfo& a, const v1::ReplicaInfo& b) const {
  if (ComparedOutputs(a, true) == ComparedOutputs(b, true)) return true;
  auto it = verdicts_.find(VerdictKey(a.id(), b.id()));
  return it != verdicts_.end() && it->second;
}

bool AppVerdictValidator::Ready(const v1::ReplicaInfo& a, const v1::ReplicaInfo& b) const {
  return ComparedOutputs(a, true) == ComparedOutputs(b, true) ||
         verdicts_.count(VerdictKey(a.id(), b.id())) > 0;
}

bool ExactValidator::Equivalent(const v1::ReplicaInfo& a, const v1::ReplicaInfo& b) const {
  return ComparedOutputs(a, false) == ComparedOutputs(b, false);
}

std::string ToleranceValidator::name() const {
  return "tolerance:rtol=" + Number(rtol_) + ",atol=" + Number(atol_);
}

bool ToleranceValidator::Equivalent(const v1::ReplicaInfo& a, const v1::ReplicaInfo& b) const {
  const auto outs_a = ComparedOutputs(a, true);
  const auto outs_b = ComparedOutputs(b, true);
  if (outs_a.size() != outs_b.size()) return false;
  for (const auto& [name, digest] : outs_a) {
    auto it = outs_b.find(name);
    if (it == outs_b.end()) return false;
    if (it->second == digest) continue;
    if (!absl::EndsWith(name, ".safetensors") || !SameSafetensors(digest, it->second)) {
      return false;
    }
  }
  return true;
}

bool ToleranceValidator::SameSafetensors(const std::string& digest_a,
                                         const std::string& digest_b) const {
  absl::StatusOr<ml::TensorMap> a = ml::ReadSafetensors(blobs_.PathOf(digest_a));
  absl::StatusOr<ml::TensorMap> b = ml::ReadSafetensors(blobs_.PathOf(digest_b));
  if (!a.ok() || !b.ok()) return false;
  // Compressed updates (ml/compress.h) are compared decoded: two int8
  // encodings of nearly equal values may differ by one step of the scale.
  std::map<std::string, double> quantum;
  for (const ml::TensorMap* m : {&*a, &*b}) {
    for (const auto& [key, value] : m->metadata) {
      double scale;
      if (absl::StartsWith(key, "int8_scale/") && absl::SimpleAtod(value, &scale)) {
        double& q = quantum[key.substr(11)];
        q = std::max(q, scale);
      }
    }
  }
  a = ml::Decompress(*std::move(a));
  b = ml::Decompress(*std::move(b));
  if (!a.ok() || !b.ok()) return false;
  if (a->tensors.size() != b->tensors.size() || a->metadata.size() != b->metadata.size()) {
    return false;
  }
  for (const auto& [key, value] : a->metadata) {
    auto it = b->metadata.find(key);
    if (it == b->metadata.end()) return false;
    if (it->second == value) continue;
    double x, y;
    if (!absl::SimpleAtod(value, &x) || !absl::SimpleAtod(it->second, &y) ||
        !Close(x, y, rtol_, atol_)) {
      return false;
    }
  }
  for (const auto& [name, ta] : a->tensors) {
    auto it = b->tensors.find(name);
    if (it == b->tensors.end()) return false;
    const ml::Tensor& tb = it->second;
    if (ta.dtype != tb.dtype || ta.shape != tb.shape || ta.data.size() != tb.data.size()) {
      return false;
    }
    switch (ta.dtype) {
      case ml::DType::kF32: {
        auto q = quantum.find(name);
        const double atol = atol_ + (q == quantum.end() ? 0.0 : q->second * 1.0001);
        if (!CloseValues<float>(ta, tb, rtol_, atol)) return false;
        break;
      }
      case ml::DType::kF64:
        if (!CloseValues<double>(ta, tb, rtol_, atol_)) return false;
        break;
      default:  // integers, bool, and half types compared bit for bit
        if (ta.data != tb.data) return false;
    }
  }
  return true;
}

absl::StatusOr<std::unique_ptr<Validator>> MakeValidator(const std::string& name,
                                                         const BlobStore& blobs,
                                                         const Verdicts* verdicts) {
  if (name.empty() || name == "exact") return std::make_unique<ExactValidator>();
  if (ParseAppValidator(name).has_value()) {
    if (verdicts == nullptr) {
      return absl::FailedPreconditionError("validator '" + name +
                                           "' runs an app; only a coordinator can run it");
    }
    return std::make_unique<AppVerdictValidator>(name, *verdicts);
  }
  absl::string_view rest = name;
  if (rest != "tolerance" && !absl::ConsumePrefix(&rest, "tolerance:")) {
    return absl::InvalidArgumentError("unknown validator '" + name +
                                      "'; known validators: exact, tolerance, "
                                      "tolerance:rtol=R,atol=A, app:NAME[@VERSION]");
  }
  double rtol = ToleranceValidator::kDefaultRtol, atol = ToleranceValidator::kDefaultAtol;
  if (rest != "tolerance") {
    for (absl::string_view part : absl::StrSplit(rest, ',')) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(part, '=');
      double v;
      const bool number = absl::SimpleAtod(kv.second, &v) && std::isfinite(v) && v >= 0;
      if ((kv.first != "rtol" && kv.first != "atol") || !number) {
        return absl::InvalidArgumentError(
            "validator '" + name + "': '" + std::string(part) +
            "' is not rtol=R or atol=A with a number >= 0; e.g. tolerance:rtol=1e-4,atol=1e-6");
      }
      (kv.first == "rtol" ? rtol : atol) = v;
    }
  }
  return std::make_unique<ToleranceValidator>(blobs, rtol, atol);
}

}  // namespace artel
