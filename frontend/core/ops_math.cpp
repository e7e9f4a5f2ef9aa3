// Elementwise unary and binary ops, select, operators and matmul.
#include "kiln/frontend/core/ops.h"

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/check_numerics.h"
#include "kiln/frontend/core/eager.h"
#include "kiln/frontend/core/gradient_tape.h"
#include "kiln/frontend/core/trace.h"

namespace kiln {

using detail::apply1;

namespace {
Tensor unary(ir::Op op, const Tensor& x, const Loc& loc, const ir::Attrs& attrs = {}) {
  return apply1(op, {x}, attrs, loc);
}

// Whether an op applied now runs eagerly with its operands' values read once, so that a given
// operand's buffer may take the result: not while tracing (nothing runs), not while a tape
// records (it keeps the operands for the gradient), not under check_numerics (its message
// shows the operands).
bool may_donate() {
  return detail::current_trace() == nullptr && !detail::tapes_recording() &&
         !check_numerics_enabled();
}

Tensor binary(ir::Op op, const Operand& a, const Operand& b, const Loc& loc) {
  std::vector<Tensor> operands = detail::resolve_operands(ir::op_name(op), a, b, loc);
  if (!(a.given() || b.given()) || &a == &b || !may_donate())
    return detail::apply1(op, operands, {}, loc);
  // A side given up (a temporary, std::move(x), the left of `x /= 2`): the operand's own handle
  // is dropped, so that `operands` holds the only one when nobody else does, and the op may
  // write its result there (DonatedOperands). If the op fails, the operands get theirs back.
  const Operand* sides[2] = {&a, &b};
  bool taken[2] = {false, false};
  const ir::HostTensor* donors[2] = {nullptr, nullptr};
  for (size_t i = 0; i < 2; ++i) {
    if (!sides[i]->given()) continue;
    Tensor own = sides[i]->take();
    taken[i] = true;
    if (detail::TensorAccess::identity(own) != detail::TensorAccess::identity(operands[i])) {
      sides[i]->put_back(std::move(own));  // resolved to another tensor (a weak scalar's)
      taken[i] = false;
      continue;
    }
    own = Tensor();
    if (detail::TensorAccess::sole_host_owner(operands[i]))
      donors[i] = detail::TensorAccess::host_value(operands[i]);
  }
  try {
    if (donors[0] == nullptr && donors[1] == nullptr) return detail::apply1(op, operands, {}, loc);
    detail::DonatedOperands donated(donors[0], donors[1]);
    return detail::apply1(op, operands, {}, loc);
  } catch (...) {
    for (size_t i = 0; i < 2; ++i)
      if (taken[i]) sides[i]->put_back(std::move(operands[i]));
    throw;
  }
}

// `a op= b`: a gives its tensor up, so that the op computes in place when nothing else refers
// to it; a keeps its tensor if the op fails.
Tensor& compound(ir::Op op, Tensor& a, const Operand& b) {
  Operand self(std::move(a), b.loc());
  try {
    a = binary(op, self, b, b.loc());
  } catch (...) {
    a = self.take();
    throw;
  }
  return a;
}
}  // namespace

Tensor neg(const Tensor& x, Loc loc) {
  return unary(ir::Op::neg, x, loc);
}
Tensor abs(const Tensor& x, Loc loc) {
  return unary(ir::Op::abs, x, loc);
}
Tensor sign(const Tensor& x, Loc loc) {
  return unary(ir::Op::sign, x, loc);
}
Tensor exp(const Tensor& x, Loc loc) {
  return unary(ir::Op::exp, x, loc);
}
Tensor log(const Tensor& x, Loc loc) {
  return unary(ir::Op::log, x, loc);
}
Tensor sqrt(const Tensor& x, Loc loc) {
  return unary(ir::Op::sqrt, x, loc);
}
Tensor rsqrt(const Tensor& x, Loc loc) {
  return unary(ir::Op::rsqrt, x, loc);
}
Tensor square(const Tensor& x, Loc loc) {
  return unary(ir::Op::square, x, loc);
}
Tensor reciprocal(const Tensor& x, Loc loc) {
  return unary(ir::Op::reciprocal, x, loc);
}
Tensor sin(const Tensor& x, Loc loc) {
  return unary(ir::Op::sin, x, loc);
}
Tensor cos(const Tensor& x, Loc loc) {
  return unary(ir::Op::cos, x, loc);
}
Tensor tanh(const Tensor& x, Loc loc) {
  return unary(ir::Op::tanh, x, loc);
}
Tensor sigmoid(const Tensor& x, Loc loc) {
  return unary(ir::Op::sigmoid, x, loc);
}
Tensor relu(const Tensor& x, Loc loc) {
  return unary(ir::Op::relu, x, loc);
}
Tensor softplus(const Tensor& x, Loc loc) {
  return unary(ir::Op::softplus, x, loc);
}
Tensor gelu(const Tensor& x, bool approximate, Loc loc) {
  return unary(ir::Op::gelu, x, loc, ir::Attrs().set_bool("approximate", approximate));
}
Tensor erf(const Tensor& x, Loc loc) {
  return unary(ir::Op::erf, x, loc);
}
Tensor log1p(const Tensor& x, Loc loc) {
  return unary(ir::Op::log1p, x, loc);
}
Tensor expm1(const Tensor& x, Loc loc) {
  return unary(ir::Op::expm1, x, loc);
}
Tensor floor(const Tensor& x, Loc loc) {
  return unary(ir::Op::floor, x, loc);
}
Tensor ceil(const Tensor& x, Loc loc) {
  return unary(ir::Op::ceil, x, loc);
}
Tensor round(const Tensor& x, Loc loc) {
  return unary(ir::Op::round, x, loc);
}
Tensor logical_not(const Tensor& x, Loc loc) {
  return unary(ir::Op::logical_not, x, loc);
}

Tensor elu(const Tensor& x, double alpha, Loc loc) {
  ir::Attrs attrs;
  attrs.set_float("alpha", alpha);
  return unary(ir::Op::elu, x, loc, attrs);
}

Tensor cast(const Tensor& x, DType dtype, Loc loc) {
  ir::Attrs attrs;
  attrs.set_dtype("dtype", dtype);
  return unary(ir::Op::cast, x, loc, attrs);
}

Tensor add(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::add, a, b, loc);
}
Tensor subtract(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::sub, a, b, loc);
}
Tensor multiply(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::mul, a, b, loc);
}
Tensor divide(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::div, a, b, loc);
}
Tensor pow(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::pow, a, b, loc);
}
Tensor maximum(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::maximum, a, b, loc);
}
Tensor minimum(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::minimum, a, b, loc);
}
Tensor equal(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::equal, a, b, loc);
}
Tensor not_equal(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::not_equal, a, b, loc);
}
Tensor less(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::less, a, b, loc);
}
Tensor less_equal(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::less_equal, a, b, loc);
}
Tensor greater(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::greater, a, b, loc);
}
Tensor greater_equal(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::greater_equal, a, b, loc);
}
Tensor logical_and(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::logical_and, a, b, loc);
}
Tensor logical_or(const Operand& a, const Operand& b, Loc loc) {
  return binary(ir::Op::logical_or, a, b, loc);
}

