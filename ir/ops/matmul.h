// Internal: the dimensions of a matmul, shared by the shape rule, the interpreter and codegen.
#pragma once

#include <cstdint>

#include "kiln/ir/attrs.h"
#include "kiln/ir/types.h"

namespace kiln::ir {

// [batch.., M, K] × [batch.., K, N] → [batch.., M, N] after the optional transposes of the last
// two dimensions of each operand; the batch dimensions broadcast NumPy-style.
struct MatmulDims {
  Shape batch;  // broadcast batch shape of the result
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  bool transpose_a = false;
  bool transpose_b = false;
};

// Validates ranks (≥ 2), the contraction sizes and the batch broadcast; throws ShapeError.
MatmulDims matmul_dims(const Shape& a, const Shape& b, const Attrs& attrs);

}  // namespace kiln::ir
