// The Op enum, trait and dtype queries, generated from ir/ops.def.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "kiln/ir/types.h"

namespace kiln::ir {

enum OpTrait : uint32_t {
  kNoTraits = 0,
  kElementwise = 1u << 0,     // output element i depends only on input elements i
  kBroadcast = 1u << 1,       // operands broadcast NumPy-style
  kCommutative = 1u << 2,     // f(a, b) == f(b, a)
  kReduction = 1u << 3,       // reduces over the `axes` attribute
  kDifferentiable = 1u << 4,  // has a gradient rule
  kRandom = 1u << 5,          // counter-based random numbers from the `seed` attribute
  kComparison = 1u << 6,      // elementwise, result is bool whatever the operand dtype
};

// The operand dtypes an op accepts (the `dtypes` column of ops.def).
enum class DTypes : uint8_t {
  by_rule,          // the family's shape rule checks dtypes itself
  numeric,          // f32, f64, i32, i64, u8
  floating,         // f32, f64
  boolean,          // bool
  numeric_or_bool,  // every dtype
  any,              // every dtype (cast, select's branches)
};

enum class Op : uint16_t {
#define KILN_OP(name, family, inputs, outputs, dtypes, traits) name,
#include "kiln/ir/ops.def"
#undef KILN_OP
};

inline constexpr int kNumOps = 0
#define KILN_OP(name, family, inputs, outputs, dtypes, traits) +1
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
// The operand dtypes `op` accepts, as ops.def lists them.
DTypes op_dtypes(Op op);
// Whether `dtypes` admits `dtype` (by_rule admits every dtype: the family rule decides).
bool dtypes_admit(DTypes dtypes, DType dtype);
// "a floating dtype (f32, f64)": the class as an error message names it.
std::string_view dtypes_text(DTypes dtypes);

}  // namespace kiln::ir
