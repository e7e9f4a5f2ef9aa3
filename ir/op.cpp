#include "kiln/ir/op.h"

#include <array>

namespace kiln::ir {

namespace {
struct OpInfo {
  std::string_view name;
  int inputs;
  int outputs;
  DTypes dtypes;
  uint32_t traits;
};

constexpr std::array<OpInfo, kNumOps> kOpInfo = {{
#define KILN_OP(name, family, inputs, outputs, dtypes, traits) \
  {#name, inputs, outputs, DTypes::dtypes, traits},
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
DTypes op_dtypes(Op op) {
  return info(op).dtypes;
}

bool dtypes_admit(DTypes dtypes, DType dtype) {
  switch (dtypes) {
    case DTypes::numeric:
      return is_numeric(dtype);
    case DTypes::floating:
      return is_floating(dtype);
    case DTypes::boolean:
      return dtype == DType::boolean;
    case DTypes::by_rule:
    case DTypes::numeric_or_bool:
    case DTypes::any:
      return true;
  }
  return false;
}

std::string_view dtypes_text(DTypes dtypes) {
  switch (dtypes) {
    case DTypes::numeric:
      return "a numeric dtype (f32, f64, i32, i64, u8)";
    case DTypes::floating:
      return "a floating dtype (f32, f64)";
    case DTypes::boolean:
      return "bool";
    case DTypes::numeric_or_bool:
      return "a numeric dtype or bool";
    case DTypes::by_rule:
    case DTypes::any:
      return "any dtype";
  }
  return "";
}

}  // namespace kiln::ir
