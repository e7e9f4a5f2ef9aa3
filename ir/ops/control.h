// The attributes of a `scan` node, read and checked once; shared by its shape rule, the
// interpreter, the verifier, the gradient rule and the frontend.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kiln/ir/attrs.h"
#include "kiln/ir/function.h"
#include "kiln/ir/types.h"

namespace kiln::ir {

// Operands: `carries` initial carries, `xs` scanned inputs ([length, ...]), then `consts`.
// Body parameters: carries, one step of each xs (axis 0 dropped), consts. Body outputs: new
// carries, then `ys` per-step outputs. Results: final carries, stacked ys ([length, ...]) and,
// with `save_carries`, the stacked carry each step read.
struct ScanAttrs {
  int64_t carries = 0;
  int64_t xs = 0;
  int64_t consts = 0;
  int64_t ys = 0;
  int64_t length = 0;
  bool reverse = false;
  bool save_carries = false;
  const Function* body = nullptr;
};

// Reads a scan's attributes for `num_operands` operands; ValueError if one is missing, of the
// wrong kind or out of range, or if the body's parameter or result count does not fit.
ScanAttrs scan_attrs(const Attrs& attrs, size_t num_operands);

// `type` with a leading dimension `length` added (a stacked per-step value); ShapeError if its
// byte size overflows.
TensorType stacked_type(const TensorType& type, int64_t length);

}  // namespace kiln::ir
