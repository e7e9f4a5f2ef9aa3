// Helpers for the tests that run the kiln command (its path comes from the KILN_TOOL definition
// tests/CMakeLists.txt gives them): run a command, check for a program, make a saved model.
#pragma once

#include <sys/wait.h>
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "file_test_util.h"

namespace kiln::testing {

struct Outcome {
  int status = -1;
  std::string out;  // standard output and error together
};

// Runs a shell command and captures its output and exit status.
inline Outcome shell(const std::string& command) {
  Outcome o;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0)
    o.out.append(buffer, n);
  int status = pclose(pipe);
  o.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

// Runs `kiln ARGS`.
inline Outcome kiln_cli(const std::string& args) {
  return shell(std::string(KILN_TOOL) + " " + args);
}

// Whether `program` is on PATH.
inline bool have(const std::string& program) {
  return std::system(("command -v " + program + " >/dev/null 2>&1").c_str()) == 0;
}

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
