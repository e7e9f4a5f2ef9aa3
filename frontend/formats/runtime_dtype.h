// The AOT runtime's dtype codes (KILN_AOT_* in runtime/aot_model.h, used by the C ABI and by the
// runtime's safetensors reader and writer) and ir::DType. The two are numbered alike, and
// runtime_dtype.cpp checks that number for number with static_asserts.
#pragma once

#include <cstdint>
#include <optional>

#include "kiln/ir/types.h"

namespace kiln::detail {

// The KILN_AOT_* code of `dtype`.
int32_t runtime_dtype(ir::DType dtype);
// The ir::DType of a KILN_AOT_* code; nullopt for a code that names none.
std::optional<ir::DType> from_runtime_dtype(int32_t code);

}  // namespace kiln::detail
