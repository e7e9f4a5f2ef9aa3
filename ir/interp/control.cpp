// Reference kernels of the control-flow ops: `scan` runs its body with ir::evaluate per step.
#include <fmt/format.h>

#include <cstring>

#include "kiln/ir/error.h"
#include "kiln/ir/interpreter.h"
#include "kiln/ir/ops/control.h"
#include "kiln/ir/ops/families.h"

namespace kiln::ir {

namespace {

// Row `t` of a stacked tensor, as a tensor of type `row`.
HostTensor row_of(const HostTensor& stacked, int64_t t, const TensorType& row) {
  HostTensor out = HostTensor::uninitialized(row);
  size_t bytes = out.nbytes();
  if (bytes > 0) std::memcpy(out.raw(), stacked.raw() + static_cast<size_t>(t) * bytes, bytes);
  return out;
}

void store_row(HostTensor& stacked, int64_t t, const HostTensor& row) {
  size_t bytes = row.nbytes();
  if (bytes > 0) std::memcpy(stacked.raw() + static_cast<size_t>(t) * bytes, row.raw(), bytes);
}

void interpret_scan(std::span<const HostTensor> inputs, const Attrs& attrs,
                    std::span<HostTensor> outputs) {
  ScanAttrs s = scan_attrs(attrs, inputs.size());
  const Function& body = *s.body;
  auto C = static_cast<size_t>(s.carries);
  auto X = static_cast<size_t>(s.xs);
  auto Y = static_cast<size_t>(s.ys);
  std::vector<HostTensor> args(inputs.begin(), inputs.end());
  for (int64_t i = 0; i < s.length; ++i) {
    int64_t t = s.reverse ? s.length - 1 - i : i;
    for (size_t j = 0; j < X; ++j)
      args[C + j] = row_of(inputs[C + j], t, body.param(C + j)->type());
    if (s.save_carries) {
      for (size_t c = 0; c < C; ++c)
        store_row(outputs[C + Y + c], t, args[c]);
    }
    EvalResult step;
    try {
      step = evaluate(body, args);
    } catch (InternalError&) {
      throw;
    } catch (Error& e) {
      e.add_context(fmt::format("in scan step {} (of {}), body @{}", t, s.length, body.name()));
      throw;
    }
    for (size_t c = 0; c < C; ++c)
      args[c] = std::move(step.outputs[c]);
    for (size_t y = 0; y < Y; ++y)
      store_row(outputs[C + y], t, step.outputs[C + y]);
  }
  // The final carries (the initial ones when length = 0). Copied: an output never shares an
  // operand's storage.
  for (size_t c = 0; c < C; ++c)
    store_row(outputs[c], 0, args[c]);
}

}  // namespace

void interpret_control(Op op, std::span<const HostTensor> inputs, const Attrs& attrs,
                       std::span<HostTensor> outputs) {
  KILN_CHECK(op == Op::scan, "interpret_control: not a control op");
  interpret_scan(inputs, attrs, outputs);
}

}  // namespace kiln::ir
