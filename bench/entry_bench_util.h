// The generated entry of a one-input, one-output traced function, compiled on its own with
// preallocated buffers: the floor the call-overhead and elementwise benchmarks compare with.
#pragma once

#include <memory>

#include "kiln/codegen/compiler.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/kiln.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/kiln_rt.h"

namespace kiln::bench {

class EntryRunner {
 public:
  // Plans and compiles `graph` (traced for the input `x`) and allocates its output and workspace.
  EntryRunner(const ir::Function& graph, const Tensor& x)
      : x_(x),
        planned_(passes::run_pipeline(graph.clone())),
        module_(codegen::compile_jit(planned_.function, planned_.kernels, planned_.memory)),
        out_(x.type()),
        workspace_(f32, Shape{module_->workspace_bytes() / 4 + 1}),
        inputs_{const_cast<std::byte*>(x_.host().raw())},
        outputs_{out_.raw()},
        frame_{inputs_, outputs_, workspace_.raw(), nullptr} {}

  void run() { module_->entry()(&frame_); }

 private:
  Tensor x_;
  passes::PipelineResult planned_;
  std::unique_ptr<codegen::CompiledModule> module_;
  ir::HostTensor out_, workspace_;
  void* inputs_[1];
  void* outputs_[1];
  kiln_frame frame_;
};

}  // namespace kiln::bench
