// The random-program generator. Each step picks an operation kind, builds operands and
// attributes that its rule accepts, and appends it with Function::append (which runs shape
// inference). Every value carries a bound on its magnitude and whether it was computed
// exactly; see random_program.h for how those keep programs numerically benign.
#include "random_program.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "random_shapes.h"

namespace kiln::testing {

using ir::Attrs;
using ir::DType;
using ir::Op;
using ir::Shape;

using detail::broadcast;
using detail::random_slice;
using detail::reshape_target;
using detail::Rng;
using detail::size_of;

namespace {

// A value in the program with what the generator knows about it.
struct Val {
  ir::Value* value = nullptr;
  double bound = 0;    // |element| <= bound
  bool exact = false;  // computed without rounding from the inputs
  const std::vector<int64_t>& dims() const { return value->type().shape.dims(); }
  int64_t rank() const { return static_cast<int64_t>(dims().size()); }
};

enum class Step {
  unary,
  binary,
  select,
  rounding,
  reduce,
  reshape,
  transpose,
  slice,
  squeeze_expand,
  matmul,
  conv2d,
  softmax
};

struct StepWeight {
  Step step;
  int weight;
};

constexpr std::array<StepWeight, 12> kStepWeights = {{{Step::unary, 18},
                                                      {Step::binary, 24},
                                                      {Step::select, 5},
                                                      {Step::rounding, 3},
                                                      {Step::reduce, 12},
                                                      {Step::reshape, 6},
                                                      {Step::transpose, 6},
                                                      {Step::slice, 8},
                                                      {Step::squeeze_expand, 3},
                                                      {Step::matmul, 8},
                                                      {Step::conv2d, 4},
                                                      {Step::softmax, 4}}};

// Values beyond this are squashed with tanh before an op that could amplify them further.
constexpr double kMaxBound = 10;

// The op lists come from the op table (ir/ops.def), so a new elementwise op is generated as soon
// as it is in the table; an op step_unary or step_binary has no rule for throws (and
// random_program_test's coverage test fails) instead of being skipped.

// Ops with an integer-valued or piecewise-constant result: step_rounding gives them exact
// operands only, so rounding differences cannot flip them.
bool is_rounding(Op op) {
  return op == Op::floor || op == Op::ceil || op == Op::round || op == Op::sign;
}

// Elementwise ops of the table with `arity` operands that accept floating operands (cast, which
// changes the dtype, and select, which step_select builds, have a dtype class of `any`).
std::vector<Op> floating_elementwise(int arity) {
  std::vector<Op> ops;
  for (int i = 0; i < ir::kNumOps; ++i) {
    const Op op = static_cast<Op>(i);
    if (ir::has_trait(op, ir::kElementwise) && ir::op_num_inputs(op) == arity &&
        ir::op_dtypes(op) != ir::DTypes::any && ir::dtypes_admit(ir::op_dtypes(op), DType::f32))
      ops.push_back(op);
  }
  return ops;
}

std::vector<Op> unary_ops() {
  std::vector<Op> ops = floating_elementwise(1);
  std::erase_if(ops, is_rounding);
  return ops;
}
std::vector<Op> rounding_ops() {
  std::vector<Op> ops = floating_elementwise(1);
  std::erase_if(ops, [](Op op) { return !is_rounding(op); });
  return ops;
}
std::vector<Op> binary_ops() {
  std::vector<Op> ops = floating_elementwise(2);
  std::erase_if(ops, [](Op op) { return ir::has_trait(op, ir::kComparison); });
  return ops;
}
std::vector<Op> comparison_ops() {
  std::vector<Op> ops = floating_elementwise(2);
  std::erase_if(ops, [](Op op) { return !ir::has_trait(op, ir::kComparison); });
  return ops;
}

class Generator {
 public:
  Generator(uint64_t seed, const RandomProgramOptions& options)
      : rng_(seed), opt_(options), function_(fmt::format("random_{}", seed)) {
    dtype_ = rng_.chance(opt_.f64_probability) ? DType::f64 : DType::f32;
    if (opt_.dtype) dtype_ = *opt_.dtype;
  }

  ir::Function build() {
    int64_t initial = rng_.uniform(1, 2);
    for (int64_t i = 0; i < initial; ++i)
      param(random_dims());
    int64_t ops = rng_.uniform(std::max(1, opt_.max_ops / 2), std::max(1, opt_.max_ops));
    for (int64_t i = 0; i < ops; ++i)
      one_step();
    set_outputs();
    if (opt_.updates) add_updates();
    return std::move(function_);
  }

