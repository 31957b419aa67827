// Shards and the batches cut from them, without libtorch.
//
// A shard is a TensorMap with "x" (F32 [n, ...], the inputs) and "y"
// (I64 [n], class labels), as src/ml/dataset.h writes them.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "ml/safetensors.h"

namespace artel::ml {

// Rows [begin, end) of a shard.
struct RowRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// Checks that `data` is a shard: "x" F32 with at least one dimension and "y"
// I64 [n] with the same n >= 1. Returns n. Errors: InvalidArgument saying
// what is missing or mismatched and what a shard must hold.
absl::StatusOr<int64_t> CheckShard(const TensorMap& data);

// The shards one after another: "x" and "y" of each appended in order
// (metadata is dropped). Errors: InvalidArgument when `shards` is empty, a
// shard fails CheckShard, or the shards' samples differ in shape (naming
// the first that does).
absl::StatusOr<TensorMap> ConcatShards(const std::vector<const TensorMap*>& shards);

// Rows of batch `index` when a shard of `samples` rows is cut into batches
// of `batch_size` (the last batch may be short). Errors: InvalidArgument
// when batch_size < 1 or index < 0; OutOfRange when the batch starts at or
// past `samples` (naming how many batches there are).
absl::StatusOr<RowRange> BatchRows(int64_t samples, int64_t batch_size, int64_t index);

// The order in which local training visits the rows 0..samples-1: the
// shard's own order for seed 0, otherwise a Fisher-Yates shuffle driven by
// std::mt19937_64(seed), which is the same on every platform.
std::vector<int64_t> SampleOrder(int64_t samples, uint64_t seed);

// Rows of local step `step` (0-based) starting at batch `start_batch`:
// positions [(start_batch + step) * batch_size, ... + batch_size) of `order`,
// wrapping around its end. REQUIRES: order non-empty, batch_size >= 1,
// start_batch >= 0, step >= 0.
std::vector<int64_t> StepRows(const std::vector<int64_t>& order, int64_t batch_size,
                              int64_t start_batch, int64_t step);

}  // namespace artel::ml
