#include "kiln/passes/canonicalize.h"

#include <bit>
#include <cmath>
#include <optional>

#include "kiln/ir/error.h"
#include "kiln/ir/interpreter.h"
#include "kiln/passes/rewrite.h"

namespace kiln::passes {

using ir::Node;
using ir::Op;
using ir::Value;

namespace {

// The value every element of `v` has, if `v` is a constant or fill with one value throughout.
std::optional<double> splat(const Value* v) {
  const Node* p = v->producer();
  while (p != nullptr && p->op() == Op::broadcast_to)  // a loop: chains may be long
    p = p->input(0)->producer();
  if (p == nullptr) return std::nullopt;
  if (p->op() == Op::fill) {
    if (const ir::AttrValue* a = p->attrs().find("value"); a && std::holds_alternative<bool>(*a))
      return std::get<bool>(*a) ? 1.0 : 0.0;
    return p->attrs().get_float("value");
  }
  if (p->op() != Op::constant) return std::nullopt;
  const ir::HostTensor& t = p->attrs().get_tensor("value");
  if (t.num_elements() == 0) return std::nullopt;
  double first = t.element_as_double(0);
  for (int64_t i = 1; i < t.num_elements(); ++i)
    if (t.element_as_double(i) != first) return std::nullopt;
  return first;
}

bool is_splat(const Value* v, double value) {
  std::optional<double> s = splat(v);
  return s && *s == value;
}

// `x` when it can stand for the node's result (same type: no broadcasting, no dtype change).
Value* if_same_type(const Node& n, Value* x) {
  return x->type() == n.output()->type() ? x : nullptr;
}

const Node* producer_of(const Node& n, Op op) {
  const Node* p = n.input(0)->producer();
  return p != nullptr && p->op() == op ? p : nullptr;
}

bool is_reshape_like(Op op) {
  return op == Op::reshape || op == Op::squeeze || op == Op::expand_dims;
}

// x+0, 0+x, x-0, x*1, 1*x, x/1.
Value* identity_operand(const Node& n, Rewriter&) {
  switch (n.op()) {
    case Op::add:
      if (is_splat(n.input(1), 0)) return if_same_type(n, n.input(0));
      if (is_splat(n.input(0), 0)) return if_same_type(n, n.input(1));
      return nullptr;
    case Op::mul:
      if (is_splat(n.input(1), 1)) return if_same_type(n, n.input(0));
      if (is_splat(n.input(0), 1)) return if_same_type(n, n.input(1));
      return nullptr;
    case Op::sub:
      return is_splat(n.input(1), 0) ? if_same_type(n, n.input(0)) : nullptr;
    case Op::div:
      return is_splat(n.input(1), 1) ? if_same_type(n, n.input(0)) : nullptr;
    default:
      return nullptr;
  }
}

Value* double_negation(const Node& n, Rewriter&) {
  const Node* inner = n.op() == Op::neg ? producer_of(n, Op::neg) : nullptr;
  return inner ? inner->input(0) : nullptr;
}

// Shape ops and casts that do nothing.
Value* no_op(const Node& n, Rewriter&) {
  bool candidate = is_reshape_like(n.op()) || n.op() == Op::broadcast_to ||
                   n.op() == Op::transpose || n.op() == Op::cast;
  if (!candidate || n.inputs().size() != 1) return nullptr;
  if (n.op() == Op::transpose) {
    const auto& perm = n.attrs().get_ints("perm");
    for (size_t i = 0; i < perm.size(); ++i)
      if (perm[i] != static_cast<int64_t>(i)) return nullptr;
  }
  return if_same_type(n, n.input(0));
}

// transpose(transpose(x, p), q) = transpose(x, r) with r[i] = p[q[i]].
Value* transpose_chain(const Node& n, Rewriter& rw) {
  const Node* inner = n.op() == Op::transpose ? producer_of(n, Op::transpose) : nullptr;
  if (!inner) return nullptr;
  const auto& p = inner->attrs().get_ints("perm");
  const auto& q = n.attrs().get_ints("perm");
  std::vector<int64_t> r(q.size());
  for (size_t i = 0; i < q.size(); ++i)
    r[i] = p[static_cast<size_t>(q[i])];
  return rw.create(Op::transpose, {inner->input(0)}, ir::Attrs().set_ints("perm", r));
}

// A reshape-like op of a reshape-like op → one reshape; squeeze/expand_dims become reshapes then.
Value* reshape_chain(const Node& n, Rewriter& rw) {
  if (!is_reshape_like(n.op())) return nullptr;
  const Node* inner = n.input(0)->producer();
  if (!inner || !is_reshape_like(inner->op())) return nullptr;
  const auto& dims = n.output()->type().shape.dims();
  return rw.create(Op::reshape, {inner->input(0)}, ir::Attrs().set_ints("shape", dims));
}

// pad(pad(x, p, v), q, v) = pad(x, p + q, v) when both only grow (the convolution lowering and
// its gradients pad height and width one after the other): one pass over memory instead of two.
Value* pad_chain(const Node& n, Rewriter& rw) {
  const Node* inner = n.op() == Op::pad ? producer_of(n, Op::pad) : nullptr;
  if (!inner) return nullptr;
  // Bit for bit: -0.0 and 0.0 compare equal but pad differently.
  const double value = n.attrs().get_float("value", 0.0);
  const double inner_value = inner->attrs().get_float("value", 0.0);
  if (std::bit_cast<uint64_t>(inner_value) != std::bit_cast<uint64_t>(value) ||
      std::abs(value) > 0x1p53)
    return nullptr;
  const auto& p = inner->attrs().get_ints("paddings");
  const auto& q = n.attrs().get_ints("paddings");
  if (p.size() != q.size()) return nullptr;
  std::vector<int64_t> sum(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] < 0 || q[i] < 0) return nullptr;
    sum[i] = p[i] + q[i];
  }
  ir::Attrs attrs = n.attrs();
  attrs.set_ints("paddings", sum);
  return rw.create(Op::pad, {inner->input(0)}, std::move(attrs));
}