 private:
  // --- building blocks ---------------------------------------------------------------------

  bool allowed(Op op) const {
    return std::find(opt_.exclude_ops.begin(), opt_.exclude_ops.end(), op) ==
           opt_.exclude_ops.end();
  }
  std::vector<Op> allowed_of(const std::vector<Op>& ops) const {
    std::vector<Op> out;
    for (Op op : ops)
      if (allowed(op)) out.push_back(op);
    return out;
  }

  ir::Value* node(Op op, std::vector<ir::Value*> inputs, Attrs attrs = {}) {
    return function_.append(op, std::move(inputs), std::move(attrs))->output();
  }
  Val add(Op op, std::vector<Val> inputs, Attrs attrs, double bound, bool exact) {
    std::vector<ir::Value*> values;
    for (const Val& v : inputs)
      values.push_back(v.value);
    Val v{node(op, std::move(values), std::move(attrs)), bound, exact};
    pool_.push_back(v);
    return v;
  }

  bool can_add_param() const { return num_params_ < opt_.max_params; }
  Val param(std::vector<int64_t> dims) {
    ir::Value* p =
        function_.add_param({dtype_, Shape(std::move(dims))}, fmt::format("x{}", num_params_));
    ++num_params_;
    Val v{p, 2.0, true};
    pool_.push_back(v);
    params_.push_back(v);
    return v;
  }

  // A 0-d constant; `value` is exact in f32 so the f32 and f64 programs agree.
  Val scalar(double value) {
    ir::HostTensor t = dtype_ == DType::f64 ? ir::HostTensor::scalar(value)
                                            : ir::HostTensor::scalar(static_cast<float>(value));
    ir::Value* c = node(Op::constant, {}, Attrs().set_tensor("value", std::move(t)));
    return Val{c, std::abs(value), true};
  }
  Val random_scalar() {
    static const std::vector<double> kValues = {1.0, 0.5, -1.5, 2.0, 0.25, -0.75};
    return scalar(rng_.pick(kValues));
  }

  // Recent values more often, so chains grow long enough to fuse.
  Val pick() {
    if (rng_.chance(0.5)) return pool_.back();
    return rng_.pick(pool_);
  }

  // Helper ops: not counted, never excluded.
  Val bounded(Val v, double limit) {
    if (v.bound <= limit) return v;
    return Val{node(Op::tanh, {v.value}), 1.0, false};
  }
  Val abs_plus_one(Val v) {
    Val a = v.exact ? v : bounded(v, 1e6);
    ir::Value* abs = node(Op::abs, {a.value});
    return Val{node(Op::add, {abs, scalar(1.0).value}), a.bound + 1, false};
  }

  int64_t random_dim() { return detail::random_dim(rng_, opt_); }
  void cap(std::vector<int64_t>& dims) const { detail::cap(dims, opt_); }
  std::vector<int64_t> random_dims() { return detail::random_dims(rng_, opt_); }
  std::vector<int64_t> partner_dims(const std::vector<int64_t>& dims) {
    return detail::partner_dims(rng_, opt_, dims);
  }

  bool fits_with(const Val& a, const Val& b) const {
    auto shape = broadcast(a.dims(), b.dims());
    return shape && size_of(*shape) <= opt_.max_elements;
  }

  // A second operand for a broadcasting op with `a`: an existing value, a new parameter, a
  // constant, or `a` itself.
  Val partner(const Val& a) {
    int64_t choice = rng_.uniform(0, 99);
    if (choice < 35) {
      std::vector<Val> fitting;
      for (const Val& v : pool_)
        if (v.value != a.value && fits_with(a, v)) fitting.push_back(v);
      if (!fitting.empty()) return rng_.pick(fitting);
    }
    if (choice < 75 && can_add_param()) return param(partner_dims(a.dims()));
    if (choice < 90) return random_scalar();
    return a;
  }

  // --- steps ---------------------------------------------------------------------------------

