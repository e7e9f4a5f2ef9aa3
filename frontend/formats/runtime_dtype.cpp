#include "kiln/frontend/formats/runtime_dtype.h"

#include <iterator>

#include "kiln/runtime/aot_model.h"

namespace kiln::detail {

// One line per dtype: the codes are part of the AOT ABI, so a renumbered ir::DType must not
// change them silently.
static_assert(KILN_AOT_F32 == static_cast<int32_t>(ir::DType::f32));
static_assert(KILN_AOT_F64 == static_cast<int32_t>(ir::DType::f64));
static_assert(KILN_AOT_I32 == static_cast<int32_t>(ir::DType::i32));
static_assert(KILN_AOT_I64 == static_cast<int32_t>(ir::DType::i64));
static_assert(KILN_AOT_BOOL == static_cast<int32_t>(ir::DType::boolean));
static_assert(KILN_AOT_U8 == static_cast<int32_t>(ir::DType::u8));
static_assert(std::size(ir::kAllDTypes) == 6,
              "a new ir::DType needs a KILN_AOT_* code (runtime/aot_model.h) and a line above");

int32_t runtime_dtype(ir::DType dtype) {
  return static_cast<int32_t>(dtype);  // the same numbers, checked above
}

std::optional<ir::DType> from_runtime_dtype(int32_t code) {
  for (ir::DType dtype : ir::kAllDTypes) {
    if (runtime_dtype(dtype) == code) return dtype;
  }
  return std::nullopt;
}

}  // namespace kiln::detail
