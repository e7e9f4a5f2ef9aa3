// Turns a traced ir::Function into something callable: the pass pipeline, then codegen.
// kiln::function calls this once per signature.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "kiln/ir/function.h"
#include "kiln/ir/host_tensor.h"
#include "kiln/ir/interpreter.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/executable.h"

namespace kiln::codegen {
class CompiledModule;
}  // namespace kiln::codegen

namespace kiln {

class CompiledFunction {
 public:
  virtual ~CompiledFunction() = default;
  // Runs on arguments matching the function's parameters (TypeError if they do not, ValueError
  // for an undefined one); returns results and updated values. May run on several threads at
  // once. The arguments are passed by pointer so that callers need not copy tensors.
  virtual ir::EvalResult run(std::span<const ir::HostTensor* const> args) const = 0;
  // The same, for arguments held in a contiguous list.
  ir::EvalResult run(std::span<const ir::HostTensor> args) const;
  // The IR after the pass pipeline, with the kernel plan, as text.
  virtual std::string compiled_ir() const = 0;
};

// Compiles `function`. Throws CompileError (naming the kernel) if code generation fails.
std::unique_ptr<CompiledFunction> compile(ir::Function function);

namespace detail {

// The runtime's view of `f` compiled as `module`: its entry, workspace size and the byte size of
// every buffer (parameters, then results, then updates).
runtime::Executable make_executable(const ir::Function& f, const codegen::CompiledModule& module);

// Runs `executable`, compiled from `result`, on buffers that match it, and turns its failures into
// Kiln errors: a bad index compiled code reports is the IndexError the interpreter raises (the
// same ir::bad_index_message), located at the node that checked it; a workspace too large for
// the machine is the ResourceError "`who`: cannot allocate the N workspace `workspace_for`: ...";
// a buffer the runtime refuses (a Kiln bug) is an InternalError naming the compiled function.
void run_executable(const runtime::Executable& executable, const passes::PipelineResult& result,
                    std::span<void* const> inputs, std::span<void* const> outputs,
                    std::string_view who, std::string_view workspace_for);

// Throws the IndexError for the bad index that code compiled from `result` reported in `status`
// (status.failed()), located at the node that checked it, as run_executable does.
[[noreturn]] void throw_index_error(const passes::PipelineResult& result,
                                    const runtime::RunStatus& status);

// The one-node function `op` on parameters of `params` (named eager_<op>), through the pass
// pipeline: what an eager kernel is compiled from, for the CPU in eager.cpp and
// for GPUs in device_ops.cpp (which lower convolutions by im2col).
passes::PipelineResult plan_one_op(
    ir::Op op, const ir::Attrs& attrs, std::span<const ir::TensorType> params,
    passes::ConvLowering conv_lowering = passes::ConvLowering::implicit);

}  // namespace detail
}  // namespace kiln
