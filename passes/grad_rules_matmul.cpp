// Gradient rule of matmul: the two products with the other operand, transposes chosen so no
// transpose node is needed, and leading (batch) dims summed back where an operand broadcast.
#include "kiln/passes/grad_rules.h"

namespace kiln::passes::grad {

namespace {

std::vector<V> matmul_rule(const Context& c) {
  V a = c.x(0), b = c.x(1), g = c.dy();
  bool ta = c.attrs().get_bool("transpose_a", false);
  bool tb = c.attrs().get_bool("transpose_b", false);
  V da, db;
  if (!ta && !tb) {  // y = a·b
    da = matmul(g, b, false, true);
    db = matmul(a, g, true, false);
  } else if (!ta && tb) {  // y = a·bᵀ
    da = matmul(g, b);
    db = matmul(g, a, true, false);
  } else if (ta && !tb) {  // y = aᵀ·b
    da = matmul(b, g, false, true);
    db = matmul(a, g);
  } else {  // y = aᵀ·bᵀ
    da = matmul(b, g, true, true);
    db = matmul(g, a, true, true);
  }
  return {unbroadcast(da, a.shape()), unbroadcast(db, b.shape())};
}

}  // namespace

void add_matmul_rules(RuleTable& t) {
  t[size_t(ir::Op::matmul)] = matmul_rule;
}

}  // namespace kiln::passes::grad
