// Helpers for pass tests: run a pass on IR text, check that the result verifies and computes
// what the input computed (ir::evaluate on random arguments).
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kiln/ir/interpreter.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/ir/verifier.h"

namespace kiln::testing {

// Random arguments for `f`'s parameters: floats in [-3, 3], integers in [-5, 5], random bools.
inline std::vector<ir::HostTensor> random_args(const ir::Function& f, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<ir::HostTensor> args;
  for (const auto& p : f.params()) {
    ir::HostTensor t(p->type());
    ir::visit_dtype(t.dtype(), [&](auto zero) {
      using T = decltype(zero);
      T* data = t.data<T>();
      for (int64_t i = 0; i < t.num_elements(); ++i) {
        if constexpr (std::is_same_v<T, bool>)
          data[i] = rng() % 2 == 0;
        else if constexpr (std::is_floating_point_v<T>)
          data[i] = static_cast<T>(std::uniform_real_distribution<double>(-3, 3)(rng));
        else
          data[i] = static_cast<T>(static_cast<int>(rng() % 11) - 5);
      }
    });
    args.push_back(std::move(t));
  }
  return args;
}

// Same type and values (NaN equals NaN; floats within a relative 1e-6, so −0 equals +0).
inline void check_same(const ir::HostTensor& want, const ir::HostTensor& got) {
  REQUIRE(want.type() == got.type());
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    double a = want.element_as_double(i), b = got.element_as_double(i);
    INFO("element " << i << ": " << a << " vs " << b);
    if (std::isnan(a)) {
      CHECK(std::isnan(b));
    } else {
      CHECK(std::abs(a - b) <= 1e-6 * std::max(1.0, std::abs(a)));
    }
  }
}

// Checks that `after` verifies and gives the results and updates of `before` on a few sets of
// random arguments.
inline void check_equivalent(const ir::Function& before, const ir::Function& after) {
  REQUIRE_NOTHROW(ir::verify(after));
  for (unsigned seed = 1; seed <= 3; ++seed) {
    auto args = random_args(before, seed);
    ir::EvalResult want = ir::evaluate(before, args);
    ir::EvalResult got = ir::evaluate(after, args);
    REQUIRE(want.outputs.size() == got.outputs.size());
    REQUIRE(want.updates.size() == got.updates.size());
    for (size_t i = 0; i < want.outputs.size(); ++i)
      check_same(want.outputs[i], got.outputs[i]);
    for (size_t i = 0; i < want.updates.size(); ++i)
      check_same(want.updates[i], got.updates[i]);
  }
}

// Runs `pass` on the IR `text`, checks the result against the input, returns it as text.
inline std::string run_pass(const std::function<bool(ir::Function&)>& pass, const std::string& text,
                            bool* changed = nullptr) {
  ir::Function before = ir::parse(text);
  ir::Function after = ir::parse(text);
  bool c = pass(after);
  if (changed) *changed = c;
  check_equivalent(before, after);
  return ir::print(after);
}

}  // namespace kiln::testing
