// Shape inference and verifier rules for the matmul ops.
#include "kiln/ir/ops/matmul.h"

#include <fmt/format.h>

#include "kiln/ir/error.h"
#include "kiln/ir/ops/families.h"

namespace kiln::ir {

namespace {

// The dimensions before the last two.
Shape batch_of(const Shape& s) {
  return Shape(std::span<const int64_t>(s.dims().data(), static_cast<size_t>(s.rank() - 2)));
}

}  // namespace

MatmulDims matmul_dims(const Shape& a, const Shape& b, const Attrs& attrs) {
  if (a.rank() < 2 || b.rank() < 2) {
    throw ShapeError(
        fmt::format("both operands need rank 2 or more, got ranks {} and {}", a.rank(), b.rank()));
  }
  MatmulDims d;
  d.transpose_a = attrs.get_bool("transpose_a", false);
  d.transpose_b = attrs.get_bool("transpose_b", false);
  const int64_t a_rows = a.dim(-2), a_cols = a.dim(-1);
  const int64_t b_rows = b.dim(-2), b_cols = b.dim(-1);
  d.m = d.transpose_a ? a_cols : a_rows;
  d.k = d.transpose_a ? a_rows : a_cols;
  const int64_t kb = d.transpose_b ? b_cols : b_rows;
  d.n = d.transpose_b ? b_rows : b_cols;
  if (d.k != kb) {
    throw ShapeError(fmt::format(
        "contraction dimensions differ: a{} gives K = {}, b{} gives K = {}",
        d.transpose_a ? " (transposed)" : "", d.k, d.transpose_b ? " (transposed)" : "", kb));
  }
  Shape a_batch = batch_of(a), b_batch = batch_of(b);
  try {
    d.batch = broadcast_shapes(a_batch, b_batch);
  } catch (const ShapeError&) {
    throw ShapeError(fmt::format("batch dimensions {} and {} cannot be broadcast together",
                                 a_batch.to_string(), b_batch.to_string()));
  }
  return d;
}

std::vector<TensorType> infer_matmul(Op, std::span<const TensorType> inputs, const Attrs& attrs) {
  const TensorType& a = inputs[0];
  const TensorType& b = inputs[1];
  if (a.dtype != b.dtype) {
    throw TypeError(fmt::format("operands must have the same dtype, got {} and {}",
                                dtype_name(a.dtype), dtype_name(b.dtype)));
  }
  if (!is_numeric(a.dtype)) {
    throw TypeError(
        fmt::format("operands must be numeric (f32, f64, i32, i64), got {}", dtype_name(a.dtype)));
  }
  MatmulDims d = matmul_dims(a.shape, b.shape, attrs);
  std::vector<int64_t> dims = d.batch.dims();
  dims.push_back(d.m);
  dims.push_back(d.n);
  return {TensorType{a.dtype, Shape(std::move(dims))}};
}

}  // namespace kiln::ir
