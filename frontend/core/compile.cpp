#include "kiln/frontend/core/compile.h"

#include <fmt/format.h>

#include <new>
#include <stdexcept>

#include "kiln/codegen/compiler.h"
#include "kiln/frontend/core/inline_list.h"
#include "kiln/frontend/core/log.h"
#include "kiln/ir/infer.h"
#include "kiln/ir/interpreter.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/disk_cache.h"
#include "kiln/runtime/disk_cache.h"
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

// Machine code from the LLVM backend, run on host buffers.
class NativeFunction final : public CompiledFunction {
 public:
  NativeFunction(passes::PipelineResult result, std::unique_ptr<codegen::CompiledModule> module)
      : result_(std::move(result)),
        module_(std::move(module)),
        executable_(detail::make_executable(result_.function, *module_)),
        who_(fmt::format("@{}", result_.function.name())) {}

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
    for (size_t i = 0; i < f.outputs().size(); ++i) {
      out.outputs.push_back(allocate_result(f.outputs()[i], fmt::format("result {}", i)));
      outputs[next++] = out.outputs.back().raw();
    }
    out.updates.reserve(f.updates().size());
    for (const auto& u : f.updates()) {
      out.updates.push_back(
          allocate_result(u.value, fmt::format("the update of %{}", u.param->name())));
      outputs[next++] = out.updates.back().raw();
    }
    // The Executable reuses idle workspaces, so a call allocates none once warm, and gives
    // concurrent calls one each.
    detail::run_executable(executable_, result_, inputs.span(), outputs.span(), who_,
                           "that holds the compiled function's intermediate values");
    return out;
  }

  std::string compiled_ir() const override { return passes::print_pipeline_result(result_); }

 private:
  // A buffer for `value`; one too large to allocate is a ResourceError located where the user
  // made the value.
  ir::HostTensor allocate_result(const ir::Value* value, const std::string& what) const {
    try {
      return ir::HostTensor::uninitialized(value->type());
    } catch (ResourceError& e) {
      e.prefix(fmt::format("@{}: {}", result_.function.name(), what));
      if (const ir::Node* producer = value->producer())
        ir::add_location(e, producer->scope(), producer->loc());
      throw;
    }
  }

  passes::PipelineResult result_;
  std::unique_ptr<codegen::CompiledModule> module_;  // owns the code executable_ calls
  runtime::Executable executable_;
  std::string who_;  // "@name", as errors name the function
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
  // Machine code through the persistent cache (KILN_CACHE_DIR; off with KILN_CACHE=off): a second
  // process compiling the same function loads the first one's code instead of running LLVM.
  auto module = codegen::compile_jit(result.function, result.kernels, result.memory, {},
                                     &runtime::DiskCache::process_default());
  return std::make_unique<NativeFunction>(std::move(result), std::move(module));
}

namespace detail {

runtime::Executable make_executable(const ir::Function& f, const codegen::CompiledModule& module) {
  std::vector<size_t> input_bytes, output_bytes;
  for (size_t i = 0; i < f.params().size(); ++i)
    input_bytes.push_back(f.param(i)->type().nbytes());
  for (const ir::Value* v : f.outputs())
    output_bytes.push_back(v->type().nbytes());
  for (const auto& u : f.updates())
    output_bytes.push_back(u.value->type().nbytes());
  return runtime::Executable(module.entry(), static_cast<size_t>(module.workspace_bytes()),
                             std::move(input_bytes), std::move(output_bytes));
}

// The IndexError for the bad index compiled code reported in `status` (see run_executable).
void throw_index_error(const passes::PipelineResult& result, const runtime::RunStatus& status) {
  // Kernels inside scan bodies are numbered after the function's own (passes::number_kernels).
  const std::vector<const passes::Kernel*> kernels = passes::number_kernels(result.kernels);
  const auto k = static_cast<size_t>(status.code - 1);
  KILN_CHECK(status.code >= 1 && k < kernels.size(), "compiled code reported an unknown kernel");
  // Op kernels hold one node; the first checked one is the one the status names.
  const ir::Node* checked = nullptr;
  for (const ir::Node* node : kernels[k]->nodes) {
    if (node->op() == ir::Op::gather || node->op() == ir::Op::check_index) {
      checked = node;
      break;
    }
  }
  KILN_CHECK(checked != nullptr, "compiled code reported a bad index in a kernel that checks none");
  IndexError error(ir::bad_index_message(checked->op(), checked->attrs(),
                                         checked->input(0)->type().shape, status.value,
                                         status.position));
  error.prefix(ir::op_name(checked->op()));
  ir::add_location(error, checked->scope(), checked->loc());
  throw error;
}

void run_executable(const runtime::Executable& executable, const passes::PipelineResult& result,
                    std::span<void* const> inputs, std::span<void* const> outputs,
                    std::string_view who, std::string_view workspace_for) {
  runtime::RunStatus status;
  try {
    status = executable.run(inputs, outputs);
  } catch (const std::invalid_argument& e) {
    // Callers pass buffers of HostTensors, which are always aligned and sized: a Kiln bug.
    throw InternalError(fmt::format("@{}: {}", result.function.name(), e.what()));
  } catch (const std::bad_alloc&) {
    throw ResourceError(fmt::format(
        "{}: cannot allocate the {} workspace {}: more memory than this machine can give", who,
        ir::describe_bytes(executable.workspace_bytes()), workspace_for));
  }
  if (status.failed()) throw_index_error(result, status);
}

}  // namespace detail
}  // namespace kiln
