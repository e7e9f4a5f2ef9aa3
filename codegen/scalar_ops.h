// Internal: the scalar expression of every elementwise op, as LLVM IR on register values. The
// loop emitters are shared; ops differ only here (semantics as docs/ops.md and
// ir/interp/elementwise_math.h).
#pragma once

#include <span>

#include "kiln/codegen/llvm_util.h"
#include "kiln/ir/attrs.h"
#include "kiln/ir/op.h"

namespace kiln::codegen {

// op(args...) where the operands have dtype `in` (select: the dtype of its value operands) and
// the result has dtype `out`.
llvm::Value* emit_scalar_op(Builder& b, ir::Op op, ir::DType in, ir::DType out,
                            const ir::Attrs& attrs, std::span<llvm::Value* const> args);

// value converted from `from` to `to` with `cast` semantics (saturating float→int, NaN → 0).
llvm::Value* emit_cast(Builder& b, llvm::Value* value, ir::DType from, ir::DType to);

}  // namespace kiln::codegen
