// Internal helpers shared by the interpreter kernels. Clarity over speed: this is the oracle.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kiln/ir/host_tensor.h"
#include "kiln/ir/types.h"

namespace kiln::ir::interp {

// Strides (in elements) for reading a tensor of shape `in` as if broadcast to `out`:
// aligned at the back, 0 on broadcast (size-1 or missing) dimensions.
inline std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> in_strides = in.strides();
  std::vector<int64_t> s(static_cast<size_t>(out.rank()), 0);
  int64_t lead = out.rank() - in.rank();
  for (int64_t i = 0; i < in.rank(); ++i) {
    if (in[i] != 1) s[static_cast<size_t>(i + lead)] = in_strides[static_cast<size_t>(i)];
  }
  return s;
}

// Calls f(index) for every multi-index of `shape` in row-major order (never for zero-size shapes;
// once with an empty index for a scalar).
template <class F>
void for_each_index(const Shape& shape, F&& f) {
  if (shape.num_elements() == 0) return;
  std::vector<int64_t> index(static_cast<size_t>(shape.rank()), 0);
  while (true) {
    f(std::span<const int64_t>(index));
    int64_t d = shape.rank() - 1;
    for (; d >= 0; --d) {
      if (++index[static_cast<size_t>(d)] < shape[d]) break;
      index[static_cast<size_t>(d)] = 0;
    }
    if (d < 0) return;
  }
}

// Dot product of a multi-index with strides.
inline int64_t offset_of(std::span<const int64_t> index, std::span<const int64_t> strides) {
  int64_t off = 0;
  for (size_t i = 0; i < index.size(); ++i)
    off += index[i] * strides[i];
  return off;
}

}  // namespace kiln::ir::interp
