#include "kiln/frontend/compile.h"

#include <fmt/format.h>

#include "kiln/codegen/compiler.h"
#include "kiln/frontend/log.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/kiln_rt.h"

namespace kiln {

namespace {

void check_args(const ir::Function& function, std::span<const ir::HostTensor> args) {
  if (args.size() != function.params().size()) {
    throw TypeError(fmt::format("@{} takes {} arguments, got {}", function.name(),
                                function.params().size(), args.size()));
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const ir::Value* p = function.param(i);
    if (args[i].type() != p->type()) {
      throw TypeError(fmt::format("@{}: argument %{} must be {}, got {}", function.name(),
                                  p->name(), p->type().to_string(), args[i].type().to_string()));
    }
  }
}

// Machine code from the LLVM backend, run on host buffers.
class NativeFunction final : public CompiledFunction {
 public:
  NativeFunction(passes::PipelineResult result, std::unique_ptr<codegen::CompiledModule> module)
      : result_(std::move(result)), module_(std::move(module)) {}

  ir::EvalResult run(std::span<const ir::HostTensor> args) const override {
    const ir::Function& f = result_.function;
    check_args(f, args);
    std::vector<void*> inputs;
    for (const ir::HostTensor& a : args)
      inputs.push_back(const_cast<std::byte*>(a.raw()));
    ir::EvalResult out;
    std::vector<void*> outputs;
    for (const ir::Value* v : f.outputs()) {
      out.outputs.emplace_back(v->type());
      outputs.push_back(out.outputs.back().raw());
    }
    for (const auto& u : f.updates()) {
      out.updates.emplace_back(u.value->type());
      outputs.push_back(out.updates.back().raw());
    }
    // One workspace per call keeps concurrent calls independent.
    std::unique_ptr<void, void (*)(void*)> workspace(
        kiln_rt_alloc(static_cast<size_t>(module_->workspace_bytes())), kiln_rt_free);
    if (!workspace) throw std::bad_alloc();
    kiln_frame frame{inputs.data(), outputs.data(), workspace.get()};
    module_->entry()(&frame);
    return out;
  }

  std::string compiled_ir() const override { return passes::print_pipeline_result(result_); }

 private:
  passes::PipelineResult result_;
  std::unique_ptr<codegen::CompiledModule> module_;
};

// The reference interpreter on the optimized graph, for graphs codegen cannot emit yet.
class InterpretedFunction final : public CompiledFunction {
 public:
  explicit InterpretedFunction(passes::PipelineResult result) : result_(std::move(result)) {}
  ir::EvalResult run(std::span<const ir::HostTensor> args) const override {
    return ir::evaluate(result_.function, args);
  }
  std::string compiled_ir() const override {
    return passes::print_pipeline_result(result_) +
           "// runs in the interpreter: codegen cannot emit every op yet\n";
  }

 private:
  passes::PipelineResult result_;
};

}  // namespace

std::unique_ptr<CompiledFunction> compile(ir::Function function) {
  passes::PipelineResult result = passes::run_pipeline(std::move(function));
  std::string why;
  if (!codegen::supports(result.function, &why)) {
    log_message(fmt::format("@{} runs in the interpreter: {}", result.function.name(), why));
    return std::make_unique<InterpretedFunction>(std::move(result));
  }
  auto module = codegen::compile_jit(result.function, result.kernels, result.memory);
  return std::make_unique<NativeFunction>(std::move(result), std::move(module));
}

}  // namespace kiln
