#include "kiln/passes/autodiff.h"

#include <fmt/format.h>

#include <unordered_map>
#include <unordered_set>

#include "kiln/ir/error.h"
#include "kiln/ir/infer.h"
#include "kiln/passes/grad_rules.h"

namespace kiln::passes {

namespace {

bool carries_gradient(const ir::Value* v) {
  return ir::is_floating(v->type().dtype);
}

// The values a gradient can flow back to: floating values computed from the xs.
std::unordered_set<const ir::Value*> active_values(const ir::Function& function,
                                                   std::span<ir::Value* const> xs) {
  std::unordered_set<const ir::Value*> active;
  for (const ir::Value* x : xs)
    if (carries_gradient(x)) active.insert(x);
  for (const auto& node : function.nodes()) {
    bool reached = false;
    for (const ir::Value* in : node->inputs())
      reached = reached || active.count(in) != 0;
    if (!reached) continue;
    for (size_t i = 0; i < node->num_outputs(); ++i)
      if (carries_gradient(node->output(i))) active.insert(node->output(i));
  }
  return active;
}

}  // namespace

std::vector<ir::Value*> append_gradients(ir::Function& function, std::span<ir::Value* const> ys,
                                         std::span<ir::Value* const> seeds,
                                         std::span<ir::Value* const> xs) {
  KILN_CHECK(ys.size() == seeds.size(), "append_gradients: one seed per target");
  std::unordered_set<const ir::Value*> active = active_values(function, xs);
  grad::Builder builder(function);
  std::unordered_map<const ir::Value*, grad::V> grads;
  auto accumulate = [&](const ir::Value* v, grad::V g) {
    KILN_CHECK(g.type() == v->type(), fmt::format("gradient of type {} for a value of type {}",
                                                  g.type().to_string(), v->type().to_string()));
    grad::V& sum = grads[v];
    sum = sum ? sum + g : g;
  };
  for (size_t i = 0; i < ys.size(); ++i) {
    if (active.count(ys[i]) != 0) accumulate(ys[i], builder.wrap(seeds[i]));
  }

  // Walk the forward nodes (not the ones appended here) from the back.
  size_t forward_nodes = function.nodes().size();
  for (size_t n = forward_nodes; n-- > 0;) {
    const ir::Node& node = *function.nodes()[n];
    grad::Context context{builder, node, {}};
    bool any = false;
    for (size_t i = 0; i < node.num_outputs(); ++i) {
      auto it = grads.find(node.output(i));
      context.dys.push_back(it != grads.end() ? it->second : grad::V{});
      any = any || it != grads.end();
    }
    if (!any) continue;
    grad::Rule rule = grad::rule_for(node.op());
    if (rule == nullptr) {
      Error error(fmt::format("no gradient is defined for op '{}'", ir::op_name(node.op())));
      ir::add_location(error, node.scope(), node.loc());
      throw error;
    }
    builder.set_origin(node);
    std::vector<grad::V> input_grads = rule(context);
    KILN_CHECK(input_grads.size() == node.inputs().size(),
               fmt::format("the gradient rule of '{}' returned {} gradients for {} operands",
                           ir::op_name(node.op()), input_grads.size(), node.inputs().size()));
    for (size_t i = 0; i < input_grads.size(); ++i) {
      if (input_grads[i] && active.count(node.input(i)) != 0)
        accumulate(node.input(i), input_grads[i]);
    }
  }

  std::vector<ir::Value*> result;
  for (const ir::Value* x : xs) {
    auto it = grads.find(x);
    result.push_back(it != grads.end() ? it->second.value : nullptr);
  }
  return result;
}

void differentiate(ir::Function& function) {
  if (function.outputs().size() != 1 || !carries_gradient(function.outputs()[0])) {
    throw ValueError("differentiate: the function must have exactly one floating output");
  }
  ir::Value* y = function.outputs()[0];
  std::vector<ir::Value*> xs;
  for (const auto& p : function.params())
    if (carries_gradient(p.get())) xs.push_back(p.get());
  grad::Builder builder(function);
  ir::Value* seed = builder.full(y->type(), 1.0).value;
  std::vector<ir::Value*> grads = append_gradients(function, {&y, 1}, {&seed, 1}, xs);
  std::vector<ir::Value*> outputs = function.outputs();
  for (size_t i = 0; i < xs.size(); ++i)
    outputs.push_back(grads[i] != nullptr ? grads[i] : builder.full(xs[i]->type(), 0.0).value);
  function.set_outputs(std::move(outputs));
}

}  // namespace kiln::passes
