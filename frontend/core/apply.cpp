#include "kiln/frontend/core/apply.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

#include "kiln/frontend/core/check_numerics.h"
#include "kiln/frontend/core/device_ops.h"
#include "kiln/frontend/core/eager.h"
#include "kiln/frontend/core/gradient_tape.h"
#include "kiln/frontend/core/inline_list.h"
#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/ir/function.h"
#include "kiln/ir/infer.h"

namespace kiln::detail {

std::vector<Tensor> apply(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
                          const std::source_location& loc) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      raise<ValueError>(ir::op_name(op), inputs,
                        fmt::format("operand {} is an undefined Tensor", i), loc);
    }
  }
  // Tracing: the op becomes a node of the active trace (creation ops too, so constants made
  // inside a traced function are part of its IR); errors carry the scope and the user's line.
  // Concrete operands (on any device) become bindings of the trace.
  if (Trace* trace = current_trace()) {
    std::vector<Tensor> results = trace->append(op, inputs, attrs, loc);
    if (tapes_recording()) record_on_tapes(op, inputs, attrs, results, loc);
    return results;
  }
  for (const Tensor& t : inputs) {
    if (t.is_symbolic()) {
      raise<ValueError>(ir::op_name(op), inputs,
                        "a symbolic tensor was used outside the kiln::function trace that made "
                        "it; return tensors from the traced function instead of keeping them",
                        loc);
    }
  }

  std::vector<TensorType> types;
  InlineList<const ir::HostTensor*> values(inputs.size());
  types.reserve(inputs.size());
  bool on_host = true;
  for (size_t i = 0; i < inputs.size(); ++i) {
    types.push_back(inputs[i].type());
    values[i] = TensorAccess::host_value(inputs[i]);
    on_host = on_host && values[i] != nullptr;
  }
  // Operands on a GPU: mixed devices are an error before anything else is checked.
  Device device;
  if (!on_host) device = operands_device(op, inputs, loc);

  std::vector<TensorType> out_types;
  try {
    out_types = ir::infer_types(op, types, attrs);
  } catch (InternalError&) {
    throw;
  } catch (Error& e) {
    add_user_location(e, loc);
    throw;
  }

  if (!on_host) {
    std::vector<Tensor> results = run_on_device(op, inputs, attrs, out_types, device, loc);
    if (tapes_recording()) record_on_tapes(op, inputs, attrs, results, loc);
    return results;
  }

  std::vector<ir::HostTensor> outs;
  try {
    outs = run_eager(op, values.span(), attrs, out_types);
  } catch (InternalError&) {
    throw;
  } catch (Error& e) {
    // run_eager names the op; a data-dependent failure also needs the operands to make sense.
    if (!types.empty()) e.add_context(fmt::format("operands: {}", ir::types_to_string(types)));
    add_user_location(e, loc);
    throw;
  }

  std::vector<Tensor> results;
  results.reserve(outs.size());
  for (ir::HostTensor& value : outs)
    results.emplace_back(std::move(value));
  if (check_numerics_enabled()) check_op_results(op, inputs, results, loc);
  // Creation ops under a DeviceScope are made on the host and copied to its device.
  if (inputs.empty()) place_created(results, loc);
  if (tapes_recording()) record_on_tapes(op, inputs, attrs, results, loc);
  return results;
}

std::vector<const ir::Node*> nodes_needed(const ir::Function& function, size_t first,
                                          std::span<ir::Value* const> wanted) {
  std::unordered_set<const ir::Value*> needed;
  for (const ir::Value* v : wanted)
    if (v != nullptr) needed.insert(v);
  auto nodes = function.nodes();
  std::vector<const ir::Node*> result;
  for (size_t n = nodes.size(); n-- > first;) {
    const ir::Node& node = *nodes[n];
    bool used = false;
    for (size_t i = 0; i < node.num_outputs(); ++i)
      used = used || needed.count(node.output(i)) != 0;
    if (!used) continue;
    result.push_back(&node);
    for (const ir::Value* v : node.inputs())
      needed.insert(v);
  }
  std::reverse(result.begin(), result.end());
  return result;
}

void replay(std::span<const ir::Node* const> nodes,
            std::unordered_map<const ir::Value*, Tensor>& tensors,
            const std::source_location& loc) {
  // Replaying values that live on a GPU: the constants the graph makes (a gradient's zeros) go
  // there too, as ops with operands do.
  Device device;
  for (const auto& [value, t] : tensors) {
    if (t.defined() && !t.is_symbolic() && t.device().is_cuda()) {
      device = t.device();
      break;
    }
  }
  for (const ir::Node* node : nodes) {
    std::vector<Tensor> inputs;
    inputs.reserve(node->inputs().size());
    for (const ir::Value* v : node->inputs())
      inputs.push_back(tensors.at(v));
    ReplaySite site(*node);
    std::vector<Tensor> results = apply(node->op(), inputs, node->attrs(), loc);
    if (inputs.empty() && device.is_cuda()) {
      for (Tensor& t : results) {
        if (!t.is_symbolic() && t.device() != device && t.rank() > 0) t = t.to(device, loc);
      }
    }
    for (size_t i = 0; i < results.size(); ++i)
      tensors[node->output(i)] = std::move(results[i]);
  }
}

Tensor apply1(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
              const std::source_location& loc) {
  std::vector<Tensor> results = apply(op, inputs, attrs, loc);
  KILN_CHECK(results.size() == 1, "apply1 on an op with several results");
  return std::move(results[0]);
}

}  // namespace kiln::detail
