// The result of fusion and memory planning: which nodes run together in one generated kernel,
// and where every value lives at run time. Codegen reads these; `kiln dump` will draw them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kiln/ir/function.h"

namespace kiln::passes {

enum class KernelKind {
  loop,       // elementwise and broadcast ops over the output's index space, one fused loop
  reduction,  // a fused loop whose root is a reduction (elementwise producers fused in front)
  matmul,     // matmul with an optional fused elementwise epilogue (bias add, activation)
  conv2d,     // conv2d with an optional fused elementwise epilogue
  op,         // one op with its own emitter (slice, gather, concat, pad, softmax, pools, ...)
  scan,       // one scan node: its body, planned on its own (ScanPlan), run once per step
};
// Invariants codegen may rely on (plan_kernels guarantees them; see passes/fusion.h):
// - loop: every node is elementwise (kElementwise) or broadcast_to, and every node's result has
//   the same shape, the kernel's index space (the last node's shape). Kernel inputs broadcast
//   into it NumPy-style. Every kernel output has that shape.
// - reduction: the last node is a reduce_*/argmax/argmin; the nodes before it are loop nodes
//   whose results all have the shape of the reduction's operand. Only the reduction's result
//   leaves the kernel.
// - matmul / conv2d: the first node is the matmul/conv2d; each later node is a loop node whose
//   result has the matmul/conv2d result's shape and takes the previous node's result as one
//   operand (other operands are kernel inputs, broadcast). Only the last node's result leaves.
// - op, scan: exactly one node; a scan kernel also has Kernel::scan.
// - The last node's results are always kernel outputs (even when nothing reads them); for an
//   op kernel that is every result of its node (split). Constants are never in a kernel.
// - Kernels are in a topological order: every kernel input is a parameter, a constant or an
//   output of an earlier kernel.

std::string_view kernel_kind_name(KernelKind kind);

struct ScanPlan;

struct Kernel {
  KernelKind kind = KernelKind::op;
  // Nodes of the function computed by this kernel, in topological order. For matmul/conv2d the
  // first node is the matmul/conv2d and the rest its epilogue; for reduction the reduction node
  // is the last; constants are not kernels (they are embedded in the module).
  std::vector<const ir::Node*> nodes;
  // Values the kernel reads that are computed outside it (params, constants, other kernels).
  std::vector<const ir::Value*> inputs;
  // Values computed here that are read after it or are results/updates of the function.
  std::vector<const ir::Value*> outputs;
  // For a scan kernel: the plans of its body (which the node's `body` attribute holds).
  std::shared_ptr<const ScanPlan> scan;
};

struct KernelPlan {
  std::vector<Kernel> kernels;
};

// Where one value lives at run time.
struct Slot {
  enum class Kind {
    param,      // frame->inputs[index]
    output,     // frame->outputs[index] (function results, then updates)
    workspace,  // frame->workspace + offset
    constant,   // a constant node's value, embedded in the module
  };
  Kind kind = Kind::workspace;
  int64_t index = 0;   // param / output index
  int64_t offset = 0;  // byte offset in the workspace (64-byte aligned)
  int64_t bytes = 0;
};

struct MemoryPlan {
  // Every parameter, constant and kernel output has a slot.
  std::unordered_map<const ir::Value*, Slot> slots;
  int64_t workspace_bytes = 0;
  // Outputs no kernel writes: after the last kernel, codegen copies `bytes` bytes from the
  // value's slot (a parameter, a constant, or another output slot: never the workspace) into
  // frame->outputs[output_index]. Happens for a result that is a parameter or a constant, and
  // for a value returned twice or both returned and used as an update (the first gets the slot).
  struct OutputCopy {
    int64_t output_index = 0;
    const ir::Value* value = nullptr;
    int64_t bytes = 0;
  };
  std::vector<OutputCopy> copies;
  // output → input of the same kernel whose workspace block it reuses (same offset). Chosen for
  // loop kernels, when the input dies at that kernel and has the output's shape and element
  // size, so element i is read before element i is written and nothing else is touched; and for
  // a reshape kernel whose operand dies there, which then moves no bytes (is_view_in_place).
  std::unordered_map<const ir::Value*, const ir::Value*> in_place;
  // Kernel index → workspace bytes only that kernel uses (live at it alone). A scan kernel's is
  // two blocks per carry (the ping-pong carries between steps), then its body's workspace.
  std::unordered_map<size_t, Slot> scratch;
};

// A scan kernel's body, planned like any function: compiled once and called once per step, so
// nothing in it grows with the scan's length.
struct ScanPlan {
  std::shared_ptr<const ir::Function> body;
  KernelPlan kernels;
  MemoryPlan memory;
};

// Every kernel of `plan` and of its scan bodies, numbered: the plan's own kernels first (their
// indices unchanged), then each scan kernel's body kernels in order, recursively. Compiled code
// reports a bad index as 1 + a kernel's number here (codegen/index_check.h).
std::vector<const Kernel*> number_kernels(const KernelPlan& plan);

// The plan as text: the function's nodes grouped by kernel, e.g.
//   kernel 0 loop(%x) -> %2 { %0 = mul(...) ...; %2 = ... }
std::string print_plan(const ir::Function& function, const KernelPlan& plan);

// Where each kernel's outputs live, e.g.
//   workspace 128 bytes
//   kernel 0: %1 workspace+0 (16 bytes), %2 output 0 (16 bytes)
//   kernel 1: %3 workspace+0 (16 bytes, in place of %1)
//   copy output 1 <- %x (16 bytes)
std::string print_memory_plan(const ir::Function& function, const KernelPlan& plan,
                              const MemoryPlan& memory);

}  // namespace kiln::passes
