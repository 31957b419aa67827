#include "ml/dataset.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace artel::ml {
namespace {

constexpr absl::string_view kNeeded =
    "a data set needs exactly \"x\" (F32, first dimension = samples) and \"y\" (I64 [samples])";

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status CheckShardSize(int64_t shard_size) {
  if (shard_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard size must be at least 1 sample, got ", shard_size));
  }
  return absl::OkStatus();
}

// Cuts x (row-major, `row_bytes` per sample) and y into shards.
std::vector<Shard> Cut(const Tensor& x, const Tensor& y, int64_t samples, int64_t shard_size) {
  const size_t row_bytes = samples == 0 ? 0 : x.data.size() / static_cast<size_t>(samples);
  std::vector<Shard> shards;
  for (int64_t first = 0; first < samples; first += shard_size) {
    const int64_t n = std::min(shard_size, samples - first);
    TensorMap map;
    Tensor& sx = map.tensors["x"];
    sx.dtype = x.dtype;
    sx.shape = x.shape;
    sx.shape[0] = n;
    sx.data =
        x.data.substr(static_cast<size_t>(first) * row_bytes, static_cast<size_t>(n) * row_bytes);
    Tensor& sy = map.tensors["y"];
    sy.dtype = DType::kI64;
    sy.shape = {n};
    sy.data = y.data.substr(static_cast<size_t>(first) * sizeof(int64_t),
                            static_cast<size_t>(n) * sizeof(int64_t));
    map.metadata["samples"] = absl::StrCat(n);
    map.metadata["first"] = absl::StrCat(first);
    shards.push_back(Shard{SerializeSafetensors(map), n});
  }
  return shards;
}

}  // namespace

absl::StatusOr<std::vector<Shard>> ShardIdx(const IdxArray& images, const IdxArray& labels,
                                            int64_t shard_size) {
  RETURN_IF_ERROR(CheckShardSize(shard_size));
  if (images.shape.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "IDX images must have shape [samples, rows, cols], got ", ShapeString(images.shape)));
  }
  if (labels.shape.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("IDX labels must have shape [samples], got ", ShapeString(labels.shape)));
  }
  const int64_t samples = images.shape[0];
  if (labels.shape[0] != samples) {
    return absl::InvalidArgumentError(
        absl::StrCat("the images file holds ", samples, " samples but the labels file ",
                     labels.shape[0], "; pass the labels that belong to these images"));
  }
  if (samples == 0) return absl::InvalidArgumentError("the IDX data set has no samples");
  ARTEL_CHECK(images.u8.size() == static_cast<size_t>(images.numel()) &&
                  labels.u8.size() == static_cast<size_t>(labels.numel()),
              "IdxArray data does not match its shape");

  Tensor x{DType::kF32, {samples, 1, images.shape[1], images.shape[2]}, {}};
  x.data.resize(images.u8.size() * sizeof(float));
  float* px = x.mutable_f32();
  for (size_t i = 0; i < images.u8.size(); ++i) {
    px[i] = static_cast<float>(static_cast<unsigned char>(images.u8[i])) / 255.0f;
  }
  std::vector<int64_t> label_values(labels.u8.size());
  for (size_t i = 0; i < labels.u8.size(); ++i) {
    label_values[i] = static_cast<unsigned char>(labels.u8[i]);
  }
  return Cut(x, Tensor::I64({samples}, label_values), samples, shard_size);
}

absl::StatusOr<std::vector<Shard>> ShardSafetensors(const TensorMap& data, int64_t shard_size) {
  RETURN_IF_ERROR(CheckShardSize(shard_size));
  for (const auto& [name, unused] : data.tensors) {
    if (name != "x" && name != "y") {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected tensor '", name, "' in the data set; ", kNeeded));
    }
  }
  auto x_it = data.tensors.find("x");
  auto y_it = data.tensors.find("y");
  if (x_it == data.tensors.end() || y_it == data.tensors.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the data set has no tensor \"", x_it == data.tensors.end() ? "x" : "y", "\"; ", kNeeded));
  }
  const Tensor& x = x_it->second;
  const Tensor& y = y_it->second;
  if (x.dtype != DType::kF32 || x.shape.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"x\" is ",
                                                   std::string(DTypeName(x.dtype)), " ",
                                                   ShapeString(x.shape), "; ", kNeeded));
  }
  if (y.dtype != DType::kI64 || y.shape.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"y\" is ",
                                                   std::string(DTypeName(y.dtype)), " ",
                                                   ShapeString(y.shape), "; ", kNeeded));
  }
  const int64_t samples = x.shape[0];
  if (y.shape[0] != samples) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"x\" holds ", samples, " samples but \"y\" ", y.shape[0], "; ", kNeeded));
  }
  if (samples == 0) return absl::InvalidArgumentError("the data set has no samples");
  ARTEL_CHECK(x.data.size() == static_cast<size_t>(x.numel()) * sizeof(float) &&
                  y.data.size() == static_cast<size_t>(samples) * sizeof(int64_t),
              "tensor data does not match its shape");
  return Cut(x, y, samples, shard_size);
}

}  // namespace artel::ml
