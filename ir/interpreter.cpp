#include "kiln/ir/interpreter.h"

#include <fmt/format.h>

#include <unordered_map>

#include "kiln/ir/infer.h"
#include "kiln/ir/ops/families.h"

namespace kiln::ir {

std::vector<HostTensor> run_op(Op op, std::span<const HostTensor> inputs, const Attrs& attrs,
                               std::span<const TensorType> output_types) {
  std::vector<HostTensor> outputs;
  outputs.reserve(output_types.size());
  try {
    // Inside the try: a result too large to allocate is a ResourceError named after the op.
    for (const TensorType& t : output_types)
      outputs.emplace_back(t);
    switch (op) {
#define KILN_OP(name, family, nin, nout, dtypes, traits)    \
  case Op::name:                                    \
    interpret_##family(op, inputs, attrs, outputs); \
    break;
#include "kiln/ir/ops.def"
#undef KILN_OP
    }
  } catch (InternalError&) {
    throw;
  } catch (Error& e) {
    e.prefix(op_name(op));
    throw;
  }
  return outputs;
}

EvalResult evaluate(const Function& function, std::span<const HostTensor> args) {
  if (args.size() != function.params().size()) {
    throw TypeError(fmt::format("function @{} takes {} arguments, got {}", function.name(),
                                function.params().size(), args.size()));
  }
  std::unordered_map<const Value*, HostTensor> env;
  for (size_t i = 0; i < args.size(); ++i) {
    const Value* p = function.param(i);
    if (args[i].type() != p->type()) {
      throw TypeError(fmt::format("function @{}: argument %{} must be {}, got {}", function.name(),
                                  p->name(), p->type().to_string(), args[i].type().to_string()));
    }
    env[p] = args[i];
  }
  for (const auto& node : function.nodes()) {
    std::vector<HostTensor> ins;
    for (const Value* v : node->inputs()) {
      auto it = env.find(v);
      KILN_CHECK(it != env.end(), "node operand not computed before use");
      ins.push_back(it->second);
    }
    std::vector<TensorType> out_types = node->output_types();
    std::vector<HostTensor> outs;
    try {
      outs = run_op(node->op(), ins, node->attrs(), out_types);
    } catch (InternalError&) {
      throw;
    } catch (Error& e) {
      add_location(e, node->scope(), node->loc());
      throw;
    }
    for (size_t i = 0; i < outs.size(); ++i)
      env[node->output(i)] = std::move(outs[i]);
  }
  EvalResult result;
  for (const Value* v : function.outputs())
    result.outputs.push_back(env.at(v));
  for (const auto& u : function.updates())
    result.updates.push_back(env.at(u.value));
  return result;
}

}  // namespace kiln::ir
