// Turns a traced ir::Function into something callable: the pass pipeline, then codegen.
// kiln::function calls this once per signature.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "kiln/ir/function.h"
#include "kiln/ir/host_tensor.h"
#include "kiln/ir/interpreter.h"

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

}  // namespace kiln
