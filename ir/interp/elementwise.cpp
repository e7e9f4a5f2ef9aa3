// Interpreter kernels for the elementwise ops: one broadcasting loop, templated on the scalar
// function; a switch per dtype category picks the function (ir/interp/elementwise_math.h).
#include <array>
#include <cmath>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "kiln/ir/error.h"
#include "kiln/ir/interp/elementwise_math.h"
#include "kiln/ir/interp/util.h"
#include "kiln/ir/ops/families.h"

namespace kiln::ir {

namespace {

// out[i] = f(in_0[j_0], ..., in_n[j_n]) with every operand broadcast to out's shape.
template <class Out, class... In, class F, size_t... I>
void map_impl(F&& f, std::span<const HostTensor> ins, HostTensor& out, std::index_sequence<I...>) {
  Out* dst = out.data<Out>();
  std::tuple<const In*...> src{ins[I].data<In>()...};
  if (((ins[I].shape() == out.shape()) && ...)) {
    for (int64_t i = 0, n = out.num_elements(); i < n; ++i)
      dst[i] = f(std::get<I>(src)[i]...);
    return;
  }
  std::array<std::vector<int64_t>, sizeof...(In)> strides{
      interp::broadcast_strides(ins[I].shape(), out.shape())...};
  int64_t i = 0;
  interp::for_each_index(out.shape(), [&](std::span<const int64_t> index) {
    dst[i++] = f(std::get<I>(src)[interp::offset_of(index, strides[I])]...);
  });
}

template <class Out, class... In, class F>
void map_elements(F&& f, std::span<const HostTensor> ins, HostTensor& out) {
  KILN_CHECK(ins.size() == sizeof...(In), "operand count does not match the scalar function");
  map_impl<Out, In...>(std::forward<F>(f), ins, out, std::index_sequence_for<In...>{});
}

template <class T>
using Unary = T (*)(T);
template <class T>
using Binary = T (*)(T, T);
template <class T>
using Compare = bool (*)(T, T);

// Unary ops defined for every numeric dtype.
template <class T>
Unary<T> numeric_unary(Op op) {
  switch (op) {
    case Op::neg:
      return scalar::neg<T>;
    case Op::abs:
      return scalar::abs<T>;
    case Op::sign:
      return scalar::sign<T>;
    case Op::square:
      return scalar::square<T>;
    case Op::relu:
      return scalar::relu<T>;
    default:
      return nullptr;
  }
}

// Unary ops defined for floating dtypes only (elu and gelu take attributes: see run_unary).
template <class T>
Unary<T> floating_unary(Op op) {
  switch (op) {
    case Op::exp:
      return [](T x) { return std::exp(x); };
    case Op::log:
      return [](T x) { return std::log(x); };
    case Op::sqrt:
      return [](T x) { return std::sqrt(x); };
    case Op::rsqrt:
      return scalar::rsqrt<T>;
    case Op::reciprocal:
      return scalar::reciprocal<T>;
    case Op::sin:
      return [](T x) { return std::sin(x); };
    case Op::cos:
      return [](T x) { return std::cos(x); };
    case Op::tanh:
      return [](T x) { return std::tanh(x); };
    case Op::sigmoid:
      return scalar::sigmoid<T>;
    case Op::softplus:
      return scalar::softplus<T>;
    case Op::erf:
      return [](T x) { return std::erf(x); };
    case Op::log1p:
      return [](T x) { return std::log1p(x); };
    case Op::expm1:
      return [](T x) { return std::expm1(x); };
    case Op::floor:
      return [](T x) { return std::floor(x); };
    case Op::ceil:
      return [](T x) { return std::ceil(x); };
    case Op::round:
      return scalar::round_half_even<T>;
    default:
      return numeric_unary<T>(op);
  }
}

template <class T>
Binary<T> arithmetic(Op op) {
  switch (op) {
    case Op::add:
      return scalar::add<T>;
    case Op::sub:
      return scalar::sub<T>;
    case Op::mul:
      return scalar::mul<T>;
    case Op::div:
      return scalar::div<T>;
    case Op::pow:
      return scalar::pow<T>;
    case Op::maximum:
      return scalar::maximum<T>;
    case Op::minimum:
      return scalar::minimum<T>;
    default:
      return nullptr;
  }
}

template <class T>
Compare<T> comparison(Op op) {
  switch (op) {
    case Op::equal:
      return [](T a, T b) { return a == b; };
    case Op::not_equal:
      return [](T a, T b) { return a != b; };
    case Op::less:
      return [](T a, T b) { return a < b; };
    case Op::less_equal:
      return [](T a, T b) { return a <= b; };
    case Op::greater:
      return [](T a, T b) { return a > b; };
    case Op::greater_equal:
      return [](T a, T b) { return a >= b; };
    case Op::logical_and:
      return [](T a, T b) { return a && b; };
    case Op::logical_or:
      return [](T a, T b) { return a || b; };
    default:
      return nullptr;
  }
}

void unsupported(Op op, DType dtype) {
  KILN_CHECK(false, fmt::format("no {} kernel for {} (shape inference should have rejected it)",
                                op_name(op), dtype_name(dtype)));
}

void run_cast(std::span<const HostTensor> ins, HostTensor& out) {
  visit_dtype(ins[0].dtype(), [&](auto from_zero) {
    using From = decltype(from_zero);
    visit_dtype(out.dtype(), [&](auto to_zero) {
      using To = decltype(to_zero);
      map_elements<To, From>(scalar::cast<To, From>, ins, out);
    });
  });
}

void run_unary(Op op, std::span<const HostTensor> ins, const Attrs& attrs, HostTensor& out) {
  if (op == Op::cast) return run_cast(ins, out);
  visit_dtype(ins[0].dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_same_v<T, bool>) {
      if (op != Op::logical_not) return unsupported(op, DType::boolean);
      map_elements<bool, bool>([](bool x) { return !x; }, ins, out);
    } else if constexpr (std::is_floating_point_v<T>) {
      if (op == Op::elu) {
        T alpha = static_cast<T>(attrs.get_float("alpha", 1.0));
        return map_elements<T, T>([alpha](T x) { return scalar::elu(x, alpha); }, ins, out);
      }
      if (op == Op::gelu) {
        if (attrs.get_bool("approximate", false))
          return map_elements<T, T>(scalar::gelu_tanh<T>, ins, out);
        return map_elements<T, T>(scalar::gelu<T>, ins, out);
      }
      Unary<T> f = floating_unary<T>(op);
      if (f == nullptr) return unsupported(op, ins[0].dtype());
      map_elements<T, T>(f, ins, out);
    } else {
      Unary<T> f = numeric_unary<T>(op);
      if (f == nullptr) return unsupported(op, ins[0].dtype());
      map_elements<T, T>(f, ins, out);
    }
  });
}

