// Random well-typed programs for differential tests: the same graph run two ways (compiled vs
// interpreter, fusion on vs off, f32 vs f64) must agree within a tolerance.
//
//   kiln::testing::for_each_random_program(200, [](const kiln::testing::RandomCase& c) {
//     INFO(c.describe());
//     auto want = kiln::ir::evaluate(c.function, c.inputs).outputs;
//     auto got = run_compiled(c.function, c.inputs);
//     std::string diff = kiln::testing::compare_results(got, want, 1e-4, 1e-4);
//     INFO(diff);
//     CHECK(diff.empty());
//   });
//
// Programs use floating dtypes only (f32, or f64 for the whole program) and stay numerically
// benign: inputs lie in [-2, 2], values that could grow are squashed with tanh before ops that
// amplify them, log/sqrt/rsqrt/reciprocal/div/pow see |x| + 1, and discontinuous ops (floor,
// ceil, round, sign, comparisons) only see values computed without rounding (parameters and
// what neg/abs/relu/max/min/shape ops make of them), so rounding differences cannot flip them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kiln/ir/function.h"
#include "kiln/ir/host_tensor.h"

namespace kiln::testing {

struct RandomProgramOptions {
  // Ops chosen at random (not counting helpers: constants, tanh, abs, add that keep values
  // benign). The actual count is drawn from [max_ops / 2, max_ops].
  int max_ops = 12;
  // Most parameters a program takes.
  int max_params = 6;
  // Rank of generated shapes (results of matmul, broadcasting or expand_dims may be one more).
  int max_rank = 4;
  // Cap on the elements of any value, counting a zero dimension as 1.
  int64_t max_elements = 1024;
  // Chance that a program computes in f64 instead of f32.
  double f64_probability = 0.2;
  // Forces the dtype. The random choices do not depend on it, so one seed gives the same graph
  // in f32 and in f64.
  std::optional<ir::DType> dtype;
  // Chance that a fresh dimension is 0 (zero-size tensors).
  double zero_size_probability = 0.03;
  // Most results a program returns.
  int max_outputs = 3;
  // Also add updates (parameter := value of its type), as traced Variable assignments do.
  bool updates = false;
  // Ops never chosen at random (helpers may still appear).
  std::vector<ir::Op> exclude_ops;
};

// A random, well-typed Function (every node appended through Function::append, so shape
// inference checked it). The same seed and options always give the same program.
ir::Function random_program(uint64_t seed, const RandomProgramOptions& options = {});

// Arguments for `function`'s parameters: floats are multiples of 1/256 in [-2, 2] (exact in f32
// and f64, so an f32 and an f64 program get the same numbers), integers in [-5, 5], bools at
// random. Deterministic in the seed and the parameter types.
std::vector<ir::HostTensor> random_inputs(const ir::Function& function, uint64_t seed);

struct RandomCase {
  uint64_t seed = 0;
  ir::Function function;
  std::vector<ir::HostTensor> inputs;
  // "random program seed 17 (rerun only it with KILN_RANDOM_SEED=17):" and the IR text.
  std::string describe() const;
};

// The program and inputs for one seed.
RandomCase random_case(uint64_t seed, const RandomProgramOptions& options = {});

// Calls fn for seeds first_seed, ..., first_seed + count - 1; when the environment variable
// KILN_RANDOM_SEED is set, for that seed only (to reproduce a failure).
void for_each_random_program(int count, const std::function<void(const RandomCase&)>& fn,
                             const RandomProgramOptions& options = {}, uint64_t first_seed = 1);

// Compares two lists of results: same count, types and values. Floats match when
// |got - want| <= atol + rtol * |want| (NaN matches NaN, infinities must be equal); other dtypes
// must be equal. Returns "" when everything matches, else a message naming the first mismatch
// (output, flat index, multi-index, both values, the tolerance) and how many elements differ.
std::string compare_results(std::span<const ir::HostTensor> got,
                            std::span<const ir::HostTensor> want, double rtol, double atol);

}  // namespace kiln::testing
