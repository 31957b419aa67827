#include "batches.h"

#include <algorithm>
#include <random>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace artel::ml {

absl::StatusOr<int64_t> CheckShard(const TensorMap& data) {
  constexpr char kExpected[] =
      "; a data shard holds \"x\" (F32 [n, ...]) and \"y\" (I64 [n]) with the same n >= 1";
  auto x = data.tensors.find("x");
  auto y = data.tensors.find("y");
  if (x == data.tensors.end())
    return absl::InvalidArgumentError(absl::StrCat("no tensor \"x\"", kExpected));
  if (y == data.tensors.end())
    return absl::InvalidArgumentError(absl::StrCat("no tensor \"y\"", kExpected));
  if (x->second.dtype != DType::kF32 || x->second.shape.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"x\" is ", std::string(DTypeName(x->second.dtype)), " [",
                     absl::StrJoin(x->second.shape, ", "), "]", kExpected));
  }
  if (y->second.dtype != DType::kI64 || y->second.shape.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"y\" is ", std::string(DTypeName(y->second.dtype)), " [",
                     absl::StrJoin(y->second.shape, ", "), "]", kExpected));
  }
  const int64_t n = x->second.shape[0];
  if (y->second.shape[0] != n || n < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"x\" has ", n, " samples and \"y\" ", y->second.shape[0], kExpected));
  }
  return n;
}

absl::StatusOr<TensorMap> ConcatShards(const std::vector<const TensorMap*>& shards) {
  if (shards.empty()) return absl::InvalidArgumentError("no shards to put together");
  TensorMap out;
  for (size_t i = 0; i < shards.size(); ++i) {
    ASSIGN_OR_RETURN(int64_t n, CheckShard(*shards[i]));
    const Tensor& x = shards[i]->tensors.at("x");
    const Tensor& y = shards[i]->tensors.at("y");
    if (i == 0) {
      out.tensors["x"] = x;
      out.tensors["y"] = y;
      continue;
    }
    Tensor& ox = out.tensors["x"];
    if (!std::equal(x.shape.begin() + 1, x.shape.end(), ox.shape.begin() + 1, ox.shape.end())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shard ", i + 1, " holds samples of shape [",
          absl::StrJoin(x.shape.begin() + 1, x.shape.end(), ", "), "] and shard 1 of shape [",
          absl::StrJoin(ox.shape.begin() + 1, ox.shape.end(), ", "),
          "]; every shard of a data set must hold samples of one shape"));
    }
    ox.shape[0] += n;
    ox.data += x.data;
    Tensor& oy = out.tensors["y"];
    oy.shape[0] += n;
    oy.data += y.data;
  }
  return out;
}

absl::StatusOr<RowRange> BatchRows(int64_t samples, int64_t batch_size, int64_t index) {
  if (batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch size ", batch_size, " must be >= 1"));
  }
  if (index < 0) {
    return absl::InvalidArgumentError(absl::StrCat("batch index ", index, " must be >= 0"));
  }
  const int64_t batches = (samples + batch_size - 1) / batch_size;
  if (index >= batches) {
    return absl::OutOfRangeError(absl::StrCat("batch ", index, " is out of range: the shard's ",
                                              samples, " samples make ", batches, " batches of ",
                                              batch_size, " (indices 0..", batches - 1, ")"));
  }
  const int64_t begin = index * batch_size;
  return RowRange{begin, std::min(begin + batch_size, samples)};
}

std::vector<int64_t> SampleOrder(int64_t samples, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(samples));
  for (int64_t i = 0; i < samples; ++i) order[i] = i;
  if (seed == 0) return order;
  std::mt19937_64 rng(seed);
  for (int64_t i = samples - 1; i > 0; --i) {
    // Modulo keeps it portable (std::uniform_int_distribution is not); the
    // bias is below 2^-40 for any shard that fits in memory.
    const auto j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

std::vector<int64_t> StepRows(const std::vector<int64_t>& order, int64_t batch_size,
                              int64_t start_batch, int64_t step) {
  const auto n = static_cast<int64_t>(order.size());
  const int64_t first = ((start_batch + step) % n) * (batch_size % n) % n;
  std::vector<int64_t> rows(static_cast<size_t>(batch_size));
  for (int64_t k = 0; k < batch_size; ++k) rows[k] = order[(first + k) % n];
  return rows;
}

}  // namespace artel::ml
