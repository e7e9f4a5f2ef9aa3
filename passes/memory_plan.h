// Memory planning: a Slot for every value the kernels of a plan read or write (see
// passes/kernel_plan.h), with intermediates packed into one workspace by liveness.
//
// - Parameters → Slot::param (index = parameter index); constants → Slot::constant.
// - Function results, then updates, are output slots 0..R-1, R..R+U-1. The first time a value
//   computed by a kernel appears there, it gets that output slot and its kernel writes straight
//   into frame->outputs[i]. Every other entry (a parameter or constant returned, a value returned
//   twice, a result that is also an update) is listed in MemoryPlan::copies: codegen copies it
//   after the last kernel. Frame outputs are assumed not to alias frame inputs.
// - Every other kernel output lives in the workspace at a 64-byte aligned offset. A value is
//   live from its kernel to the last kernel that reads it; blocks of dead values are reused
//   (first fit by offset) and a loop kernel's output may take over the block of an input that
//   dies there when both have the same shape and element size (MemoryPlan::in_place).
#pragma once

#include "kiln/ir/function.h"
#include "kiln/passes/kernel_plan.h"

namespace kiln::passes {

// Workspace offsets and sizes are multiples of this.
inline constexpr int64_t kWorkspaceAlignment = 64;

// Plans the memory of `plan`'s kernels over `function` (the plan must come from it).
MemoryPlan plan_memory(const ir::Function& function, const KernelPlan& plan);

// True for a reshape kernel whose output took its operand's block: nothing to compute or copy.
bool is_view_in_place(const Kernel& kernel, const MemoryPlan& memory);

// Throws InternalError if two workspace values live at the same time share bytes (other than
// an in-place pair at the kernel where one dies and the other is born), if an offset is not
// aligned or a block ends past workspace_bytes, or if a kernel value has no slot.
void check_memory_plan(const ir::Function& function, const KernelPlan& plan,
                       const MemoryPlan& memory);

}  // namespace kiln::passes