void run_binary(Op op, std::span<const HostTensor> ins, HostTensor& out) {
  visit_dtype(ins[0].dtype(), [&](auto zero) {
    using T = decltype(zero);
    if (out.dtype() == DType::boolean) {
      Compare<T> f = comparison<T>(op);
      if (f == nullptr) return unsupported(op, ins[0].dtype());
      return map_elements<bool, T, T>(f, ins, out);
    }
    if constexpr (!std::is_same_v<T, bool>) {
      Binary<T> f = arithmetic<T>(op);
      if (f == nullptr) return unsupported(op, ins[0].dtype());
      return map_elements<T, T, T>(f, ins, out);
    }
    unsupported(op, ins[0].dtype());
  });
}

void run_select(std::span<const HostTensor> ins, HostTensor& out) {
  visit_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    map_elements<T, bool, T, T>([](bool c, T a, T b) { return c ? a : b; }, ins, out);
  });
}

}  // namespace

void interpret_elementwise(Op op, std::span<const HostTensor> inputs, const Attrs& attrs,
                           std::span<HostTensor> outputs) {
  KILN_CHECK(outputs.size() == 1, "elementwise ops have one result");
  switch (inputs.size()) {
    case 1:
      return run_unary(op, inputs, attrs, outputs[0]);
    case 2:
      return run_binary(op, inputs, outputs[0]);
    case 3:
      return run_select(inputs, outputs[0]);
  }
  KILN_CHECK(false, "elementwise op with an unexpected operand count");
}

}  // namespace kiln::ir