  void one_step() {
    int total = 0;
    for (const StepWeight& s : kStepWeights)
      total += s.weight;
    for (int attempt = 0; attempt < 8; ++attempt) {
      int64_t r = rng_.uniform(0, total - 1);
      for (const StepWeight& s : kStepWeights) {
        if (r < s.weight) {
          if (run_step(s.step)) return;
          break;
        }
        r -= s.weight;
      }
    }
    Val v = pick();
    add(Op::tanh, {v}, {}, 1.0, false);  // nothing applied: a helper keeps the program growing
  }

  bool run_step(Step step) {
    switch (step) {
      case Step::unary:
        return step_unary();
      case Step::binary:
        return step_binary();
      case Step::select:
        return step_select();
      case Step::rounding:
        return step_rounding();
      case Step::reduce:
        return step_reduce();
      case Step::reshape:
        return step_reshape();
      case Step::transpose:
        return step_transpose();
      case Step::slice:
        return step_slice();
      case Step::squeeze_expand:
        return step_squeeze_expand();
      case Step::matmul:
        return step_matmul();
      case Step::conv2d:
        return step_conv2d();
      case Step::softmax:
        return step_softmax();
    }
    return false;
  }

  bool step_unary() {
    std::vector<Op> ops = allowed_of(unary_ops());
    if (ops.empty()) return false;
    Op op = rng_.pick(ops);
    Val x = pick();
    switch (op) {
      case Op::neg:
      case Op::abs:
      case Op::relu:
        add(op, {x}, {}, x.bound, x.exact);
        return true;
      case Op::square:
        x = bounded(x, kMaxBound);
        add(op, {x}, {}, x.bound * x.bound, false);
        return true;
      case Op::exp:
      case Op::expm1:
        x = bounded(x, 4);
        add(op, {x}, {}, std::exp(x.bound), false);
        return true;
      case Op::log:
      case Op::sqrt:
        x = abs_plus_one(x);
        add(op, {x}, {}, op == Op::log ? std::log(x.bound) : std::sqrt(x.bound), false);
        return true;
      case Op::log1p: {  // sees |x|, so values near 0 where log1p differs from log(1 + x)
        Val a = x.exact ? x : bounded(x, 1e6);
        add(op, {Val{node(Op::abs, {a.value}), a.bound, false}}, {}, std::log1p(a.bound), false);
        return true;
      }
      case Op::rsqrt:
      case Op::reciprocal:
        add(op, {abs_plus_one(x)}, {}, 1.0, false);
        return true;
      case Op::elu: {
        double alpha = rng_.chance(0.5) ? 1.0 : 0.5;
        add(op, {x}, Attrs().set_float("alpha", alpha), std::max(x.bound, alpha), false);
        return true;
      }
      case Op::gelu:  // |gelu(x)| <= max(|x|, 0.17)
        add(op, {x}, Attrs().set_bool("approximate", rng_.chance(0.5)), std::max(x.bound, 1.0),
            false);
        return true;
      case Op::softplus:
        add(op, {x}, {}, x.bound + 1, false);
        return true;
      case Op::sin:
      case Op::cos:
      case Op::tanh:
      case Op::sigmoid:
      case Op::erf:
        add(op, {x}, {}, 1.0, false);
        return true;
      default:
        // An op of the table the generator has no rule for: say so instead of skipping it.
        throw std::logic_error(fmt::format(
            "random programs have no rule for unary op {} (tests/random_program.cpp, step_unary)",
            ir::op_name(op)));
    }
  }

  bool step_binary() {
    std::vector<Op> ops = allowed_of(binary_ops());
    if (allowed(Op::add)) ops.push_back(Op::add);  // twice as likely: sums are the common case
    if (ops.empty()) return false;
    Op op = rng_.pick(ops);
    Val a = pick();
    Val b = partner(a);
    if (rng_.chance(0.5)) std::swap(a, b);
    switch (op) {
      case Op::add:
      case Op::sub:
        add(op, {a, b}, {}, a.bound + b.bound, false);
        return true;
      case Op::mul:
        a = bounded(a, kMaxBound);
        b = bounded(b, kMaxBound);
        add(op, {a, b}, {}, a.bound * b.bound, false);
        return true;
      case Op::div:
        add(op, {a, abs_plus_one(b)}, {}, a.bound, false);
        return true;
      case Op::pow: {
        Val base = abs_plus_one(bounded(a, 3));
        Val exponent = bounded(b, 1);
        add(op, {base, exponent}, {}, std::pow(base.bound, exponent.bound), false);
        return true;
      }
      case Op::maximum:
      case Op::minimum:
        add(op, {a, b}, {}, std::max(a.bound, b.bound), a.exact && b.exact);
        return true;
      default:
        throw std::logic_error(fmt::format(
            "random programs have no rule for binary op {} (tests/random_program.cpp, step_binary)",
            ir::op_name(op)));
    }
  }

