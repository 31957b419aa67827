// Aggregation of tensor maps for the coordinator's parameter server, in
// plain C++ on float32 arrays (no libtorch): weighted averaging of worker
// updates, robust per-coordinate aggregations, and the small arithmetic the
// optimizer and DiLoCo need.
//
// Every function that takes several maps requires the same "layout": the
// same tensor names, each with the same dtype and shape. Aggregations accept
// F32 tensors only and finite values only; anything else is an
// InvalidArgument naming the part and the tensor. None of these functions
// modifies an input when it returns an error. Results carry no metadata.
// Thread safety: pure functions; concurrent calls on distinct outputs are
// safe.
#pragma once

#include <string_view>
#include <vector>

#include "common/status.h"
#include "ml/safetensors.h"

namespace artel::ml {

// OK when `a` and `b` have the same tensor names, dtypes and shapes;
// otherwise InvalidArgument naming the first tensor that differs (missing on
// one side, other dtype, other shape), calling the maps `a_name` / `b_name`
// in the message (e.g. "params", "grads").
absl::Status CheckSameLayout(const TensorMap& a, const TensorMap& b,
                             std::string_view a_name = "the first map",
                             std::string_view b_name = "the second map");

// OK when every F32/F64 tensor holds only finite values (integer and bool
// tensors always pass); InvalidArgument naming the tensor and the flat index
// of the first NaN/Inf otherwise. F16/BF16 are refused as unsupported. A
// worker's update must pass this before it is aggregated or applied.
absl::Status CheckFinite(const TensorMap& map);

// OK when there is one finite weight >= 0 per part and they sum to more
// than 0; InvalidArgument saying which rule is broken otherwise.
absl::Status CheckWeights(size_t parts, const std::vector<double>& weights);

// sum_i(weights[i] * parts[i]) / sum_i(weights[i]), per element,
// accumulated in double and rounded once to float.
// Errors (InvalidArgument): no parts, a null part, weights.size() !=
// parts.size(), a weight that is negative or not finite, weights summing to
// 0, parts whose layouts differ, non-F32 tensors, non-finite values.
absl::StatusOr<TensorMap> WeightedAverage(const std::vector<const TensorMap*>& parts,
                                          const std::vector<double>& weights);

// Per-coordinate median of the parts; for an even number of parts, the mean
// of the two middle values. Tolerates fewer than half of the parts being
// arbitrary (finite) outliers. Errors as WeightedAverage (minus weights).
absl::StatusOr<TensorMap> CoordinateMedian(const std::vector<const TensorMap*>& parts);

// Per-coordinate trimmed mean: drops the k = floor(trim_fraction * n)
// smallest and k largest of the n values of each coordinate and averages the
// rest. trim_fraction = 0 is the plain mean. Errors as CoordinateMedian, and
// InvalidArgument unless 0 <= trim_fraction < 0.5.
absl::StatusOr<TensorMap> TrimmedMean(const std::vector<const TensorMap*>& parts,
                                      double trim_fraction);

// Centered clipping (Karimireddy, He and Jaggi, 2021): starting from the
// coordinate median v, repeats `iterations` times
//   v <- v + (1/n) * sum_i (x_i - v) * min(1, radius / |x_i - v|)
// with |.| the L2 norm over all tensors together. `radius` 0 picks the
// median of the parts' distances from the coordinate median, so that at
// least half of the parts move v unclipped. Fewer than half of the parts
// being arbitrary outliers move v by at most radius each.
struct ClipResult {
  TensorMap center;
  double radius = 0;              // the radius used
  std::vector<double> distances;  // |x_i - center| per part, after the last step
};
// Errors as CoordinateMedian, and InvalidArgument for a negative or
// non-finite radius or iterations < 1.
absl::StatusOr<ClipResult> CenteredClip(const std::vector<const TensorMap*>& parts,
                                        double radius = 0, int iterations = 3);

// The L2 norm of all F32 values of `map` together (other dtypes are skipped).
double L2Norm(const TensorMap& map);

// |x_i - center| (L2 over all tensors) per part. Errors as CheckSameLayout.
absl::StatusOr<std::vector<double>> DistancesTo(const std::vector<const TensorMap*>& parts,
                                                const TensorMap& center);

// -map, element-wise. REQUIRES: every tensor is F32 (checked; a violation
// stops the process, so check the map with an aggregation or
// CheckSameLayout against F32 params first).
TensorMap Negate(const TensorMap& map);

// a += scale * b, element-wise (computed in double, rounded to float).
// InvalidArgument, leaving `a` untouched, when the layouts differ or a tensor
// is not F32.
absl::Status AddInPlace(TensorMap& a, const TensorMap& b, double scale);

}  // namespace artel::ml
