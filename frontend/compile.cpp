#include "kiln/frontend/compile.h"

#include <fmt/format.h>

#include <stdexcept>

#include "kiln/codegen/compiler.h"
#include "kiln/frontend/inline_list.h"
#include "kiln/frontend/log.h"
#include "kiln/ir/infer.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/executable.h"

namespace kiln {

namespace {

// Runs on every call, so the happy path compares types and formats nothing.
void check_args(const ir::Function& function, std::span<const ir::HostTensor* const> args) {
  if (args.size() != function.params().size()) {
    throw TypeError(fmt::format("@{} takes {} arguments, got {}", function.name(),
                                function.params().size(), args.size()));
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const ir::Value* p = function.param(i);
    if (!args[i]->defined()) {
      throw ValueError(
          fmt::format("@{}: argument %{} is an undefined tensor", function.name(), p->name()));
    }
    if (args[i]->type() != p->type()) {
      throw TypeError(fmt::format("@{}: argument %{} must be {}, got {}", function.name(),
                                  p->name(), p->type().to_string(), args[i]->type().to_string()));
    }
  }
}

size_t byte_size(const ir::Value* v) {
  return static_cast<size_t>(v->type().shape.num_elements()) * ir::dtype_size(v->type().dtype);
}

// The runtime's view of `f`: its entry, workspace size and the byte size of every buffer.
runtime::Executable make_executable(const ir::Function& f, const codegen::CompiledModule& module) {
  std::vector<size_t> input_bytes, output_bytes;
  for (size_t i = 0; i < f.params().size(); ++i)
    input_bytes.push_back(byte_size(f.param(i)));
  for (const ir::Value* v : f.outputs())
    output_bytes.push_back(byte_size(v));
  for (const auto& u : f.updates())
    output_bytes.push_back(byte_size(u.value));
  return runtime::Executable(module.entry(), static_cast<size_t>(module.workspace_bytes()),
                             std::move(input_bytes), std::move(output_bytes));
}

// The IndexError the interpreter raises for the same bad index (ir/interp/shape.cpp, gather;
// tests/codegen_gather_test.cpp checks that the two messages agree), located at the node.
[[noreturn]] void throw_index_error(const passes::PipelineResult& result,
                                    const runtime::RunStatus& status) {
  const auto& kernels = result.kernels.kernels;
  const auto k = static_cast<size_t>(status.code - 1);
  KILN_CHECK(status.code >= 1 && k < kernels.size(), "compiled code reported an unknown kernel");
  // Op kernels hold one node; the first gather is the one the status names.
  const ir::Node* gather = nullptr;
  for (const ir::Node* node : kernels[k].nodes) {
    if (node->op() == ir::Op::gather) {
      gather = node;
      break;
    }
  }
  KILN_CHECK(gather != nullptr, "compiled code reported a bad index in a kernel with no gather");
  const int64_t axis =
      ir::normalize_axis(gather->attrs().get_int("axis"), gather->input(0)->type().shape.rank());
  const int64_t dim = status.bound;
  std::string valid = dim == 0 ? "no index is valid" : fmt::format("valid: 0 to {}", dim - 1);
  IndexError error(
      fmt::format("index {} (element {} of indices) is out of range for axis {} of size {} ({})",
                  status.value, status.position, axis, dim, valid));
  error.prefix(ir::op_name(gather->op()));
  ir::add_location(error, gather->scope(), gather->loc());
  throw error;
}

// Machine code from the LLVM backend, run on host buffers.
class NativeFunction final : public CompiledFunction {
 public:
  NativeFunction(passes::PipelineResult result, std::unique_ptr<codegen::CompiledModule> module)
      : result_(std::move(result)),
        module_(std::move(module)),
        executable_(make_executable(result_.function, *module_)) {}

  using CompiledFunction::run;
  ir::EvalResult run(std::span<const ir::HostTensor* const> args) const override {
    const ir::Function& f = result_.function;
    check_args(f, args);
    detail::InlineList<void*> inputs(args.size());
    for (size_t i = 0; i < args.size(); ++i)
      inputs[i] = const_cast<std::byte*>(args[i]->raw());
    ir::EvalResult out;
    detail::InlineList<void*> outputs(f.outputs().size() + f.updates().size());
    size_t next = 0;
    out.outputs.reserve(f.outputs().size());
    for (const ir::Value* v : f.outputs()) {
      out.outputs.push_back(ir::HostTensor::uninitialized(v->type()));
      outputs[next++] = out.outputs.back().raw();
    }
    out.updates.reserve(f.updates().size());
    for (const auto& u : f.updates()) {
      out.updates.push_back(ir::HostTensor::uninitialized(u.value->type()));
      outputs[next++] = out.updates.back().raw();
    }
    // The Executable reuses idle workspaces, so a call allocates none once warm, and gives
    // concurrent calls one each.
    runtime::RunStatus status;
    try {
      status = executable_.run(inputs.span(), outputs.span());
    } catch (const std::invalid_argument& e) {
      // Buffers come from HostTensors, which are always aligned and sized: a Kiln bug.
      throw InternalError(fmt::format("@{}: {}", f.name(), e.what()));
    }
    if (status.failed()) throw_index_error(result_, status);
    return out;
  }

  std::string compiled_ir() const override { return passes::print_pipeline_result(result_); }

 private:
  passes::PipelineResult result_;
  std::unique_ptr<codegen::CompiledModule> module_;  // owns the code executable_ calls
  runtime::Executable executable_;
};

// The reference interpreter on the optimized graph, for graphs codegen cannot emit yet.
class InterpretedFunction final : public CompiledFunction {
 public:
  explicit InterpretedFunction(passes::PipelineResult result) : result_(std::move(result)) {}

  using CompiledFunction::run;
  ir::EvalResult run(std::span<const ir::HostTensor* const> args) const override {
    std::vector<ir::HostTensor> values;
    values.reserve(args.size());
    for (const ir::HostTensor* a : args)
      values.push_back(*a);
    return ir::evaluate(result_.function, values);
  }
  std::string compiled_ir() const override {
    return passes::print_pipeline_result(result_) +
           "// runs in the interpreter: codegen cannot emit every op yet\n";
  }

 private:
  passes::PipelineResult result_;
};

}  // namespace

ir::EvalResult CompiledFunction::run(std::span<const ir::HostTensor> args) const {
  detail::InlineList<const ir::HostTensor*> pointers(args.size());
  for (size_t i = 0; i < args.size(); ++i)
    pointers[i] = &args[i];
  return run(pointers.span());
}

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
