// The result of fusion and memory planning: which nodes run together in one generated kernel,
// and where every value lives at run time. Codegen reads these; `kiln dump` will draw them.
#pragma once

#include <cstdint>
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
};

std::string_view kernel_kind_name(KernelKind kind);

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
  std::unordered_map<const ir::Value*, Slot> slots;
  int64_t workspace_bytes = 0;
};

// The plan as text: the function's nodes grouped by kernel, e.g.
//   kernel 0 loop(%x) -> %2 { %0 = mul(...) ...; %2 = ... }
std::string print_plan(const ir::Function& function, const KernelPlan& plan);

}  // namespace kiln::passes
