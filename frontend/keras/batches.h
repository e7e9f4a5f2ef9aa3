// Batches of samples, as Model and SavedModel take them: the type of one sample, a batch's type,
// the check that x and y hold the same number of samples, and the one on compile()'s lists.
#pragma once

#include <cstdint>
#include <source_location>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/ir/types.h"

namespace kiln::detail {

// The shape of one sample of a batch of `batch` (dimension 0 dropped; rank >= 1).
inline Shape sample_shape(const Shape& batch) {
  return Shape(std::vector<int64_t>(batch.begin() + 1, batch.end()));
}

// The type of one sample of a batch of type `batch`.
inline TensorType sample_type(const TensorType& batch) {
  return TensorType{batch.dtype, sample_shape(batch.shape)};
}

// The type of `batch` samples of type `sample`.
inline TensorType with_batch(int64_t batch, const TensorType& sample) {
  std::vector<int64_t> dims{batch};
  dims.insert(dims.end(), sample.shape.begin(), sample.shape.end());
  return TensorType{sample.dtype, Shape(std::move(dims))};
}

// ValueError (as `what`) unless x and y are defined and hold the same number of samples.
void check_data(const char* what, const Tensor& x, const Tensor& y,
                const std::source_location& loc);

// ValueError (as `what`) unless compile() got one loss, list of metrics and loss weight for all
// `outputs` or one per output (0 metric lists or weights: none given), and finite weights.
void check_compile_counts(const char* what, size_t outputs, size_t losses, size_t metric_lists,
                          const std::vector<double>& loss_weights, const std::source_location& loc);

}  // namespace kiln::detail
