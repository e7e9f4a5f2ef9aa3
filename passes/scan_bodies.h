// Passes that also run inside loop bodies: a `scan` node's body is a closed function held in its
// `body` attribute (immutable and shared), so a pass changes a clone and swaps in a new attribute.
#pragma once

#include <functional>

#include "kiln/ir/function.h"

namespace kiln::passes {

// Runs `pass` on a clone of every scan body in `function` (bodies of bodies first), and swaps in
// the clones that changed; returns whether any did. Body types are left as they were.
bool transform_bodies(ir::Function& function, const std::function<bool(ir::Function&)>& pass);

// `pass` run on every scan body (transform_bodies), then on the function itself.
std::function<bool(ir::Function&)> with_bodies(std::function<bool(ir::Function&)> pass);

}  // namespace kiln::passes
