#include "torch_tensors.h"

#include <ATen/ops/empty.h>

#include <cstring>
#include <optional>
#include <string>

namespace artel::ml {
namespace {

at::ScalarType ScalarTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return at::kFloat;
    case DType::kF64:
      return at::kDouble;
    case DType::kF16:
      return at::kHalf;
    case DType::kBF16:
      return at::kBFloat16;
    case DType::kI64:
      return at::kLong;
    case DType::kI32:
      return at::kInt;
    case DType::kI16:
      return at::kShort;
    case DType::kI8:
      return at::kChar;
    case DType::kU8:
      return at::kByte;
    case DType::kBool:
      return at::kBool;
  }
  return at::kFloat;  // unreachable: the switch covers every DType
}

}  // namespace

std::optional<DType> DTypeOfTorch(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return DType::kF32;
    case at::kDouble:
      return DType::kF64;
    case at::kHalf:
      return DType::kF16;
    case at::kBFloat16:
      return DType::kBF16;
    case at::kLong:
      return DType::kI64;
    case at::kInt:
      return DType::kI32;
    case at::kShort:
      return DType::kI16;
    case at::kChar:
      return DType::kI8;
    case at::kByte:
      return DType::kU8;
    case at::kBool:
      return DType::kBool;
    default:
      return std::nullopt;
  }
}

namespace {

Tensor CopyOut(const at::Tensor& tensor, DType dtype) {
  at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
  Tensor out;
  out.dtype = dtype;
  out.shape.assign(cpu.sizes().begin(), cpu.sizes().end());
  out.data.resize(static_cast<size_t>(cpu.numel()) * DTypeSize(dtype));
  if (!out.data.empty()) std::memcpy(out.data.data(), cpu.data_ptr(), out.data.size());
  return out;
}

}  // namespace

absl::StatusOr<at::Tensor> ToTorch(const Tensor& tensor) {
  for (int64_t d : tensor.shape) {
    if (d < 0) return absl::InvalidArgumentError("tensor has a negative dimension");
  }
  const size_t expected = static_cast<size_t>(tensor.numel()) * DTypeSize(tensor.dtype);
  if (tensor.data.size() != expected) {
    return absl::InvalidArgumentError("tensor holds " + std::to_string(tensor.data.size()) +
                                      " bytes but its dtype and shape need " +
                                      std::to_string(expected));
  }
  at::Tensor out = at::empty(tensor.shape, at::TensorOptions().dtype(ScalarTypeOf(tensor.dtype)));
  if (expected > 0) std::memcpy(out.data_ptr(), tensor.data.data(), expected);
  return out;
}

absl::StatusOr<Tensor> FromTorch(const at::Tensor& tensor) {
  std::optional<DType> dtype = DTypeOfTorch(tensor.scalar_type());
  if (!dtype) {
    return absl::InvalidArgumentError(std::string("torch scalar type ") +
                                      c10::toString(tensor.scalar_type()) +
                                      " has no safetensors dtype here; convert it to float32");
  }
  return CopyOut(tensor, *dtype);
}

Tensor FromTorchF32(const at::Tensor& tensor) {
  return CopyOut(tensor.to(at::kFloat), DType::kF32);
}

}  // namespace artel::ml
