#include "kiln/passes/rewrite.h"

#include <algorithm>

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

void replace_all_uses(ir::Function& function, const ir::Value* from, ir::Value* to, size_t first) {
  auto& nodes = function.mutable_nodes();
  for (size_t i = first; i < nodes.size(); ++i) {
    ir::Node& node = *nodes[i];
    for (size_t k = 0; k < node.inputs().size(); ++k)
      if (node.input(k) == from) node.set_input(k, to);
  }
  std::vector<ir::Value*> outputs = function.outputs();
  std::replace(outputs.begin(), outputs.end(), const_cast<ir::Value*>(from), to);
  function.set_outputs(std::move(outputs));
  for (auto& update : function.mutable_updates())
    if (update.value == from) update.value = to;
}

namespace {

// Tries the patterns on node `i`; on a match, moves the new nodes in front of it, redirects its
// uses and removes it. Returns the index of the next node to look at.
size_t rewrite_node(ir::Function& function, size_t i, std::span<const Pattern> patterns,
                    bool& changed) {
  auto& nodes = function.mutable_nodes();
  const ir::Node& node = *nodes[i];
  if (node.num_outputs() != 1) return i + 1;
  size_t before = nodes.size();
  for (const Pattern& pattern : patterns) {
    Rewriter rewriter(function, node);
    ir::Value* replacement = pattern(node, rewriter);
    if (replacement == nullptr) {
      KILN_CHECK(nodes.size() == before, "a pattern that did not match created nodes");
      continue;
    }
    KILN_CHECK(replacement->type() == node.output()->type(),
               "a rewrite changed the type of a value");
    size_t added = nodes.size() - before;
    std::rotate(nodes.begin() + static_cast<ptrdiff_t>(i),
                nodes.begin() + static_cast<ptrdiff_t>(before), nodes.end());
    size_t at = i + added;  // the rewritten node's new index
    replace_all_uses(function, nodes[at]->output(), replacement, at + 1);
    nodes.erase(nodes.begin() + static_cast<ptrdiff_t>(at));
    changed = true;
    // New nodes may match patterns themselves: look at them next.
    return i;
  }
  return i + 1;
}

}  // namespace

bool apply_patterns(ir::Function& function, std::span<const Pattern> patterns) {
  bool changed = false;
  for (bool again = true; again;) {
    again = false;
    for (size_t i = 0; i < function.nodes().size();)
      i = rewrite_node(function, i, patterns, again);
    changed = changed || again;
  }
  return changed;
}

}  // namespace kiln::passes
