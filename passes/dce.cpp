#include "kiln/passes/dce.h"

#include <unordered_set>

namespace kiln::passes {

bool eliminate_dead_code(ir::Function& function) {
  std::unordered_set<const ir::Value*> live(function.outputs().begin(), function.outputs().end());
  for (const auto& u : function.updates())
    live.insert(u.value);
  auto& nodes = function.mutable_nodes();
  std::vector<bool> keep(nodes.size(), false);
  for (size_t i = nodes.size(); i-- > 0;) {
    const ir::Node& node = *nodes[i];
    for (size_t o = 0; o < node.num_outputs() && !keep[i]; ++o)
      keep[i] = live.contains(node.output(o));
    if (keep[i]) live.insert(node.inputs().begin(), node.inputs().end());
  }
  size_t kept = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (keep[i]) nodes[kept++] = std::move(nodes[i]);
  }
  bool changed = kept != nodes.size();
  nodes.resize(kept);
  return changed;
}

}  // namespace kiln::passes