Tensor where(const Operand& cond, const Operand& a, const Operand& b, Loc loc) {
  std::vector<Tensor> operands = detail::resolve_operands("select", a, b, loc);
  Tensor c = cond.is_tensor() ? cond.tensor()
                              : detail::scalar_tensor(cond.scalar(), DType::boolean, "select", loc);
  return apply1(ir::Op::select, {c, operands[0], operands[1]}, {}, loc);
}

Tensor select(const Operand& cond, const Operand& a, const Operand& b, Loc loc) {
  return where(cond, a, b, loc);
}

Tensor operator+(const Operand& a, const Operand& b) {
  return add(a, b, a.loc());
}
Tensor operator-(const Operand& a, const Operand& b) {
  return subtract(a, b, a.loc());
}
Tensor operator*(const Operand& a, const Operand& b) {
  return multiply(a, b, a.loc());
}
Tensor operator/(const Operand& a, const Operand& b) {
  return divide(a, b, a.loc());
}

Tensor operator-(const Operand& x) {
  if (x.is_tensor()) return neg(x.tensor(), x.loc());
  return neg(detail::scalar_tensor(x.scalar(), x.scalar().natural_dtype(), "neg", x.loc()),
             x.loc());
}

Tensor& operator+=(Tensor& a, const Operand& b) {
  return compound(ir::Op::add, a, b);
}
Tensor& operator-=(Tensor& a, const Operand& b) {
  return compound(ir::Op::sub, a, b);
}
Tensor& operator*=(Tensor& a, const Operand& b) {
  return compound(ir::Op::mul, a, b);
}
Tensor& operator/=(Tensor& a, const Operand& b) {
  return compound(ir::Op::div, a, b);
}

Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b, Loc loc) {
  ir::Attrs attrs;
  attrs.set_bool("transpose_a", transpose_a);
  attrs.set_bool("transpose_b", transpose_b);
  return apply1(ir::Op::matmul, {a, b}, attrs, loc);
}

}  // namespace kiln
