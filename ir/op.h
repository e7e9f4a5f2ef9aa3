// The Op enum and trait queries, generated from ir/ops.def.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace kiln::ir {

enum OpTrait : uint32_t {
  kNoTraits = 0,
  kElementwise = 1u << 0,     // output element i depends only on input elements i
  kBroadcast = 1u << 1,       // operands broadcast NumPy-style
  kCommutative = 1u << 2,     // f(a, b) == f(b, a)
  kReduction = 1u << 3,       // reduces over the `axes` attribute
  kDifferentiable = 1u << 4,  // has a gradient rule
  kRandom = 1u << 5,          // counter-based random numbers from the `seed` attribute
};

enum class Op : uint16_t {
#define KILN_OP(name, family, inputs, outputs, traits) name,
#include "kiln/ir/ops.def"
#undef KILN_OP
};

inline constexpr int kNumOps = 0
#define KILN_OP(name, family, inputs, outputs, traits) +1
#include "kiln/ir/ops.def"
#undef KILN_OP
    ;

// Name as written in IR text ("add", "reduce_sum").
std::string_view op_name(Op op);
// Looks an op up by name; nullopt if there is none.
std::optional<Op> op_from_name(std::string_view name);
// Number of operands, -1 if variadic.
int op_num_inputs(Op op);
// Number of results, -1 if the attributes decide.
int op_num_outputs(Op op);
uint32_t op_traits(Op op);
inline bool has_trait(Op op, OpTrait trait) {
  return (op_traits(op) & trait) != 0;
}

}  // namespace kiln::ir
