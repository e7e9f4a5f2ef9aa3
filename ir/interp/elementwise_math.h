// The scalar semantics of every elementwise op, as docs/ops.md defines them. Each function is
// defined for every input (no traps, no undefined behaviour): the interpreter maps them over
// tensors, and constant folding or codegen tests can call them directly.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace kiln::ir::scalar {

template <class T>
using Unsigned = std::make_unsigned_t<T>;

// Integer arithmetic wraps (two's complement): done in unsigned, converted back (modular since
// C++20), so signed overflow never happens.
template <class T>
T wrap_add(T a, T b) {
  return static_cast<T>(static_cast<Unsigned<T>>(a) + static_cast<Unsigned<T>>(b));
}
template <class T>
T wrap_sub(T a, T b) {
  return static_cast<T>(static_cast<Unsigned<T>>(a) - static_cast<Unsigned<T>>(b));
}
template <class T>
T wrap_mul(T a, T b) {
  return static_cast<T>(static_cast<Unsigned<T>>(a) * static_cast<Unsigned<T>>(b));
}

// ---- unary, numeric ----

template <class T>
T neg(T x) {
  if constexpr (std::is_integral_v<T>)
    return wrap_sub(T{0}, x);
  else
    return -x;
}

// abs(MIN) wraps to MIN, as in two's complement hardware; unsigned values are their own abs.
template <class T>
T abs(T x) {
  if constexpr (std::is_unsigned_v<T>)
    return x;
  else if constexpr (std::is_integral_v<T>)
    return x < 0 ? neg(x) : x;
  else
    return std::fabs(x);
}

template <class T>
T sign(T x) {
  if constexpr (std::is_unsigned_v<T>) {
    return static_cast<T>(x != 0);
  } else {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(x)) return x;
    }
    return static_cast<T>((x > T{0}) - (x < T{0}));
  }
}

template <class T>
T square(T x) {
  if constexpr (std::is_integral_v<T>)
    return wrap_mul(x, x);
  else
    return x * x;
}

// NaN propagates (max(NaN, 0) is NaN, as in PyTorch and TensorFlow).
template <class T>
T relu(T x) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(x)) return x;
  }
  return x > T{0} ? x : T{0};
}

// ---- unary, floating ----

template <class T>
T rsqrt(T x) {
  return T{1} / std::sqrt(x);
}
template <class T>
T reciprocal(T x) {
  return T{1} / x;
}

// Never evaluates exp of a large positive number: for x < 0 uses e^x / (1 + e^x).
template <class T>
T sigmoid(T x) {
  if (x >= T{0}) return T{1} / (T{1} + std::exp(-x));
  T e = std::exp(x);
  return e / (T{1} + e);
}

// alpha · (e^x − 1) for x ≤ 0, using expm1 for accuracy near 0.
template <class T>
T elu(T x, T alpha) {
  return x > T{0} ? x : alpha * std::expm1(x);
}

// log(1 + e^x) = max(x, 0) + log1p(e^−|x|): no overflow for large |x|.
template <class T>
T softplus(T x) {
  if (std::isnan(x)) return x;
  return std::fmax(x, T{0}) + std::log1p(std::exp(-std::fabs(x)));
}

// x·Φ(x) with Φ the standard normal CDF, as 0.5·x·erfc(−x/√2): erfc keeps Φ accurate far into
// the negative tail, where 1 + erf(x/√2) would cancel.
template <class T>
T gelu(T x) {
  return T{0.5} * x * std::erfc(-x * T{0.70710678118654752440});
}

// The tanh approximation x·½(1 + tanh(u)), u = √(2/π)(x + 0.044715x³), written as x·sigmoid(2u)
// (the same function; no cancellation for negative x).
template <class T>
T gelu_tanh(T x) {
  T cube = x * x * x;
  T u = T{0.79788456080286535588} * (x + T{0.044715} * cube);
  return x * sigmoid(T{2} * u);
}

// Round half to even, independent of the floating-point environment's rounding mode.
template <class T>
T round_half_even(T x) {
  T r = std::floor(x);
  T frac = x - r;  // exact: x and floor(x) are within 1 of each other
  if (frac > T{0.5} || (frac == T{0.5} && std::fmod(r, T{2}) != T{0})) r += T{1};
  return r == T{0} ? std::copysign(T{0}, x) : r;
}

// ---- cast ----

// Float → integer: truncates toward zero, saturates at the integer range, NaN → 0. For an
// unsigned To every negative number (−0.5 truncates to 0 anyway) gives 0.
template <class To, class From>
To float_to_int(From x) {
  double d = static_cast<double>(x);  // exact for f32 and f64
  if (std::isnan(d)) return To{0};
  if constexpr (std::is_unsigned_v<To>) {
    // 2^bits is exactly representable; every in-range truncation is below it.
    constexpr double limit = 2.0 * static_cast<double>(To{1} << (sizeof(To) * 8 - 1));
    if (d >= limit) return std::numeric_limits<To>::max();
    if (d <= 0) return To{0};
  } else {
    // 2^(bits−1) is exactly representable; every in-range truncation is below it.
    constexpr double limit = static_cast<double>(Unsigned<To>{1} << (sizeof(To) * 8 - 1));
    if (d >= limit) return std::numeric_limits<To>::max();
    if (d <= -limit) return std::numeric_limits<To>::min();
  }
  return static_cast<To>(d);
}

// Every dtype pair: anything → bool is x != 0; bool → number is 0 or 1; integer → integer wraps
// modulo 2^bits (u8 → wider zero-extends); integer → float rounds to nearest; f64 → f32 rounds
// (overflowing to ±inf).
template <class To, class From>
To cast(From x) {
  if constexpr (std::is_same_v<To, bool>)
    return x != From{0};
  else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>)
    return float_to_int<To>(x);
  else
    return static_cast<To>(x);
}

// ---- binary ----

template <class T>
T add(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return wrap_add(a, b);
  else
    return a + b;
}
template <class T>
T sub(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return wrap_sub(a, b);
  else
    return a - b;
}
template <class T>
T mul(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return wrap_mul(a, b);
  else
    return a * b;
}

// Integers: truncates toward zero; x / 0 = 0 and MIN / −1 = MIN instead of trapping.
template <class T>
T div(T a, T b) {
  if constexpr (std::is_unsigned_v<T>) {
    if (b == 0) return 0;
    return static_cast<T>(a / b);
  } else if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;
    if (b == -1) return neg(a);
    return a / b;
  } else {
    return a / b;
  }
}

// Integers: exact by repeated squaring (wrapping); a negative exponent gives 1 / x^n truncated,
// which is 0 unless x is ±1.
template <class T>
T pow(T base, T exponent) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::pow(base, exponent);
  } else {
    if constexpr (std::is_signed_v<T>) {
      if (exponent < 0) {
        if (base == 1) return 1;
        if (base == -1) return (exponent & 1) ? -1 : 1;
        return 0;
      }
    }
    T result = 1;
    while (exponent > 0) {
      if (exponent & 1) result = wrap_mul(result, base);
      base = wrap_mul(base, base);
      exponent = static_cast<T>(exponent >> 1);
    }
    return result;
  }
}

// NaN in either operand gives NaN.
template <class T>
T maximum(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
  }
  return a > b ? a : b;
}
template <class T>
T minimum(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
  }
  return a < b ? a : b;
}

}  // namespace kiln::ir::scalar
