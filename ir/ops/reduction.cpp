// Shape inference and verifier rules for the reduction ops.
#include "kiln/ir/ops/reduction.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <limits>

#include "kiln/ir/error.h"
#include "kiln/ir/ops/families.h"

namespace kiln::ir {

std::vector<bool> reduced_axes_mask(const Attrs& attrs, int64_t rank) {
  const std::vector<int64_t>& axes = attrs.get_ints("axes");
  std::vector<bool> mask(static_cast<size_t>(rank), false);
  for (int64_t axis : axes) {
    int64_t d = normalize_axis(axis, rank);
    if (mask[static_cast<size_t>(d)]) {
      throw ValueError(
          fmt::format("axes [{}] name dimension {} more than once", fmt::join(axes, ", "), d));
    }
    mask[static_cast<size_t>(d)] = true;
  }
  return mask;
}

Shape reduced_shape(const Shape& shape, const std::vector<bool>& mask, bool keepdims) {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < shape.rank(); ++d) {
    if (!mask[static_cast<size_t>(d)]) {
      dims.push_back(shape[d]);
    } else if (keepdims) {
      dims.push_back(1);
    }
  }
  return Shape(std::move(dims));
}

int64_t arg_reduce_axis(const Attrs& attrs, int64_t rank) {
  return normalize_axis(attrs.get_int("axis"), rank);
}

DType arg_reduce_dtype(const Attrs& attrs) {
  if (!attrs.has("dtype")) return DType::i64;
  DType dtype = attrs.get_dtype("dtype");
  if (dtype != DType::i32 && dtype != DType::i64) {
    throw TypeError(fmt::format("result dtype must be i32 or i64, got {}", dtype_name(dtype)));
  }
  return dtype;
}

namespace {

void check_numeric(const TensorType& operand) {
  if (!is_numeric(operand.dtype)) {
    throw TypeError(fmt::format("operand must be numeric (f32, f64, i32, i64, u8), got {}",
                                dtype_name(operand.dtype)));
  }
}

TensorType infer_arg_reduce(const TensorType& operand, const Attrs& attrs) {
  int64_t axis = arg_reduce_axis(attrs, operand.shape.rank());
  DType dtype = arg_reduce_dtype(attrs);
  int64_t size = operand.shape[axis];
  if (size == 0) {
    throw ShapeError(fmt::format("cannot take the index over axis {}, which has size 0", axis));
  }
  if (dtype == DType::i32 && size > std::numeric_limits<int32_t>::max()) {
    throw ValueError(fmt::format("axis {} has {} elements, too many for an i32 index", axis, size));
  }
  std::vector<bool> mask(static_cast<size_t>(operand.shape.rank()), false);
  mask[static_cast<size_t>(axis)] = true;
  return TensorType{dtype, reduced_shape(operand.shape, mask, false)};
}

}  // namespace

std::vector<TensorType> infer_reduction(Op op, std::span<const TensorType> inputs,
                                        const Attrs& attrs) {
  const TensorType& operand = inputs[0];
  check_numeric(operand);
  if (op == Op::argmax || op == Op::argmin) return {infer_arg_reduce(operand, attrs)};
  std::vector<bool> mask = reduced_axes_mask(attrs, operand.shape.rank());
  bool keepdims = attrs.get_bool("keepdims", false);
  return {TensorType{operand.dtype, reduced_shape(operand.shape, mask, keepdims)}};
}

}  // namespace kiln::ir
