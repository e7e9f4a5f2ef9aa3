// The `scan` pipeline step: drops the parts of a scan nobody reads, so the loop computes no more
// than it must (an inference graph traced with a tape keeps no saved carries, unused per-step
// outputs are not stacked), and replaces a scan of length 0 by its initial carries.
#pragma once

#include "kiln/ir/function.h"

namespace kiln::passes {

// For every scan node of `function` (not inside bodies; run it through with_bodies for those):
// - length 0: its final carries become the initial carries, its stacked results empty
//   constants, and the node goes;
// - otherwise a stacked y nobody reads is dropped from the body's outputs (with the body nodes
//   only it needed), and save_carries is turned off when no saved carry is read.
// Returns whether anything changed.
bool simplify_scans(ir::Function& function);

}  // namespace kiln::passes
