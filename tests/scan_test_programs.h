// IR programs with a `scan` shared by the scan tests (interpreter, CPU codegen, gradients, the
// GPU path), so each backend is checked on the same texts.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>

namespace kiln::testing {

// carry += x; y = the new carry (with `save`, the carry-ins too), over `length` steps of f64[2].
inline std::string scan_cumsum(int64_t length, bool reverse, bool save) {
  return fmt::format(R"(func @cumsum(%init: f64[2], %xs: f64[{0},2]) -> ({2}) {{
  {3} = scan(%init, %xs) {{carries = 1, length = {0}, reverse = {1}, save_carries = {4}, xs = 1}} : f64[2], f64[{0},2]{5}
    body func @step(%c: f64[2], %x: f64[2]) -> (f64[2], f64[2]) {{
      %0 = add(%c, %x) : f64[2]
      return %0, %0
    }}
  return {3}
}}
)",
                     length, reverse ? "true" : "false",
                     save ? fmt::format("f64[2], f64[{0},2], f64[{0},2]", length)
                          : fmt::format("f64[2], f64[{},2]", length),
                     save ? "%0, %1, %2" : "%0, %1", save ? "true" : "false",
                     save ? fmt::format(", f64[{},2]", length) : "");
}

// A tanh RNN over 4 steps of a batch of 2: h = tanh(h·u + x), returning the stacked h.
inline const char* const kScanRnn =
    R"(func @f(%h0: f64[2,3], %xs: f64[4,2,3], %u: f64[3,3]) -> f64[4,2,3] {
  %0, %1 = scan(%h0, %xs, %u) {carries = 1, length = 4, reverse = false, save_carries = false, xs = 1} : f64[2,3], f64[4,2,3]
    body func @cell(%h: f64[2,3], %x: f64[2,3], %u: f64[3,3]) -> (f64[2,3], f64[2,3]) {
      %0 = matmul(%h, %u) : f64[2,3]
      %1 = add(%0, %x) : f64[2,3]
      %2 = tanh(%1) : f64[2,3]
      return %2, %2
    }
  return %1
}
)";

// An LSTM cell (gates i, f, c, o) on a hoisted input projection xw, 3 steps of a batch of 2 with
// 2 units; `dtype` f32 or f64; results h, c and the stacked h.
inline std::string scan_lstm(const char* dtype, bool reverse) {
  return fmt::format(
      R"(func @f(%h0: {0}[2,2], %c0: {0}[2,2], %xw: {0}[3,2,8], %u: {0}[2,8]) -> ({0}[2,2], {0}[2,2], {0}[3,2,2]) {{
  %0, %1, %2 = scan(%h0, %c0, %xw, %u) {{carries = 2, length = 3, reverse = {1}, save_carries = false, xs = 1}} : {0}[2,2], {0}[2,2], {0}[3,2,2]
    body func @lstm(%h: {0}[2,2], %c: {0}[2,2], %xw: {0}[2,8], %u: {0}[2,8]) -> ({0}[2,2], {0}[2,2], {0}[2,2]) {{
      %0 = matmul(%h, %u) : {0}[2,8]
      %1 = add(%0, %xw) : {0}[2,8]
      %2, %3, %4, %5 = split(%1) {{axis = 1, sizes = [2, 2, 2, 2]}} : {0}[2,2], {0}[2,2], {0}[2,2], {0}[2,2]
      %6 = sigmoid(%2) : {0}[2,2]
      %7 = sigmoid(%3) : {0}[2,2]
      %8 = tanh(%4) : {0}[2,2]
      %9 = sigmoid(%5) : {0}[2,2]
      %10 = mul(%7, %c) : {0}[2,2]
      %11 = mul(%6, %8) : {0}[2,2]
      %12 = add(%10, %11) : {0}[2,2]
      %13 = tanh(%12) : {0}[2,2]
      %14 = mul(%9, %13) : {0}[2,2]
      return %14, %12, %14
    }}
  return %0, %1, %2
}}
)",
      dtype, reverse ? "true" : "false");
}

}  // namespace kiln::testing
