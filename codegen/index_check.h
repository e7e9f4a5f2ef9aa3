// Internal: the run-time check of gather indices and of check_index operands. The entry runs it
// just before the kernel that reads them, so the kernels themselves need no error channel: they
// clamp a bad index to 0 and never read out of bounds, and the check reports the first bad index
// in kiln_frame.status (runtime/kiln_rt.h), which the caller turns into the interpreter's
// IndexError.
#pragma once

#include <cstddef>
#include <functional>

#include "kiln/codegen/llvm_util.h"
#include "kiln/passes/kernel_plan.h"

namespace kiln::codegen {

// Whether `kernel` has indices to check (a gather or check_index with a non-empty operand).
bool has_index_checks(const passes::Kernel& kernel);

// At b's insertion point (in the entry): checks the indices of every gather and check_index in
// `kernel`, the plan's kernel number `kernel_index`. `pointer` gives a value's buffer; `status`
// is the frame's status pointer (may be null at run time: then nothing is checked).
void emit_index_checks(Builder& b, size_t kernel_index, const passes::Kernel& kernel,
                       const std::function<llvm::Value*(const ir::Value*)>& pointer,
                       llvm::Value* status);

}  // namespace kiln::codegen
