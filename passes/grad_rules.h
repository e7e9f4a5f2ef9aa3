// Internal: the gradient rules, one per differentiable op, kept in a table keyed by op and filled
// by one function per op family (grad_rules_<family>.cpp). The autodiff pass is their only user.
#pragma once

#include <array>
#include <vector>

#include "kiln/ir/op.h"
#include "kiln/passes/grad_builder.h"

namespace kiln::passes::grad {

// What a rule sees: the forward node, its operands and results as values, and the gradient
// reaching each result (empty where none does; at least one is non-empty).
struct Context {
  Builder& builder;
  const ir::Node& node;
  std::vector<V> dys;

  V x(size_t i = 0) const { return builder.wrap(node.input(i)); }
  V y(size_t i = 0) const { return builder.wrap(node.output(i)); }
  // The gradient of the single result (rules of single-result ops use this).
  V dy() const { return dys.at(0); }
  // The gradient of result i, zeros where none reached it.
  V dy_or_zeros(size_t i) const { return dys.at(i) ? dys.at(i) : zeros_like(y(i)); }
  const ir::Attrs& attrs() const { return node.attrs(); }
};

// Returns one gradient per operand; an empty V means "no gradient" (an integer operand, an index,
// a condition, or a structurally zero gradient).
using Rule = std::vector<V> (*)(const Context& c);
using RuleTable = std::array<Rule, ir::kNumOps>;

void add_elementwise_rules(RuleTable& table);
void add_reduction_rules(RuleTable& table);
void add_matmul_rules(RuleTable& table);
void add_shape_rules(RuleTable& table);
void add_nn_rules(RuleTable& table);       // softmax, log_softmax
void add_conv_rules(RuleTable& table);     // conv2d and the pools
void add_control_rules(RuleTable& table);  // scan (a reverse scan)

// The rule for `op`, or nullptr if it has none.
Rule rule_for(ir::Op op);

}  // namespace kiln::passes::grad
