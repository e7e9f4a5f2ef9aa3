#include "kiln/passes/rewrite.h"

#include <algorithm>
#include <memory>
#include <unordered_map>

#include "kiln/ir/error.h"
#include "kiln/ir/infer.h"

namespace kiln::passes {

ir::Value* Rewriter::create(ir::Op op, std::vector<ir::Value*> inputs, ir::Attrs attrs) {
  return function_.append(op, std::move(inputs), std::move(attrs), node_.scope(), node_.loc())
      ->output();
}

ir::Value* Rewriter::constant(ir::HostTensor value) {
  ir::TensorType type = value.type();
  ir::Attrs attrs;
  attrs.set_tensor("value", std::move(value));
  return function_
      .append_unchecked(ir::Op::constant, {}, std::move(attrs), {std::move(type)}, node_.scope(),
                        node_.loc())
      ->output();
}

ir::Value* resolve_replaced(const std::unordered_map<const ir::Value*, ir::Value*>& replaced,
                            ir::Value* value) {
  for (auto it = replaced.find(value); it != replaced.end(); it = replaced.find(value))
    value = it->second;
  return value;
}

void redirect_results(ir::Function& function,
                      const std::unordered_map<const ir::Value*, ir::Value*>& replaced) {
  if (replaced.empty()) return;
  std::vector<ir::Value*> outputs = function.outputs();
  for (ir::Value*& v : outputs)
    v = resolve_replaced(replaced, v);
  function.set_outputs(std::move(outputs));
  for (auto& update : function.mutable_updates())
    update.value = resolve_replaced(replaced, update.value);
}

namespace {

// Tries the patterns on `node`, which is the function's last node, so that the nodes a pattern
// builds come after it. Returns the value replacing its result, or nullptr.
ir::Value* try_patterns(ir::Function& function, const ir::Node& node,
                        std::span<const Pattern> patterns) {
  if (node.num_outputs() != 1) return nullptr;
  const size_t before = function.nodes().size();
  for (const Pattern& pattern : patterns) {
    Rewriter rewriter(function, node);
    ir::Value* replacement = pattern(node, rewriter);
    if (replacement == nullptr) {
      KILN_CHECK(function.nodes().size() == before, "a pattern that did not match created nodes");
      continue;
    }
    KILN_CHECK(replacement->type() == node.output()->type(),
               "a rewrite changed the type of a value");
    KILN_CHECK(replacement != node.output(), "a pattern replaced a value with itself");
    return replacement;
  }
  return nullptr;
}

// One pass over the nodes in order, in time linear in their number (a chain of 100,000 rewrites
// must not rescan the function each time): the nodes are taken out and put back one by one;
// a rewritten node is dropped, the nodes its pattern built are looked at next, and its uses are
// redirected as the sweep reaches them. Returns whether anything changed.
bool sweep(ir::Function& function, std::span<const Pattern> patterns) {
  auto& nodes = function.mutable_nodes();
  std::vector<std::unique_ptr<ir::Node>> pending = std::move(nodes);
  nodes.clear();
  nodes.reserve(pending.size());
  std::reverse(pending.begin(), pending.end());  // a stack: the next node is at the back
  std::unordered_map<const ir::Value*, ir::Value*> replaced;
  // Dropped nodes live until the sweep ends: their values' addresses are keys of `replaced`.
  std::vector<std::unique_ptr<ir::Node>> dropped;
  bool changed = false;
  while (!pending.empty()) {
    std::unique_ptr<ir::Node> node = std::move(pending.back());
    pending.pop_back();
    for (size_t k = 0; k < node->inputs().size(); ++k) {
      ir::Value* to = resolve_replaced(replaced, node->input(k));
      if (to != node->input(k)) node->set_input(k, to);
    }
    nodes.push_back(std::move(node));
    const size_t at = nodes.size() - 1;
    ir::Value* replacement = try_patterns(function, *nodes[at], patterns);
    if (replacement == nullptr) continue;
    // New nodes may match patterns themselves: look at them next, in the order they were built.
    for (size_t i = nodes.size(); i-- > at + 1;)
      pending.push_back(std::move(nodes[i]));
    nodes.resize(at + 1);
    replaced[nodes[at]->output()] = replacement;
    dropped.push_back(std::move(nodes[at]));
    nodes.pop_back();
    changed = true;
  }
  redirect_results(function, replaced);
  return changed;
}

}  // namespace

bool apply_patterns(ir::Function& function, std::span<const Pattern> patterns) {
  bool changed = false;
  while (sweep(function, patterns))
    changed = true;
  return changed;
}

}  // namespace kiln::passes
