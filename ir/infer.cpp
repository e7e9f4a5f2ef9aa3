#include "kiln/ir/infer.h"

#include <fmt/format.h>

#include "kiln/ir/ops/families.h"

namespace kiln::ir {

namespace {
std::vector<TensorType> dispatch(Op op, std::span<const TensorType> inputs, const Attrs& attrs) {
  switch (op) {
#define KILN_OP(name, family, nin, nout, dtypes, traits) \
  case Op::name:                                         \
    return infer_##family(op, inputs, attrs);
#include "kiln/ir/ops.def"
#undef KILN_OP
  }
  KILN_CHECK(false, "unknown op");
}
}  // namespace

std::vector<TensorType> infer_types(Op op, std::span<const TensorType> inputs, const Attrs& attrs) {
  try {
    int want = op_num_inputs(op);
    if (want >= 0 && static_cast<int>(inputs.size()) != want) {
      throw ValueError(
          fmt::format("expects {} operand{}, got {}", want, want == 1 ? "" : "s", inputs.size()));
    }
    if (want < 0 && inputs.empty()) throw ValueError("expects at least one operand, got none");
    std::vector<TensorType> out = dispatch(op, inputs, attrs);
    int outs = op_num_outputs(op);
    KILN_CHECK(outs < 0 || static_cast<int>(out.size()) == outs,
               "rule returned wrong result count");
    return out;
  } catch (InternalError&) {
    throw;
  } catch (Error& e) {
    e.prefix(op_name(op));
    if (!inputs.empty()) e.add_context(fmt::format("operands: {}", types_to_string(inputs)));
    if (!attrs.empty()) e.add_context(fmt::format("attributes: {}", attrs.to_string()));
    throw;
  }
}

}  // namespace kiln::ir
