// kiln::scan: a loop over the leading axis of its inputs whose step is traced once into an IR
// body (the `scan` op, issue 15), like JAX's lax.scan:
//
//   auto [carries, ys] = k::scan(
//       [&](std::span<const k::Tensor> c, std::span<const k::Tensor> x) {
//         k::Tensor h = k::tanh(k::matmul(c[0], U) + x[0]);
//         return std::pair{std::vector{h}, std::vector{h}};  // new carries, per-step outputs
//       },
//       {h0}, {xs});                                         // xs: [T, ...]
//
// Eagerly the scan runs at once (a compiled kernel, cached by the body's text); inside
// kiln::function it is one node. Tensors the step uses from outside (weights,
// Variables, values of the enclosing trace) become operands of the scan. Gradients flow through
// it (a reverse scan). docs/ops.md, "Control flow", has the rules.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <source_location>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kiln/frontend/core/tensor.h"

namespace kiln {

struct ScanOptions {
  // Steps run t = T-1 ... 0 (results are still stacked with step t at index t).
  bool reverse = false;
  // The number of steps; required when there are no xs, else it must match their leading axis.
  std::optional<int64_t> length;
  // The body's name in IR text.
  std::string name = "scan_body";
};

struct ScanResult {
  std::vector<Tensor> carries;  // the final carries
  std::vector<Tensor> ys;       // the per-step outputs stacked on a new leading axis [T, ...]
};

// The step: (carries, one step of each xs) -> (new carries of the same types, per-step outputs).
using ScanBody = std::function<std::pair<std::vector<Tensor>, std::vector<Tensor>>(
    std::span<const Tensor> carries, std::span<const Tensor> xs)>;

// Runs `body` over steps t of `xs` (each [T, ...], sliced on axis 0), threading the carries.
ScanResult scan(const ScanBody& body, std::vector<Tensor> init, std::vector<Tensor> xs,
                ScanOptions options = {},
                std::source_location loc = std::source_location::current());

}  // namespace kiln
