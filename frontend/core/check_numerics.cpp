#include "kiln/frontend/core/check_numerics.h"

#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <unordered_map>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/ir/infer.h"
#include "kiln/ir/interpreter.h"

namespace kiln {

namespace {

std::atomic<bool>& enabled() {
  static std::atomic<bool> flag{false};
  return flag;
}

template <class T>
bool finite_values(const ir::HostTensor& t) {
  for (T v : t.values<T>())
    if (!std::isfinite(v)) return false;
  return true;
}

// "NaN", "Inf" or "NaN and Inf" for a tensor that is not all finite.
template <class T>
std::string what_is_wrong(const ir::HostTensor& t) {
  bool nan = false, inf = false;
  for (T v : t.values<T>()) {
    nan = nan || std::isnan(v);
    inf = inf || std::isinf(v);
  }
  return nan && inf ? "NaN and Inf" : nan ? "NaN" : "Inf";
}

std::string describe(const ir::HostTensor& t) {
  std::string what =
      t.dtype() == ir::DType::f32 ? what_is_wrong<float>(t) : what_is_wrong<double>(t);
  return fmt::format("{} in a tensor of type {}", what, t.type().to_string());
}

}  // namespace

Tensor check_numerics(const Tensor& t, std::string message, std::source_location loc) {
  if (!t.defined()) detail::raise<ValueError>("check_numerics", {}, "undefined Tensor", loc);
  if (!ir::is_floating(t.dtype())) {
    detail::raise<TypeError>("check_numerics", {t}, "the tensor must be floating", loc);
  }
  if (detail::Trace* trace = detail::current_trace()) {
    trace->add_check(t, std::move(message), loc);
    return t;
  }
  if (t.is_symbolic()) {
    detail::raise<ValueError>("check_numerics", {t},
                              "a symbolic tensor was used outside the trace that made it", loc);
  }
  // A tensor on a GPU (a variable's value there) is checked on a host copy.
  const ir::HostTensor host = t.device().is_cpu() ? t.host() : t.to(Device::cpu(), loc).host();
  if (!detail::all_finite(host)) {
    detail::raise<ValueError>("check_numerics", {t}, fmt::format("{}: {}", message, describe(host)),
                              loc);
  }
  return t;
}

void enable_check_numerics() {
  enabled() = true;
}

void disable_check_numerics() {
  enabled() = false;
}

bool check_numerics_enabled() {
  return enabled().load(std::memory_order_relaxed);
}

namespace detail {

bool all_finite(const ir::HostTensor& t) {
  switch (t.dtype()) {
    case ir::DType::f32:
      return finite_values<float>(t);
    case ir::DType::f64:
      return finite_values<double>(t);
    default:
      return true;
  }
}

void check_op_results(ir::Op op, std::span<const Tensor> inputs, std::span<const Tensor> outputs,
                      const std::source_location& loc) {
  for (const Tensor& out : outputs) {
    if (all_finite(out.host())) continue;
    for (const Tensor& in : inputs)
      if (!all_finite(in.host())) return;  // not made here: an earlier op (or the data) did
    raise<ValueError>(ir::op_name(op), inputs,
                      fmt::format("check_numerics: the op produced {}", describe(out.host())), loc);
  }
}

void check_traced_value(const ir::HostTensor& value, const std::string& message,
                        const std::string& scope, const ir::SourceLoc& loc) {
  if (all_finite(value)) return;
  ValueError error(fmt::format("check_numerics: {}: {}", message, describe(value)));
  ir::add_location(error, scope, loc);
  throw error;
}

void locate_non_finite(const ir::Function& graph, std::span<const ir::HostTensor* const> args,
                       const std::string& function) {
  std::unordered_map<const ir::Value*, ir::HostTensor> values;
  for (size_t i = 0; i < args.size(); ++i)
    values[graph.param(i)] = *args[i];
  for (const auto& node : graph.nodes()) {
    std::vector<ir::HostTensor> inputs;
    bool finite_inputs = true;
    for (const ir::Value* v : node->inputs()) {
      inputs.push_back(values.at(v));
      finite_inputs = finite_inputs && all_finite(inputs.back());
    }
    std::vector<ir::HostTensor> outputs =
        ir::run_op(node->op(), inputs, node->attrs(), node->output_types());
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (finite_inputs && !all_finite(outputs[i])) {
        ValueError error(fmt::format("check_numerics: the op produced {} (in kiln::function '{}')",
                                     describe(outputs[i]), function));
        error.prefix(ir::op_name(node->op()));
        error.add_context(fmt::format("operands: {}", ir::types_to_string(node->input_types())));
        ir::add_location(error, node->scope(), node->loc());
        throw error;
      }
      values[node->output(i)] = std::move(outputs[i]);
    }
  }
}

}  // namespace detail

}  // namespace kiln