  // An exact value that broadcasts with `x`, or a new parameter that does; nullopt if neither.
  std::optional<Val> exact_partner(const Val& x) {
    std::vector<Val> fitting;
    for (const Val& v : pool_)
      if (v.exact && fits_with(x, v)) fitting.push_back(v);
    if (!fitting.empty() && rng_.chance(0.7)) return rng_.pick(fitting);
    if (can_add_param()) return param(partner_dims(x.dims()));
    if (!fitting.empty()) return rng_.pick(fitting);
    return std::nullopt;
  }

  // select(compare(e, other), x, y); the comparison sees exact values only.
  bool step_select() {
    std::vector<Op> compares = allowed_of(comparison_ops());
    if (!allowed(Op::select) || compares.empty()) return false;
    Val x = pick();
    std::optional<Val> e = exact_partner(x);
    if (!e) return false;
    Val other = scalar(0.0);
    if (rng_.chance(0.4)) {
      std::optional<Val> o = exact_partner(*e);
      auto cond_dims = o ? broadcast(e->dims(), o->dims()) : std::nullopt;
      auto all = cond_dims ? broadcast(*cond_dims, x.dims()) : std::nullopt;
      if (all && size_of(*all) <= opt_.max_elements) other = *o;
    }
    ir::Value* cond = node(rng_.pick(compares), {e->value, other.value});
    if (rng_.chance(0.2) && allowed(Op::logical_not)) cond = node(Op::logical_not, {cond});
    Val y = partner(x);
    auto xy = broadcast(x.dims(), y.dims());
    auto all = xy ? broadcast(*xy, cond->type().shape.dims()) : std::nullopt;
    if (!all || size_of(*all) > opt_.max_elements) y = random_scalar();
    Val cond_val{cond, 1.0, true};
    add(Op::select, {cond_val, x, y}, {}, std::max(x.bound, y.bound), x.exact && y.exact);
    return true;
  }

  bool step_rounding() {
    std::vector<Op> ops = allowed_of(rounding_ops());
    std::vector<Val> exact;
    for (const Val& v : pool_)
      if (v.exact) exact.push_back(v);
    if (ops.empty() || exact.empty()) return false;
    Val x = rng_.pick(exact);
    add(rng_.pick(ops), {x}, {}, x.bound + 1, true);
    return true;
  }

  bool step_reduce() {
    Val x = pick();
    std::vector<int64_t> axes;
    int64_t reduced = 1;
    for (int64_t axis = 0; axis < x.rank(); ++axis) {
      if (!rng_.chance(0.5)) continue;
      reduced *= x.dims()[static_cast<size_t>(axis)];
      axes.push_back(rng_.chance(0.3) ? axis - x.rank() : axis);
    }
    rng_.shuffle(axes);
    std::vector<Op> ops = allowed_of({Op::reduce_sum, Op::reduce_sum, Op::reduce_mean,
                                      Op::reduce_max, Op::reduce_min, Op::reduce_prod});
    // Max, min and mean of nothing are -inf, +inf and NaN; prod of many terms over/underflows.
    std::erase_if(ops, [&](Op op) {
      return (reduced == 0 && op != Op::reduce_sum && op != Op::reduce_prod) ||
             (op == Op::reduce_prod && reduced > 8);
    });
    if (ops.empty()) return false;
    Op op = rng_.pick(ops);
    Attrs attrs = Attrs().set_ints("axes", axes).set_bool("keepdims", rng_.chance(0.4));
    double count = static_cast<double>(std::max<int64_t>(reduced, 1));
    if (op == Op::reduce_prod) {
      x = bounded(x, 1.5);
      add(op, {x}, attrs, std::pow(x.bound, count), false);
    } else if (op == Op::reduce_max || op == Op::reduce_min) {
      add(op, {x}, attrs, x.bound, x.exact);
    } else {
      x = bounded(x, kMaxBound);
      add(op, {x}, attrs, op == Op::reduce_sum ? x.bound * count : x.bound, false);
    }
    return true;
  }

