// Central finite-difference checks of the autodiff pass, in f64, on IR functions: the tests of
// every gradient rule go through here.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kiln/ir/function.h"
#include "kiln/ir/interpreter.h"
#include "kiln/ir/parser.h"
#include "kiln/passes/autodiff.h"

namespace kiln::testing {

// The IR vocabulary the gradient tests use; a test file says `using namespace kiln::testing;`.
using ir::Attrs;
using ir::DType;
using ir::Function;
using ir::HostTensor;
using ir::Op;
using ir::Shape;
using ir::TensorType;

// f64 values drawn uniformly from [lo, hi) with a fixed seed.
inline ir::HostTensor random_f64(const ir::Shape& shape, uint32_t seed, double lo = -1.0,
                                 double hi = 1.0) {
  ir::HostTensor t(ir::DType::f64, shape);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (double& v : t.values<double>())
    v = dist(rng);
  return t;
}

// f64 values with magnitude in [lo, hi) and a random sign: away from the kink at zero of abs,
// relu, elu, and from the pole of 1/x.
inline ir::HostTensor random_f64_nonzero(const ir::Shape& shape, uint32_t seed, double lo = 0.3,
                                         double hi = 1.5) {
  ir::HostTensor t = random_f64(shape, seed, lo, hi);
  std::mt19937 rng(seed + 7919);
  for (double& v : t.values<double>())
    if (rng() % 2) v = -v;
  return t;
}

// A tensor of `dtype` (f64, i32, i64 or bool) holding `values` in row-major order.
inline ir::HostTensor tensor_of(ir::DType dtype, const ir::Shape& shape,
                                const std::vector<double>& values) {
  ir::HostTensor t(dtype, shape);
  REQUIRE(static_cast<int64_t>(values.size()) == t.num_elements());
  ir::visit_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    for (size_t i = 0; i < values.size(); ++i)
      t.data<T>()[i] = static_cast<T>(values[i]);
  });
  return t;
}

// Turns `function` (first output y, f64) into L = Σ w·y with fixed random weights w, so every
// element of y's gradient is checked with a different weight.
inline ir::Value* weighted_sum(ir::Function& function) {
  ir::Value* y = function.outputs().at(0);
  ir::Attrs weights;
  weights.set_tensor("value", random_f64(y->type().shape, 1234));
  ir::Value* w = function.append(ir::Op::constant, {}, weights)->output();
  ir::Value* wy = function.append(ir::Op::mul, {y, w})->output();
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < y->type().shape.rank(); ++d)
    axes.push_back(d);
  ir::Attrs sum;
  sum.set_ints("axes", axes);
  return function.append(ir::Op::reduce_sum, {wy}, sum)->output();
}

struct GradCheckOptions {
  double eps = 1e-6;        // finite-difference step
  double tolerance = 1e-6;  // relative and absolute
  // f64 parameters for which append_gradients must return no gradient (nullptr): floor, casts
  // to integers. Their finite differences must then be zero.
  std::vector<size_t> no_gradient;
};

// Checks the gradient of the function in `text` (its first output) with respect to each f64
// parameter at `args` against central differences; other parameters (indices, conditions) are
// passed through unchecked. Returns the analytic gradients of the checked parameters, in order.
inline std::vector<ir::HostTensor> check_gradients(const std::string& text,
                                                   std::vector<ir::HostTensor> args,
                                                   const GradCheckOptions& options) {
  ir::Function loss = ir::parse(text);
  ir::Value* l = weighted_sum(loss);
  loss.set_outputs({l});

  ir::Function with_grads = ir::parse(text);
  ir::Value* target = weighted_sum(with_grads);
  std::vector<ir::Value*> xs;
  for (const auto& p : with_grads.params())
    xs.push_back(p.get());
  ir::Attrs one;
  one.set_ints("shape", {}).set_dtype("dtype", ir::DType::f64).set_float("value", 1.0);
  ir::Value* seed = with_grads.append(ir::Op::fill, {}, one)->output();
  std::vector<ir::Value*> grads =
      passes::append_gradients(with_grads, {&target, 1}, {&seed, 1}, xs);
  auto no_gradient = [&](size_t i) {
    return std::find(options.no_gradient.begin(), options.no_gradient.end(), i) !=
           options.no_gradient.end();
  };
  std::vector<ir::Value*> outputs;
  std::vector<size_t> checked, zero;
  for (size_t i = 0; i < grads.size(); ++i) {
    if (xs[i]->type().dtype != ir::DType::f64) continue;
    INFO("gradient with respect to parameter " << i);
    if (no_gradient(i)) {
      CHECK(grads[i] == nullptr);
      zero.push_back(i);
      continue;
    }
    REQUIRE(grads[i] != nullptr);
    outputs.push_back(grads[i]);
    checked.push_back(i);
  }
  with_grads.set_outputs(outputs);
  std::vector<ir::HostTensor> analytic;
  if (!outputs.empty()) analytic = ir::evaluate(with_grads, args).outputs;

  auto numeric = [&](size_t i, int64_t e) {
    std::vector<ir::HostTensor> plus = args, minus = args;
    plus[i] = args[i].clone();
    minus[i] = args[i].clone();
    plus[i].data<double>()[e] += options.eps;
    minus[i].data<double>()[e] -= options.eps;
    double lp = ir::evaluate(loss, plus).outputs[0].data<double>()[0];
    double lm = ir::evaluate(loss, minus).outputs[0].data<double>()[0];
    return (lp - lm) / (2 * options.eps);
  };
  for (size_t k = 0; k < checked.size(); ++k) {
    size_t i = checked[k];
    INFO("gradient with respect to parameter " << i);
    for (int64_t e = 0; e < args[i].num_elements(); ++e) {
      double want = numeric(i, e);
      double got = analytic[k].data<double>()[e];
      INFO("element " << e);
      CHECK(got == Approx(want).margin(options.tolerance).epsilon(options.tolerance));
    }
  }
  for (size_t i : zero) {
    INFO("parameter " << i << " has no gradient: its finite differences must be zero");
    for (int64_t e = 0; e < args[i].num_elements(); ++e) {
      INFO("element " << e);
      CHECK(numeric(i, e) == Approx(0.0).margin(options.tolerance));
    }
  }
  return analytic;
}

inline std::vector<ir::HostTensor> check_gradients(const std::string& text,
                                                   std::vector<ir::HostTensor> args,
                                                   double eps = 1e-6, double tolerance = 1e-6) {
  return check_gradients(text, std::move(args), GradCheckOptions{eps, tolerance, {}});
}

// The gradients of reduce_sum(first output of `text`) with respect to its floating parameters
// (passes::differentiate), evaluated at `args`: for checks against hand-computed values.
inline std::vector<ir::HostTensor> sum_gradients(const std::string& text,
                                                 const std::vector<ir::HostTensor>& args) {
  ir::Function f = ir::parse(text);
  f.set_outputs({f.outputs().at(0)});
  passes::differentiate(f);
  std::vector<ir::HostTensor> out = ir::evaluate(f, args).outputs;
  out.erase(out.begin());
  return out;
}

// The elements of an f64 tensor.
inline std::vector<double> values_of(const ir::HostTensor& t) {
  auto v = t.values<double>();
  return {v.begin(), v.end()};
}

}  // namespace kiln::testing
