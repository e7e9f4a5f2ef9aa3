// Reverse-mode automatic differentiation over ir::Function. Gradient rules (grad_rules_*.cpp)
// are written with ordinary ops, so the nodes this pass appends are optimized, compiled and
// differentiated again like any other code. GradientTape and kiln::function both come here.
#pragma once

#include <span>
#include <vector>

#include "kiln/ir/function.h"

namespace kiln::passes {

// Appends to `function` the nodes computing the gradient of Σᵢ ⟨seeds[i], ys[i]⟩ with respect
// to each of `xs` (values of `function`; seeds[i] has ys[i]'s type). Returns one value per x, or
// nullptr where no gradient reaches it: x is not floating, does not influence the ys, or does so
// only through integer results (indices, comparisons, casts to integers). The new nodes carry the
// location of the forward node they differentiate and the scope "gradients/...".
std::vector<ir::Value*> append_gradients(ir::Function& function, std::span<ir::Value* const> ys,
                                         std::span<ir::Value* const> seeds,
                                         std::span<ir::Value* const> xs);

// The pass form (IR text tests, `kiln dump`): for a function with one floating output y, appends
// to its outputs the gradient of reduce_sum(y) with respect to every floating parameter, in
// parameter order (zeros for a parameter y does not depend on).
void differentiate(ir::Function& function);

}  // namespace kiln::passes