  bool step_reshape() {
    if (!allowed(Op::reshape)) return false;
    Val x = pick();
    int64_t count = x.value->type().shape.num_elements();
    add(Op::reshape, {x}, Attrs().set_ints("shape", reshape_target(rng_, opt_, count)), x.bound,
        x.exact);
    return true;
  }

  bool step_transpose() {
    if (!allowed(Op::transpose)) return false;
    Val x = pick();
    std::vector<int64_t> perm(static_cast<size_t>(x.rank()));
    for (size_t i = 0; i < perm.size(); ++i)
      perm[i] = static_cast<int64_t>(i);
    rng_.shuffle(perm);
    add(Op::transpose, {x}, Attrs().set_ints("perm", perm), x.bound, x.exact);
    return true;
  }

  bool step_slice() {
    if (!allowed(Op::slice)) return false;
    Val x = pick();
    add(Op::slice, {x}, random_slice(rng_, x.dims()), x.bound, x.exact);
    return true;
  }

  bool step_squeeze_expand() {
    Val x = pick();
    std::vector<int64_t> ones;
    for (int64_t axis = 0; axis < x.rank(); ++axis)
      if (x.dims()[static_cast<size_t>(axis)] == 1 && rng_.chance(0.7))
        ones.push_back(rng_.chance(0.3) ? axis - x.rank() : axis);
    if (!ones.empty() && allowed(Op::squeeze) && rng_.chance(0.6)) {
      add(Op::squeeze, {x}, Attrs().set_ints("axes", ones), x.bound, x.exact);
      return true;
    }
    if (!allowed(Op::expand_dims) || x.rank() > opt_.max_rank) return false;
    int64_t axis = rng_.uniform(-x.rank() - 1, x.rank());
    add(Op::expand_dims, {x}, Attrs().set_int("axis", axis), x.bound, x.exact);
    return true;
  }

  bool step_matmul() {
    if (!allowed(Op::matmul) || !can_add_param()) return false;
    Val a = pick();
    if (a.rank() < 2) return false;
    a = bounded(a, 2);
    bool transpose_a = rng_.chance(0.25), transpose_b = rng_.chance(0.3);
    const std::vector<int64_t>& ad = a.dims();
    std::vector<int64_t> batch(ad.begin(), ad.end() - 2);
    int64_t m = ad[ad.size() - 2], k = ad[ad.size() - 1];
    if (transpose_a) std::swap(m, k);
    std::vector<int64_t> b_batch = batch;
    if (!b_batch.empty() && rng_.chance(0.3))
      b_batch.erase(b_batch.begin(), b_batch.begin() + rng_.uniform(1, int64_t(b_batch.size())));
    for (int64_t& d : b_batch)
      if (rng_.chance(0.2)) d = 1;
    int64_t rows = size_of(batch) * std::max<int64_t>(m, 1);
    int64_t n = std::min(random_dim(), std::max<int64_t>(1, opt_.max_elements / rows));
    // b_batch * k <= a's size <= the cap, so n = 1 always fits.
    if (size_of(b_batch) * std::max<int64_t>(k, 1) * std::max<int64_t>(n, 1) > opt_.max_elements)
      n = 1;
    std::vector<int64_t> b_dims = b_batch;
    b_dims.push_back(transpose_b ? n : k);
    b_dims.push_back(transpose_b ? k : n);
    Val b = bounded(param(b_dims), 2);
    Attrs attrs;
    if (transpose_a || rng_.chance(0.2)) attrs.set_bool("transpose_a", transpose_a);
    if (transpose_b || rng_.chance(0.2)) attrs.set_bool("transpose_b", transpose_b);
    double terms = static_cast<double>(std::max<int64_t>(k, 1));
    add(Op::matmul, {a, b}, attrs, terms * a.bound * b.bound, false);
    return true;
  }

  // A rank-4 value with few channels, or a new NHWC parameter.
  std::optional<Val> conv_input() {
    std::vector<Val> fitting;
    for (const Val& v : pool_)
      if (v.rank() == 4 && v.dims()[1] >= 1 && v.dims()[2] >= 1 && v.dims()[3] >= 1 &&
          v.dims()[3] <= 8)
        fitting.push_back(v);
    if (!fitting.empty() && rng_.chance(0.6)) return rng_.pick(fitting);
    if (num_params_ + 2 > opt_.max_params) return std::nullopt;
    std::vector<int64_t> dims = {rng_.uniform(1, 2), rng_.uniform(1, 9), rng_.uniform(1, 9),
                                 rng_.uniform(1, 4)};
    cap(dims);
    return param(dims);
  }

