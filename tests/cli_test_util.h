// Helpers for the tests that run the kiln command (its path comes from the KILN_TOOL definition
// tests/CMakeLists.txt gives them) and make a saved model.
#pragma once

#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <string>
#include <vector>

#include "file_test_util.h"
#include "process_test_util.h"

namespace kiln::testing {

#ifdef KILN_TOOL
// Runs `kiln ARGS` (ARGS: plain words).
inline Outcome kiln_cli(const std::string& args) {
  return run_words(std::string(KILN_TOOL) + " " + args);
}

// Runs `kiln` with exactly these arguments.
inline Outcome kiln_cli(std::vector<std::string> args) {
  args.insert(args.begin(), KILN_TOOL);
  return run(args);
}
#endif

// A small MLP saved (batch 2, samples [3, 4]) in `dir`/mlp, with its layer names fixed.
inline Sequential saved_mlp(const TempDir& dir) {
  set_random_seed(11);
  Sequential model(
      {
          layers::Flatten(/*input_shape=*/{3, 4}),
          layers::Dense(5, "relu", {}, true, "glorot_uniform", "zeros", "hidden"),
          layers::Dense(2, "softmax", {}, true, "glorot_uniform", "zeros", "out"),
      },
      "mlp");
  model.save(dir.file("mlp"), /*batch_size=*/2);
  return model;
}

}  // namespace kiln::testing
