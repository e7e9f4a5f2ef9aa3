// Shape inference and verifier rules for the elementwise ops.
#include <fmt/format.h>

#include "kiln/ir/error.h"
#include "kiln/ir/ops/families.h"

namespace kiln::ir {

namespace {

// The operand dtypes an op accepts (docs/ops.md).
enum class Accepts { numeric, floating, boolean, numeric_or_bool, any };

const char* accepts_text(Accepts a) {
  switch (a) {
    case Accepts::numeric:
      return "a numeric dtype (f32, f64, i32, i64, u8)";
    case Accepts::floating:
      return "a floating dtype (f32, f64)";
    case Accepts::boolean:
      return "bool";
    case Accepts::numeric_or_bool:
      return "a numeric dtype or bool";
    case Accepts::any:
      return "any dtype";
  }
  return "";
}

bool accepts(Accepts a, DType dtype) {
  switch (a) {
    case Accepts::numeric:
      return is_numeric(dtype);
    case Accepts::floating:
      return is_floating(dtype);
    case Accepts::boolean:
      return dtype == DType::boolean;
    case Accepts::numeric_or_bool:
    case Accepts::any:
      return true;
  }
  return false;
}

Accepts accepted_dtypes(Op op) {
  switch (op) {
    case Op::neg:
    case Op::abs:
    case Op::sign:
    case Op::square:
    case Op::relu:
    case Op::add:
    case Op::sub:
    case Op::mul:
    case Op::div:
    case Op::pow:
    case Op::maximum:
    case Op::minimum:
    case Op::less:
    case Op::less_equal:
    case Op::greater:
    case Op::greater_equal:
      return Accepts::numeric;
    case Op::exp:
    case Op::log:
    case Op::sqrt:
    case Op::rsqrt:
    case Op::reciprocal:
    case Op::sin:
    case Op::cos:
    case Op::tanh:
    case Op::sigmoid:
    case Op::elu:
    case Op::softplus:
    case Op::floor:
    case Op::ceil:
    case Op::round:
      return Accepts::floating;
    case Op::logical_not:
    case Op::logical_and:
    case Op::logical_or:
      return Accepts::boolean;
    case Op::equal:
    case Op::not_equal:
      return Accepts::numeric_or_bool;
    default:
      return Accepts::any;
  }
}

bool is_comparison(Op op) {
  switch (op) {
    case Op::equal:
    case Op::not_equal:
    case Op::less:
    case Op::less_equal:
    case Op::greater:
    case Op::greater_equal:
      return true;
    default:
      return false;
  }
}

void check_dtype(Op op, DType dtype) {
  Accepts a = accepted_dtypes(op);
  if (!accepts(a, dtype)) {
    throw TypeError(fmt::format("expects {}, got {}", accepts_text(a), dtype_name(dtype)));
  }
}

void check_same_dtype(const TensorType& a, const TensorType& b, const char* what) {
  if (a.dtype != b.dtype) {
    throw TypeError(fmt::format("{} must have the same dtype, got {} and {} (use cast)", what,
                                dtype_name(a.dtype), dtype_name(b.dtype)));
  }
}

std::vector<TensorType> infer_unary(Op op, const TensorType& x, const Attrs& attrs) {
  if (op == Op::cast) return {TensorType{attrs.get_dtype("dtype"), x.shape}};
  check_dtype(op, x.dtype);
  if (op == Op::elu) attrs.get_float("alpha", 1.0);  // validates the kind when present
  return {x};
}

std::vector<TensorType> infer_binary(Op op, const TensorType& a, const TensorType& b) {
  check_same_dtype(a, b, "operands");
  check_dtype(op, a.dtype);
  DType result = is_comparison(op) ? DType::boolean : a.dtype;
  return {TensorType{result, broadcast_shapes(a.shape, b.shape)}};
}

std::vector<TensorType> infer_select(std::span<const TensorType> in) {
  if (in[0].dtype != DType::boolean) {
    throw TypeError(fmt::format("condition must be bool, got {}", dtype_name(in[0].dtype)));
  }
  check_same_dtype(in[1], in[2], "both branches");
  Shape shape = broadcast_shapes(broadcast_shapes(in[0].shape, in[1].shape), in[2].shape);
  return {TensorType{in[1].dtype, std::move(shape)}};
}

}  // namespace

std::vector<TensorType> infer_elementwise(Op op, std::span<const TensorType> inputs,
                                          const Attrs& attrs) {
  switch (inputs.size()) {
    case 1:
      return infer_unary(op, inputs[0], attrs);
    case 2:
      return infer_binary(op, inputs[0], inputs[1]);
    case 3:
      return infer_select(inputs);
  }
  KILN_CHECK(false, "elementwise op with an unexpected operand count");
}

}  // namespace kiln::ir
