// Central finite-difference checks of the autodiff pass, in f64, on IR functions: the tests of
// every gradient rule go through here.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kiln/ir/function.h"
#include "kiln/ir/interpreter.h"
#include "kiln/ir/parser.h"
#include "kiln/passes/autodiff.h"

namespace kiln::testing {

// f64 values drawn uniformly from [lo, hi) with a fixed seed.
inline ir::HostTensor random_f64(const ir::Shape& shape, uint32_t seed, double lo = -1.0,
                                 double hi = 1.0) {
  ir::HostTensor t(ir::DType::f64, shape);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (double& v : t.values<double>()) v = dist(rng);
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
  for (int64_t d = 0; d < y->type().shape.rank(); ++d) axes.push_back(d);
  ir::Attrs sum;
  sum.set_ints("axes", axes);
  return function.append(ir::Op::reduce_sum, {wy}, sum)->output();
}

// Checks the gradient of the function in `text` (its first output) with respect to each f64
// parameter at `args` against central differences. Returns the analytic gradients.
inline std::vector<ir::HostTensor> check_gradients(const std::string& text,
                                                   std::vector<ir::HostTensor> args,
                                                   double eps = 1e-6, double tolerance = 1e-6) {
  ir::Function loss = ir::parse(text);
  ir::Value* l = weighted_sum(loss);
  loss.set_outputs({l});

  ir::Function with_grads = ir::parse(text);
  ir::Value* target = weighted_sum(with_grads);
  std::vector<ir::Value*> xs;
  for (const auto& p : with_grads.params()) xs.push_back(p.get());
  ir::Attrs one;
  one.set_ints("shape", {}).set_dtype("dtype", ir::DType::f64).set_float("value", 1.0);
  ir::Value* seed = with_grads.append(ir::Op::fill, {}, one)->output();
  std::vector<ir::Value*> grads = passes::append_gradients(with_grads, {&target, 1}, {&seed, 1}, xs);
  std::vector<ir::Value*> outputs;
  std::vector<size_t> checked;
  for (size_t i = 0; i < grads.size(); ++i) {
    if (xs[i]->type().dtype != ir::DType::f64) continue;
    REQUIRE(grads[i] != nullptr);
    outputs.push_back(grads[i]);
    checked.push_back(i);
  }
  with_grads.set_outputs(outputs);
  std::vector<ir::HostTensor> analytic = ir::evaluate(with_grads, args).outputs;

  for (size_t k = 0; k < checked.size(); ++k) {
    size_t i = checked[k];
    INFO("gradient with respect to parameter " << i);
    for (int64_t e = 0; e < args[i].num_elements(); ++e) {
      std::vector<ir::HostTensor> plus = args, minus = args;
      plus[i] = args[i].clone();
      minus[i] = args[i].clone();
      plus[i].data<double>()[e] += eps;
      minus[i].data<double>()[e] -= eps;
      double lp = ir::evaluate(loss, plus).outputs[0].data<double>()[0];
      double lm = ir::evaluate(loss, minus).outputs[0].data<double>()[0];
      double numeric = (lp - lm) / (2 * eps);
      double got = analytic[k].data<double>()[e];
      INFO("element " << e);
      CHECK(got == Approx(numeric).margin(tolerance).epsilon(tolerance));
    }
  }
  return analytic;
}

}  // namespace kiln::testing
