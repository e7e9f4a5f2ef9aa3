#include "kiln/passes/scan_bodies.h"

#include <memory>

namespace kiln::passes {

bool transform_bodies(ir::Function& function, const std::function<bool(ir::Function&)>& pass) {
  bool changed = false;
  for (const auto& node : function.nodes()) {
    if (node->op() != ir::Op::scan) continue;
    ir::Function body = node->attrs().get_function("body").function().clone();
    bool body_changed = transform_bodies(body, pass);
    body_changed = pass(body) || body_changed;
    if (!body_changed) continue;
    node->mutable_attrs().set_function("body",
                                       std::make_shared<const ir::Function>(std::move(body)));
    changed = true;
  }
  return changed;
}

std::function<bool(ir::Function&)> with_bodies(std::function<bool(ir::Function&)> pass) {
  return [pass = std::move(pass)](ir::Function& function) {
    bool changed = transform_bodies(function, pass);
    return pass(function) || changed;
  };
}

}  // namespace kiln::passes
