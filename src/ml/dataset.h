// Cuts a data set into shards: each shard is a safetensors file with
//   "x"  F32 [n, ...]  the inputs (IDX images become [n, 1, rows, cols] in [0, 1])
//   "y"  I64 [n]       the labels
// and metadata {"samples": "<n>", "first": "<index of the shard's first sample>"}.
// Shards are stored as blobs; workers train on them (DESIGN.md §6).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "ml/idx.h"
#include "ml/safetensors.h"

namespace artel::ml {

struct Shard {
  std::string bytes;    // the safetensors file
  int64_t samples = 0;  // its number of samples (the last shard may be smaller)
};

// Shards an IDX image array [n, rows, cols] and a label array [n] into
// ceil(n / shard_size) shards of shard_size samples (the last may be
// smaller). Pixels are scaled by 1/255. Errors: InvalidArgument when
// shard_size < 1, the shapes are not [n, rows, cols] and [n], n is 0, or the
// counts differ.
absl::StatusOr<std::vector<Shard>> ShardIdx(const IdxArray& images, const IdxArray& labels,
                                            int64_t shard_size);

// Shards a user-given data set holding exactly "x" (F32, first dimension =
// samples) and "y" (I64 [samples]). Errors: InvalidArgument naming what is
// missing or mismatched, and what is needed.
absl::StatusOr<std::vector<Shard>> ShardSafetensors(const TensorMap& data, int64_t shard_size);

}  // namespace artel::ml
