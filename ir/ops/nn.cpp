// Shape inference and verifier rules for the nn ops.
#include <fmt/format.h>

#include "kiln/ir/error.h"
#include "kiln/ir/ops/families.h"
#include "kiln/ir/ops/window.h"

namespace kiln::ir {

namespace {

void check_floating(DType dtype) {
  if (!is_floating(dtype)) {
    throw TypeError(
        fmt::format("operands must be floating (f32 or f64), got {}", dtype_name(dtype)));
  }
}

TensorType infer_conv2d(const TensorType& input, const TensorType& filter, const Attrs& attrs) {
  if (input.dtype != filter.dtype) {
    throw TypeError(fmt::format("input and filter must have the same dtype, got {} and {}",
                                dtype_name(input.dtype), dtype_name(filter.dtype)));
  }
  check_floating(input.dtype);
  Window2D w = conv2d_window(input.shape, filter.shape, attrs);
  return TensorType{input.dtype, Shape{input.shape[0], w.h.out, w.w.out, filter.shape[3]}};
}

TensorType infer_pool(const TensorType& input, const Attrs& attrs) {
  check_floating(input.dtype);
  Window2D w = pool_window(input.shape, attrs);
  return TensorType{input.dtype, Shape{input.shape[0], w.h.out, w.w.out, input.shape[3]}};
}

TensorType infer_softmax(const TensorType& input, const Attrs& attrs) {
  check_floating(input.dtype);
  normalize_axis(attrs.get_int("axis", -1), input.shape.rank());
  return input;
}

}  // namespace

std::vector<TensorType> infer_nn(Op op, std::span<const TensorType> inputs, const Attrs& attrs) {
  switch (op) {
    case Op::conv2d:
      return {infer_conv2d(inputs[0], inputs[1], attrs)};
    case Op::max_pool2d:
    case Op::avg_pool2d:
      return {infer_pool(inputs[0], attrs)};
    case Op::softmax:
    case Op::log_softmax:
      return {infer_softmax(inputs[0], attrs)};
    default:
      KILN_CHECK(false, "not an nn op");
  }
}

}  // namespace kiln::ir
