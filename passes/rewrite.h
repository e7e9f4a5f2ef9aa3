// The rewrite driver behind canonicalize: local patterns applied to every node until none
// applies. A pattern looks at one single-result node and returns the value that replaces its
// result (an existing value or one it builds with the Rewriter), or nullptr.
#pragma once

#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include "kiln/ir/function.h"
#include "kiln/ir/host_tensor.h"

namespace kiln::passes {

// Builds replacement nodes just before the node being rewritten, with its scope and location.
class Rewriter {
 public:
  Rewriter(ir::Function& function, const ir::Node& node) : function_(function), node_(node) {}
  // A new node of `op` (result type inferred); returns its single result.
  ir::Value* create(ir::Op op, std::vector<ir::Value*> inputs, ir::Attrs attrs = {});
  // A new constant node holding `value`.
  ir::Value* constant(ir::HostTensor value);

 private:
  ir::Function& function_;
  const ir::Node& node_;
};

using Pattern = std::function<ir::Value*(const ir::Node&, Rewriter&)>;

// Applies `patterns` (first match wins) to every single-result node, repeatedly, until no
// pattern applies. A rewritten node's uses move to its replacement and the node is removed.
// Returns whether anything changed.
bool apply_patterns(ir::Function& function, std::span<const Pattern> patterns);

// The value that stands for `value` after a pass dropped nodes: `replaced` maps each dropped
// node's result to its replacement, which may itself have been replaced since.
ir::Value* resolve_replaced(const std::unordered_map<const ir::Value*, ir::Value*>& replaced,
                            ir::Value* value);

// Makes the function's outputs and variable updates use their replacements in `replaced`
// (see resolve_replaced); the passes that drop nodes redirect operands themselves as they walk.
void redirect_results(ir::Function& function,
                      const std::unordered_map<const ir::Value*, ir::Value*>& replaced);

}  // namespace kiln::passes
