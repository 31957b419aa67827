// A model's buffers on the parameter server: the tensors of a model that are
// state but not parameters (BatchNorm's running_mean, running_var and
// num_batches_tracked, any tensor a module registers with register_buffer).
//
// Buffers travel in the same safetensors files as the parameters, named
// kBufferPrefix + the name named_buffers() gives them
// ("buffers/bn1.running_mean"), each in its own dtype (F32 running
// statistics, I64 num_batches_tracked). In params files they hold the
// model's buffer values; in a task's update (grad.safetensors,
// delta.safetensors) they hold the values after the task's forward passes,
// never a difference. The coordinator splits them off before aggregating the
// parameter update, averages them across the round's tasks, and puts the
// average into the new params; they never go through an optimizer.
//
// Thread safety: pure functions; concurrent calls on distinct outputs are
// safe. No libtorch.
#pragma once

#include <string_view>
#include <vector>

#include "common/status.h"
#include "ml/safetensors.h"

namespace artel::ml {

inline constexpr std::string_view kBufferPrefix = "buffers/";

// True when `name` is a buffer's tensor name (starts with kBufferPrefix).
inline bool IsBufferName(std::string_view name) { return name.starts_with(kBufferPrefix); }

// Moves every buffer tensor out of `map` and returns them, under their full
// names ("buffers/..."); the parameters and the metadata stay in `map`.
TensorMap SplitBuffers(TensorMap& map);

// Per element, sum_i(weights[i] * parts[i]) / sum_i(weights[i]), in each
// tensor's own dtype: floats (F32, F64, F16, BF16) are averaged in double and
// rounded once to their dtype; integers (I64, I32, I16, I8, U8) and BOOL are
// averaged exactly and rounded to the nearest value (halves away from zero).
// An element on which every part agrees is copied as it is, so the average of
// one part is that part, bit for bit. Parts without tensors give an empty
// map. Errors (InvalidArgument, naming the part and the tensor): no parts, a
// null part, weights.size() != parts.size(), a weight that is negative or
// not finite, weights summing to 0, parts whose layouts (names, dtypes,
// shapes) differ, a NaN or infinity in a float buffer. The result carries no
// metadata.
absl::StatusOr<TensorMap> AverageBuffers(const std::vector<const TensorMap*>& parts,
                                         const std::vector<double>& weights);

// Puts every tensor of `buffers` into `params`, replacing a tensor of the
// same name. InvalidArgument, leaving `params` untouched, when a tensor of
// `buffers` is not named "buffers/...", or replaces one of another dtype or
// shape. Metadata of `buffers` is ignored.
absl::Status MergeBuffers(TensorMap& params, const TensorMap& buffers);

}  // namespace artel::ml
