// Gradient rules of softmax and log_softmax, and the rule table itself.
#include "kiln/passes/grad_rules.h"

namespace kiln::passes::grad {

namespace {

int64_t softmax_axis(const Context& c) {
  return ir::normalize_axis(c.attrs().get_int("axis", -1), c.x().rank());
}

RuleTable make_table() {
  RuleTable table{};
  add_elementwise_rules(table);
  add_reduction_rules(table);
  add_matmul_rules(table);
  add_shape_rules(table);
  add_nn_rules(table);
  add_conv_rules(table);
  add_control_rules(table);
  return table;
}

}  // namespace

void add_nn_rules(RuleTable& t) {
  // y = softmax(x): dx = y·(dy − Σ dy·y)
  t[size_t(ir::Op::softmax)] = [](const Context& c) -> std::vector<V> {
    V y = c.y(), g = c.dy();
    return {y * (g - reduce_sum(g * y, {softmax_axis(c)}, /*keepdims=*/true))};
  };
  // y = log_softmax(x): dx = dy − softmax(x)·Σ dy
  t[size_t(ir::Op::log_softmax)] = [](const Context& c) -> std::vector<V> {
    V g = c.dy();
    // Named locals: the two operands of one call would be built in an unspecified order.
    V softmax = exp(c.y());
    V sum = reduce_sum(g, {softmax_axis(c)}, /*keepdims=*/true);
    return {g - softmax * sum};
  };
}

Rule rule_for(ir::Op op) {
  static const RuleTable table = make_table();
  return table[static_cast<size_t>(op)];
}

}  // namespace kiln::passes::grad
