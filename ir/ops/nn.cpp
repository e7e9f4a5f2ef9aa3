// Shape inference and verifier rules for the nn ops.
#include <fmt/format.h>
#include <fmt/ranges.h>

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

// conv2d_filter_grad(x, dy) {ksize, strides, padding, dilations}: dy must have the result type of
// conv2d(x, filter [KH, KW, C, O]); the result is the filter's type.
TensorType infer_conv2d_filter_grad(const TensorType& input, const TensorType& dy,
                                    const Attrs& attrs) {
  if (input.dtype != dy.dtype) {
    throw TypeError(fmt::format("x and dy must have the same dtype, got {} and {}",
                                dtype_name(input.dtype), dtype_name(dy.dtype)));
  }
  check_floating(input.dtype);
  if (input.shape.rank() != 4 || dy.shape.rank() != 4) {
    throw ShapeError(fmt::format("x and dy must be rank 4 (NHWC), got {} and {}",
                                 input.shape.to_string(), dy.shape.to_string()));
  }
  const std::vector<int64_t>& ksize = attrs.get_ints("ksize");
  if (ksize.size() != 2 || ksize[0] < 1 || ksize[1] < 1) {
    throw ValueError(
        fmt::format("ksize must be two positive ints, got [{}]", fmt::join(ksize, ", ")));
  }
  const Shape filter{ksize[0], ksize[1], input.shape[3], dy.shape[3]};
  if (!TensorType{input.dtype, filter}.checked_nbytes()) {
    throw ShapeError(
        fmt::format("the filter gradient's shape {} is too large", filter.to_string()));
  }
  const TensorType y = infer_conv2d(input, TensorType{input.dtype, filter}, attrs);
  if (y.shape != dy.shape) {
    throw ShapeError(fmt::format(
        "dy must have the shape {} of conv2d's result for x of shape {} and a {}x{} window, got {}",
        y.shape.to_string(), input.shape.to_string(), ksize[0], ksize[1], dy.shape.to_string()));
  }
  return TensorType{input.dtype, filter};
}

TensorType infer_pool(const TensorType& input, const Attrs& attrs) {
  check_floating(input.dtype);
  Window2D w = pool_window(input.shape, attrs);
  return TensorType{input.dtype, Shape{input.shape[0], w.h.out, w.w.out, input.shape[3]}};
}

// max_pool2d_grad(x, y, dy): y and dy must be the pool's result type for input x.
TensorType infer_max_pool_grad(std::span<const TensorType> inputs, const Attrs& attrs) {
  const TensorType pooled = infer_pool(inputs[0], attrs);
  const char* names[] = {"x", "y", "dy"};
  for (size_t i = 1; i < 3; ++i) {
    if (inputs[i].dtype != pooled.dtype) {
      throw TypeError(fmt::format("{} must have the dtype of x ({}), got {}", names[i],
                                  dtype_name(pooled.dtype), dtype_name(inputs[i].dtype)));
    }
    if (inputs[i].shape != pooled.shape) {
      throw ShapeError(fmt::format(
          "{} must have the pool's result shape {} for x of shape {}, got {}", names[i],
          pooled.shape.to_string(), inputs[0].shape.to_string(), inputs[i].shape.to_string()));
    }
  }
  return inputs[0];
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
    case Op::conv2d_filter_grad:
      return {infer_conv2d_filter_grad(inputs[0], inputs[1], attrs)};
    case Op::max_pool2d:
    case Op::avg_pool2d:
      return {infer_pool(inputs[0], attrs)};
    case Op::max_pool2d_grad:
      return {infer_max_pool_grad(inputs, attrs)};
    case Op::softmax:
    case Op::log_softmax:
      return {infer_softmax(inputs[0], attrs)};
    default:
      KILN_CHECK(false, "not an nn op");
  }
}

}  // namespace kiln::ir
