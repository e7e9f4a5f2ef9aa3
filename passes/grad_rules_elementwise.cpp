// Gradient rules of the elementwise ops. Binary ops broadcast, so each operand's gradient is
// summed back to the operand's shape (unbroadcast).
//
// Every expression here that makes two nodes in the operands of one call names them as locals
// first: C++ leaves the order in which a call's arguments are evaluated open, so `f(a * b, c * d)`
// numbers its nodes differently under gcc and clang, and printed IR and saved models would
// depend on the compiler (tests/pass_autodiff_test.cpp pins the order).
#include "kiln/passes/grad_rules.h"

namespace kiln::passes::grad {

namespace {

using ir::Op;

// The two operand gradients of a broadcasting binary op, summed back to the operand shapes.
std::vector<V> binary(const Context& c, V da, V db) {
  return {da ? unbroadcast(da, c.x(0).shape()) : V{}, db ? unbroadcast(db, c.x(1).shape()) : V{}};
}

// Floor, ceil and round are flat almost everywhere and have no gradient (TensorFlow's None).
std::vector<V> none(const Context&) {
  return {V{}};
}

// An op of the table applied to x (for ops the builder vocabulary does not name).
V unary(Op op, V x) {
  return x.builder->op(op, {x});
}

// d/dx x·Φ(x) = Φ(x) + x·φ(x), with Φ(x) = ½(1 + erf(x/√2)) and φ(x) = e^(−x²/2)/√(2π).
// Below x = −1, Φ(x) is y/x instead: 1 + erf(x/√2) cancels there (to 0 in f32 below about −5,
// where Φ is still 1e-7 .. 1e-38), while the forward result y = ½x·erfc(−x/√2) keeps every digit.
// The divisor is x clamped to at most −1, so the branch not taken never divides by 0 (nor
// makes a second derivative NaN).
std::vector<V> gelu_exact(const Context& c) {
  V x = c.x();
  V scaled = x * 0.70710678118654752440;
  V erf_term = unary(Op::erf, scaled);
  V cdf_body = 0.5 * (1.0 + erf_term);
  V minus_one = scalar_like(x, -1.0);
  V in_tail = less_equal(x, minus_one);
  V tail_x = minimum(x, minus_one);
  V cdf_tail = c.y() / tail_x;
  V cdf = select(in_tail, cdf_tail, cdf_body);
  V sq = square(x);
  V pdf = exp(sq * -0.5) * 0.39894228040143267794;
  V x_pdf = x * pdf;
  V slope = cdf + x_pdf;
  return {c.dy() * slope};
}

// y = x·s with s = sigmoid(2u), u = √(2/π)(x + 0.044715x³):
// dy/dx = s + x·s(1 − s)·2u', u' = √(2/π)(1 + 3·0.044715x²).
std::vector<V> gelu_tanh(const Context& c) {
  constexpr double kC = 0.79788456080286535588, kA = 0.044715;
  V x = c.x();
  V sq = square(x);
  V cube = sq * x;
  V inner = x + cube * kA;
  V s = sigmoid(inner * (2 * kC));
  V one_minus_s = 1.0 - s;
  V ds = s * one_minus_s;
  V du = (sq * (3 * kA) + 1.0) * (2 * kC);
  V x_ds = x * ds;
  V chain = x_ds * du;
  V slope = s + chain;
  return {c.dy() * slope};
}

// A cast between floating types passes the gradient back in the operand's precision; a cast to
// or from an integer type has none.
std::vector<V> cast_rule(const Context& c) {
  if (!ir::is_floating(c.x().dtype())) return {V{}};
  return {cast(c.dy(), c.x().dtype())};
}

}  // namespace

void add_elementwise_rules(RuleTable& t) {
  t[size_t(Op::neg)] = [](const Context& c) -> std::vector<V> { return {-c.dy()}; };
  t[size_t(Op::abs)] = [](const Context& c) -> std::vector<V> { return {c.dy() * sign(c.x())}; };
  t[size_t(Op::sign)] = [](const Context& c) -> std::vector<V> { return {zeros_like(c.x())}; };
  t[size_t(Op::exp)] = [](const Context& c) -> std::vector<V> { return {c.dy() * c.y()}; };
  t[size_t(Op::log)] = [](const Context& c) -> std::vector<V> { return {c.dy() / c.x()}; };
  t[size_t(Op::sqrt)] = [](const Context& c) -> std::vector<V> { return {c.dy() * 0.5 / c.y()}; };
  t[size_t(Op::rsqrt)] = [](const Context& c) -> std::vector<V> {
    return {c.dy() * -0.5 * c.y() * c.y() * c.y()};
  };
  t[size_t(Op::square)] = [](const Context& c) -> std::vector<V> { return {c.dy() * 2.0 * c.x()}; };
  t[size_t(Op::reciprocal)] = [](const Context& c) -> std::vector<V> {
    return {-c.dy() * c.y() * c.y()};
  };
  t[size_t(Op::sin)] = [](const Context& c) -> std::vector<V> { return {c.dy() * cos(c.x())}; };
  t[size_t(Op::cos)] = [](const Context& c) -> std::vector<V> {
    V minus_dy = -c.dy();
    return {minus_dy * sin(c.x())};
  };
  t[size_t(Op::tanh)] = [](const Context& c) -> std::vector<V> {
    return {c.dy() * (1.0 - c.y() * c.y())};
  };
  t[size_t(Op::sigmoid)] = [](const Context& c) -> std::vector<V> {
    V dy_y = c.dy() * c.y();
    return {dy_y * (1.0 - c.y())};
  };
  t[size_t(Op::relu)] = [](const Context& c) -> std::vector<V> {
    // relu(x) > 0 exactly where x > 0 (NaN and −0 included): testing the output leaves x with
    // its one use, so the relu fuses into the GEMM or convolution epilogue that produces x
    // and x is never stored.
    V positive = greater(c.y(), scalar_like(c.y(), 0.0));
    return {select(positive, c.dy(), zeros_like(c.dy()))};
  };
  t[size_t(Op::elu)] = [](const Context& c) -> std::vector<V> {
    double alpha = c.attrs().get_float("alpha", 1.0);
    V positive = greater(c.x(), scalar_like(c.x(), 0.0));
    return {select(positive, c.dy(), c.dy() * (c.y() + alpha))};
  };
  t[size_t(Op::softplus)] = [](const Context& c) -> std::vector<V> {
    return {c.dy() * sigmoid(c.x())};
  };
  t[size_t(Op::gelu)] = [](const Context& c) -> std::vector<V> {
    return c.attrs().get_bool("approximate", false) ? gelu_tanh(c) : gelu_exact(c);
  };
  t[size_t(Op::erf)] = [](const Context& c) -> std::vector<V> {
    V e = exp(-square(c.x()));
    return {c.dy() * 1.12837916709551257390 * e};  // 2/√π
  };
  t[size_t(Op::log1p)] = [](const Context& c) -> std::vector<V> {
    V one_plus_x = 1.0 + c.x();
    return {c.dy() / one_plus_x};
  };
  t[size_t(Op::expm1)] = [](const Context& c) -> std::vector<V> {
    V e = c.y() + 1.0;  // e^x, from the result
    return {c.dy() * e};
  };
  t[size_t(Op::floor)] = none;
  t[size_t(Op::ceil)] = none;
  t[size_t(Op::round)] = none;
  t[size_t(Op::cast)] = cast_rule;

  t[size_t(Op::add)] = [](const Context& c) { return binary(c, c.dy(), c.dy()); };
  t[size_t(Op::sub)] = [](const Context& c) { return binary(c, c.dy(), -c.dy()); };
  t[size_t(Op::mul)] = [](const Context& c) {
    V da = c.dy() * c.x(1);
    V db = c.dy() * c.x(0);
    return binary(c, da, db);
  };
  t[size_t(Op::div)] = [](const Context& c) {
    V da = c.dy() / c.x(1);
    V db = -c.dy() * c.y() / c.x(1);
    return binary(c, da, db);
  };
  t[size_t(Op::pow)] = [](const Context& c) {
    V a = c.x(0), b = c.x(1);
    // d/db a^b = a^b·log a, taken as 0 where a <= 0 (as TensorFlow); the log reads a safe
    // operand there so a second derivative stays finite.
    V positive = greater(a, scalar_like(a, 0.0));
    V log_a = log(select(positive, a, ones_like(a)));
    V dy_b = c.dy() * b;
    V da = dy_b * pow(a, b - 1.0);
    V db = c.dy() * c.y() * log_a;
    return binary(c, da, db);
  };
  // Ties go to the first operand (TensorFlow's rule).
  t[size_t(Op::maximum)] = [](const Context& c) {
    V first = greater_equal(c.x(0), c.x(1));
    V zero = zeros_like(c.dy());
    V da = select(first, c.dy(), zero);
    V db = select(first, zero, c.dy());
    return binary(c, da, db);
  };
  t[size_t(Op::minimum)] = [](const Context& c) {
    V first = less_equal(c.x(0), c.x(1));
    V zero = zeros_like(c.dy());
    V da = select(first, c.dy(), zero);
    V db = select(first, zero, c.dy());
    return binary(c, da, db);
  };
  t[size_t(Op::select)] = [](const Context& c) -> std::vector<V> {
    V zero = zeros_like(c.dy());
    V cond = c.x(0);
    return {V{}, unbroadcast(select(cond, c.dy(), zero), c.x(1).shape()),
            unbroadcast(select(cond, zero, c.dy()), c.x(2).shape())};
  };
}

}  // namespace kiln::passes::grad
