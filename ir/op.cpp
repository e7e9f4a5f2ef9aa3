#include "kiln/ir/op.h"

#include <array>

namespace kiln::ir {

namespace {
struct OpInfo {
  std::string_view name;
  int inputs;
  int outputs;
  uint32_t traits;
};

constexpr std::array<OpInfo, kNumOps> kOpInfo = {{
#define KILN_OP(name, family, inputs, outputs, traits) {#name, inputs, outputs, traits},
#include "kiln/ir/ops.def"
#undef KILN_OP
}};

const OpInfo& info(Op op) {
  return kOpInfo[static_cast<size_t>(op)];
}
}  // namespace

std::string_view op_name(Op op) {
  return info(op).name;
}

std::optional<Op> op_from_name(std::string_view name) {
  for (size_t i = 0; i < kOpInfo.size(); ++i) {
    if (kOpInfo[i].name == name) return static_cast<Op>(i);
  }
  return std::nullopt;
}

int op_num_inputs(Op op) {
  return info(op).inputs;
}
int op_num_outputs(Op op) {
  return info(op).outputs;
}
uint32_t op_traits(Op op) {
  return info(op).traits;
}

}  // namespace kiln::ir
