// A small, strict reader and writer of the safetensors format: the only way
// tensors travel in artel (never pickles).
//
// Format: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//  "__metadata__": {"k": "v"}}, then the data section. Offsets are relative
// to the data section. Tensor data is little-endian, row-major.
//
// Strict: every offset inside the data section, sizes equal to
// numel * dtype size, tensors contiguous without gaps or overlap and
// covering the whole data section, no duplicate names, known dtypes only,
// header below 100 MiB. Anything else is an InvalidArgument that says what
// is wrong with which tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace artel::ml {

enum class DType { kF32, kF64, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// "F32", "I64", ... as in the format.
std::string_view DTypeName(DType dtype);
size_t DTypeSize(DType dtype);

// An owned tensor: raw little-endian bytes plus type and shape.
struct Tensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::string data;  // numel * DTypeSize(dtype) bytes

  int64_t numel() const;
  // Typed views. REQUIRES: dtype matches (kF32 / kI64).
  const float* f32() const { return reinterpret_cast<const float*>(data.data()); }
  float* mutable_f32() { return reinterpret_cast<float*>(data.data()); }
  static Tensor F32(std::vector<int64_t> shape, const std::vector<float>& values);
  static Tensor I64(std::vector<int64_t> shape, const std::vector<int64_t>& values);
};

// Named tensors in a deterministic (sorted) order, plus string metadata.
struct TensorMap {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Parses `bytes` (a whole safetensors file).
absl::StatusOr<TensorMap> ParseSafetensors(std::string_view bytes);
absl::StatusOr<TensorMap> ReadSafetensors(const std::filesystem::path& path);

// Serializes deterministically (compact JSON, fixed tensor order).
// Layout is the reference implementation's (huggingface/safetensors), so the
// bytes match it exactly for at most one metadata key: "__metadata__" first
// (sorted keys, omitted when empty), then tensors ordered by descending dtype
// alignment (I64, F64, F32, I32, BF16, F16, I16, I8, U8, BOOL) and, within a
// dtype, by name; the header is padded with spaces to a multiple of 8 bytes.
// Names and metadata should be valid UTF-8 (invalid bytes become U+FFFD).
// REQUIRES: every tensor's data size equals numel * DTypeSize, and no tensor
// is named "__metadata__" (checked; a violation stops the process).
std::string SerializeSafetensors(const TensorMap& map);
// Writes SerializeSafetensors(map) to `path` via `path`.tmp and a rename, so
// readers never see a partial file.
absl::Status WriteSafetensors(const TensorMap& map, const std::filesystem::path& path);

}  // namespace artel::ml
