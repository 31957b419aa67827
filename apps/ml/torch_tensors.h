// Conversions between artel's safetensors tensors (ml::Tensor: raw
// little-endian bytes, dtype, shape) and libtorch tensors. Tensors travel
// between machines only as safetensors; this is the one place where they
// become torch tensors and back.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "common/status.h"
#include "ml/safetensors.h"

namespace artel::ml {

// Copies `tensor` into a new contiguous CPU torch tensor of the matching
// scalar type (F32 -> kFloat, I64 -> kLong, ...). Errors: InvalidArgument when
// the data size is not numel * dtype size or a dimension is negative.
absl::StatusOr<at::Tensor> ToTorch(const Tensor& tensor);

// Copies `tensor` (any device, layout or strides) into an ml::Tensor of the
// matching dtype. Errors: InvalidArgument for a scalar type safetensors does
// not hold here (complex, quantized, ...).
absl::StatusOr<Tensor> FromTorch(const at::Tensor& tensor);

// The safetensors dtype of a torch scalar type; nullopt for one safetensors
// does not hold here (complex, quantized, ...).
std::optional<DType> DTypeOfTorch(at::ScalarType type);

// FromTorch after a conversion to float32: parameters, gradients and deltas
// always travel as F32.
Tensor FromTorchF32(const at::Tensor& tensor);

}  // namespace artel::ml
