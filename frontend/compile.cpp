#include "kiln/frontend/compile.h"

#include "kiln/ir/printer.h"

namespace kiln {

namespace {
// Runs the traced graph through the reference interpreter. A working step until the LLVM
// backend (codegen/) takes over; it keeps kiln::function usable and testable meanwhile.
class InterpretedFunction final : public CompiledFunction {
 public:
  explicit InterpretedFunction(ir::Function function) : function_(std::move(function)) {}
  ir::EvalResult run(std::span<const ir::HostTensor> args) const override {
    return ir::evaluate(function_, args);
  }
  std::string compiled_ir() const override { return ir::print(function_); }

 private:
  ir::Function function_;
};
}  // namespace

std::unique_ptr<CompiledFunction> compile(ir::Function function) {
  return std::make_unique<InterpretedFunction>(std::move(function));
}

}  // namespace kiln
