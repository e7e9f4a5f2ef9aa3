// Shape inference and verifier rules for the elementwise ops.
#include <fmt/format.h>

#include "kiln/ir/error.h"
#include "kiln/ir/ops/families.h"

namespace kiln::ir {

namespace {

// The operand dtypes come from the op table (ops.def's `dtypes` column).
void check_dtype(Op op, DType dtype) {
  DTypes accepted = op_dtypes(op);
  KILN_CHECK(accepted != DTypes::by_rule,
             fmt::format("ops.def gives the elementwise op {} no dtypes", op_name(op)));
  if (!dtypes_admit(accepted, dtype)) {
    throw TypeError(fmt::format("expects {}, got {}", dtypes_text(accepted), dtype_name(dtype)));
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
  // Validate the attribute's kind when present.
  if (op == Op::elu) attrs.get_float("alpha", 1.0);
  if (op == Op::gelu) attrs.get_bool("approximate", false);
  return {x};
}

std::vector<TensorType> infer_binary(Op op, const TensorType& a, const TensorType& b) {
  check_same_dtype(a, b, "operands");
  check_dtype(op, a.dtype);
  DType result = has_trait(op, kComparison) ? DType::boolean : a.dtype;
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
