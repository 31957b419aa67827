// Smaller updates on the wire: workers encode gradients and parameter
// deltas as fp16 or int8 before they travel, the coordinator decodes them
// before aggregation (artel train --compress).
//
// Only F32 tensors whose names do not start with "buffers/" are encoded
// (buffer values travel as they are). Formats, inside ordinary safetensors:
//   fp16  the tensor as F16 (round to nearest even; finite values beyond
//         +-65504 are clamped to it).
//   int8  the tensor as I8 q = round(x / s), clamped to [-127, 127], with
//         the per-tensor scale s = max|x| / 127 in metadata
//         "int8_scale/<name>" (printed with every digit; 0 for a zero
//         tensor).
// Error feedback: with a `residual`, the encoder adds it to the update
// before encoding and keeps what the encoding lost, so that over many
// updates nothing is lost for good (the sum of what was sent trails the
// sum of the true updates by one residual).
//
// Thread safety: pure functions.
#pragma once

#include <string>

#include "common/status.h"
#include "ml/safetensors.h"

namespace artel::ml {

enum class Compression { kNone, kFp16, kInt8 };

// "none", "fp16", "int8". Errors: InvalidArgument listing them.
absl::StatusOr<Compression> ParseCompression(const std::string& name);
const char* CompressionName(Compression c);

// Encodes `update` as above (kNone returns it unchanged). `residual` may
// be null (no error feedback); a residual whose layout does not match the
// update's is discarded first.
TensorMap Compress(const TensorMap& update, Compression c, TensorMap* residual = nullptr);

// Decodes every F16 tensor but buffers, and every I8 tensor that has an
// "int8_scale/<name>" metadata entry, back to F32 and drops the scale
// entries; other tensors and metadata stay. Errors (InvalidArgument): a
// scale that is not a finite number >= 0, a scale without its tensor.
absl::StatusOr<TensorMap> Decompress(TensorMap update);

// IEEE 754 half precision conversions (round to nearest even).
uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);

}  // namespace artel::ml