Value* constant_select(const Node& n, Rewriter&) {
  if (n.op() != Op::select) return nullptr;
  std::optional<double> cond = splat(n.input(0));
  if (!cond) return nullptr;
  return if_same_type(n, *cond != 0 ? n.input(1) : n.input(2));
}

// Above this many elements, a fill or a broadcast of a constant stays a broadcast of a scalar
// rather than becoming a constant buffer: fusion computes it in the loops that read it.
constexpr int64_t kMaxSplatConstant = 1024;

bool expands(const Node& n) {
  return (n.op() == Op::broadcast_to || n.op() == Op::tile) &&
         n.output()->type().shape.num_elements() > kMaxSplatConstant;
}

Value* fold_constants(const Node& n, Rewriter& rw) {
  if (n.op() == Op::constant || n.inputs().empty() || expands(n)) return nullptr;
  if (n.output()->type().shape.num_elements() > kMaxFoldedElements) return nullptr;
  std::vector<ir::HostTensor> args;
  for (const Value* v : n.inputs()) {
    const Node* p = v->producer();
    if (!p || p->op() != Op::constant) return nullptr;
    args.push_back(p->attrs().get_tensor("value"));
  }
  std::vector<ir::TensorType> types = n.output_types();
  try {
    return rw.constant(std::move(ir::run_op(n.op(), args, n.attrs(), types).at(0)));
  } catch (const Error&) {
    return nullptr;  // e.g. a gather index out of range: leave it to fail at run time
  }
}

// A small fill becomes a constant (which then folds into its users); a large one becomes a
// broadcast of a scalar, which fusion computes inside the loops that read it instead of
// materializing it (gradients are full of zeros and ones of a value's shape).
Value* fill_to_constant(const Node& n, Rewriter& rw) {
  if (n.op() != Op::fill) return nullptr;
  const ir::TensorType& type = n.output()->type();
  if (type.shape.num_elements() > kMaxSplatConstant) {
    ir::Attrs scalar = n.attrs();
    scalar.set_ints("shape", {});
    Value* value = rw.create(Op::fill, {}, std::move(scalar));
    return rw.create(Op::broadcast_to, {value}, ir::Attrs().set_ints("shape", type.shape.dims()));
  }
  return rw.constant(std::move(ir::run_op(n.op(), {}, n.attrs(), n.output_types()).at(0)));
}

const Pattern kPatterns[] = {
    identity_operand, double_negation, no_op,          transpose_chain,  reshape_chain,
    pad_chain,        constant_select, fold_constants, fill_to_constant,
};

}  // namespace

bool canonicalize(ir::Function& function) {
  return apply_patterns(function, kPatterns);
}

}  // namespace kiln::passes
