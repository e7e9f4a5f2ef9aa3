// Internal: how the reduction ops read their attributes. Shared by the shape rule, the
// interpreter kernels and codegen so that all three agree on which axes are reduced.
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/ir/attrs.h"
#include "kiln/ir/types.h"

namespace kiln::ir {

// Which dimensions of a rank-`rank` operand the `axes` attribute reduces (mask[d] is true for a
// reduced dimension). Negative axes count from the back; an out-of-range axis is a ShapeError,
// an axis named twice (after normalization) a ValueError.
std::vector<bool> reduced_axes_mask(const Attrs& attrs, int64_t rank);

// The result shape of reducing `shape` over `mask`: reduced dimensions dropped, or kept with
// size 1 when `keepdims`.
Shape reduced_shape(const Shape& shape, const std::vector<bool>& mask, bool keepdims);

// argmax/argmin's `axis`, normalized against `rank` (ShapeError if out of range).
int64_t arg_reduce_axis(const Attrs& attrs, int64_t rank);

// argmax/argmin's result dtype: attribute `dtype`, i32 or i64 (default i64); TypeError otherwise.
DType arg_reduce_dtype(const Attrs& attrs);

}  // namespace kiln::ir
