// Canonicalize: local algebraic simplifications and constant folding, as patterns run to a
// fixpoint by the rewrite driver (passes/rewrite.h).
//
// Rules (a rule that would change a result's type, e.g. x * ones([4]) with x: f32[], never
// fires): x*1, 1*x, x/1, x+0, 0+x, x-0 → x (x+0 may turn −0 into +0 elsewhere; here it keeps
// x, the usual compiler choice); neg(neg(x)) → x; transpose∘transpose → one transpose (none if
// the permutation is the identity); a chain of reshape/squeeze/expand_dims → one reshape;
// reshape, squeeze, expand_dims, broadcast_to, transpose or cast to the operand's own type → the
// operand; select with a constant condition → that branch; a node whose operands are all
// constants → a constant computed by the interpreter (when the result has at most
// kMaxFoldedElements elements and the interpreter does not throw).
#pragma once

#include <cstdint>

#include "kiln/ir/function.h"

namespace kiln::passes {

inline constexpr int64_t kMaxFoldedElements = int64_t{1} << 20;

// Returns whether it changed anything. Replaced nodes are removed; nodes they leave unused are
// left for DCE.
bool canonicalize(ir::Function& function);

}  // namespace kiln::passes
