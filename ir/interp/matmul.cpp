// Interpreter kernel for matmul.
//
// Accuracy: floating products accumulate in double and round once; integer products accumulate
// in uint64_t, which wraps without undefined behaviour and matches two's-complement wrapping in
// i32 and i64 after the final (modular) narrowing.
#include <type_traits>

#include "kiln/ir/error.h"
#include "kiln/ir/interp/util.h"
#include "kiln/ir/ops/families.h"
#include "kiln/ir/ops/matmul.h"

namespace kiln::ir {

namespace {

template <class T>
using Wide = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;

// The batch dimensions of an operand (all but the last two).
Shape batch_of(const Shape& s) {
  return Shape(std::span<const int64_t>(s.dims().data(), static_cast<size_t>(s.rank() - 2)));
}

// Strides, in elements, of each broadcast batch index into an operand whose matrices hold
// `matrix_size` elements each.
std::vector<int64_t> batch_strides(const Shape& operand, const Shape& batch, int64_t matrix_size) {
  std::vector<int64_t> s = interp::broadcast_strides(batch_of(operand), batch);
  for (int64_t& v : s)
    v *= matrix_size;
  return s;
}

// One [M, K] × [K, N] product. a is stored [M, K] (or [K, M] when transposed), b [K, N] (or
// [N, K]).
template <class T>
void matmul_one(const MatmulDims& d, const T* a, const T* b, T* c) {
  for (int64_t i = 0; i < d.m; ++i) {
    for (int64_t j = 0; j < d.n; ++j) {
      Wide<T> acc{0};
      for (int64_t p = 0; p < d.k; ++p) {
        T x = d.transpose_a ? a[p * d.m + i] : a[i * d.k + p];
        T y = d.transpose_b ? b[j * d.k + p] : b[p * d.n + j];
        acc += static_cast<Wide<T>>(x) * static_cast<Wide<T>>(y);
      }
      c[i * d.n + j] = static_cast<T>(acc);
    }
  }
}

template <class T>
void matmul_typed(const HostTensor& a, const HostTensor& b, const Attrs& attrs, HostTensor& out) {
  MatmulDims d = matmul_dims(a.shape(), b.shape(), attrs);
  std::vector<int64_t> a_strides = batch_strides(a.shape(), d.batch, d.m * d.k);
  std::vector<int64_t> b_strides = batch_strides(b.shape(), d.batch, d.k * d.n);
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* pc = out.data<T>();
  int64_t batch = 0;
  interp::for_each_index(d.batch, [&](std::span<const int64_t> index) {
    matmul_one(d, pa + interp::offset_of(index, a_strides),
               pb + interp::offset_of(index, b_strides), pc + batch * d.m * d.n);
    ++batch;
  });
}

}  // namespace

void interpret_matmul(Op, std::span<const HostTensor> inputs, const Attrs& attrs,
                      std::span<HostTensor> outputs) {
  visit_dtype(inputs[0].dtype(), [&](auto t) {
    using T = decltype(t);
    if constexpr (std::is_same_v<T, bool>) {
      KILN_CHECK(false, "matmul on bool");
    } else {
      matmul_typed<T>(inputs[0], inputs[1], attrs, outputs[0]);
    }
  });
}

}  // namespace kiln::ir