  bool step_conv2d() {
    if (!allowed(Op::conv2d)) return false;
    std::optional<Val> in = conv_input();
    if (!in || !can_add_param()) return false;
    Val x = bounded(*in, 2);
    const std::vector<int64_t>& d = x.dims();
    int64_t kh = rng_.uniform(1, 3), kw = rng_.uniform(1, 3);
    int64_t dh = rng_.chance(0.25) ? 2 : 1, dw = rng_.chance(0.25) ? 2 : 1;
    int64_t sh = rng_.chance(0.3) ? 2 : 1, sw = rng_.chance(0.3) ? 2 : 1;
    bool valid_fits = (kh - 1) * dh + 1 <= d[1] && (kw - 1) * dw + 1 <= d[2];
    bool valid = valid_fits && rng_.chance(0.5);
    int64_t oh = valid ? (d[1] - (kh - 1) * dh - 1) / sh + 1 : (d[1] + sh - 1) / sh;
    int64_t ow = valid ? (d[2] - (kw - 1) * dw - 1) / sw + 1 : (d[2] + sw - 1) / sw;
    int64_t spatial =
        std::max<int64_t>(d[0], 1) * std::max<int64_t>(oh, 1) * std::max<int64_t>(ow, 1);
    int64_t out_channels = std::min<int64_t>(rng_.uniform(1, 5), opt_.max_elements / spatial);
    if (out_channels < 1 || kh * kw * d[3] * out_channels > opt_.max_elements) return false;
    Val filter = param({kh, kw, d[3], out_channels});
    Attrs attrs = Attrs()
                      .set_string("padding", valid ? "valid" : "same")
                      .set_ints("strides", {sh, sw})
                      .set_ints("dilations", {dh, dw});
    double terms = static_cast<double>(kh * kw * std::max<int64_t>(d[3], 1));
    add(Op::conv2d, {x, filter}, attrs, terms * x.bound * filter.bound, false);
    return true;
  }

  bool step_softmax() {
    std::vector<Op> ops = allowed_of({Op::softmax, Op::log_softmax});
    Val x = pick();
    if (ops.empty() || x.rank() == 0) return false;
    x = bounded(x, kMaxBound);
    int64_t axis = rng_.uniform(-x.rank(), x.rank() - 1);
    Op op = rng_.pick(ops);
    int64_t axis_size = x.dims()[static_cast<size_t>(axis < 0 ? axis + x.rank() : axis)];
    double bound =
        op == Op::softmax ? 1.0 : 2 * x.bound + std::log(double(std::max<int64_t>(axis_size, 1)));
    add(op, {x}, Attrs().set_int("axis", axis), bound, false);
    return true;
  }

  // --- results -------------------------------------------------------------------------------

  void set_outputs() {
    std::vector<ir::Value*> outputs = {pool_.back().value};
    int64_t extra = rng_.uniform(0, std::max(0, opt_.max_outputs - 1));
    for (int64_t i = 0; i < extra; ++i) {
      // Now and then a parameter is returned as is.
      Val v = rng_.chance(0.05) ? rng_.pick(params_) : rng_.pick(pool_);
      if (std::find(outputs.begin(), outputs.end(), v.value) == outputs.end())
        outputs.push_back(v.value);
    }
    function_.set_outputs(std::move(outputs));
  }

  // Each parameter, with some chance, takes a computed value of its type.
  void add_updates() {
    for (const Val& p : params_) {
      std::vector<Val> same;
      for (const Val& v : pool_)
        if (!v.value->is_param() && v.value->type() == p.value->type()) same.push_back(v);
      if (!same.empty() && rng_.chance(0.5)) function_.add_update(p.value, rng_.pick(same).value);
    }
  }

  Rng rng_;
  const RandomProgramOptions& opt_;
  ir::Function function_;
  DType dtype_;
  std::vector<Val> pool_;    // floating values that later ops may use
  std::vector<Val> params_;  // the parameters among them
  int num_params_ = 0;
};

}  // namespace

ir::Function random_program(uint64_t seed, const RandomProgramOptions& options) {
  return Generator(seed, options).build();
}

}  // namespace kiln::testing
