// Internal: window geometry of conv2d and the 2-D pools. The one place that turns the `ksize`,
// `strides`, `dilations` and `padding` attributes into output sizes and padding amounts; the
// shape rules, the interpreter kernels and codegen all read it from here.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include "kiln/ir/attrs.h"
#include "kiln/ir/types.h"

namespace kiln::ir {

enum class Padding { same, valid };

// Parses "same" or "valid"; throws ValueError otherwise.
Padding parse_padding(std::string_view text);

// One spatial dimension of a sliding window: input position of tap k for output o is
// o * stride - pad_before + k * dilation (positions outside [0, in) are padding).
struct WindowDim {
  int64_t in = 0;      // input size
  int64_t kernel = 1;  // taps in the window (before dilation)
  int64_t stride = 1;
  int64_t dilation = 1;
  int64_t out = 0;         // output size
  int64_t pad_before = 0;  // TensorFlow's split: pad_before = total / 2, the rest at the end
  int64_t pad_after = 0;

  // Input position of tap k for output o (may lie outside [0, in)).
  int64_t input_pos(int64_t o, int64_t k) const { return o * stride - pad_before + k * dilation; }
  // The taps [first, last) of output o whose input positions lie inside [0, in); loops over them
  // never visit padding, however large the window.
  std::pair<int64_t, int64_t> taps_inside(int64_t o) const;
};

// Output size and padding of one dimension. kernel, stride, dilation ≥ 1 (checked by the
// callers). "same": out = ceil(in / stride); "valid": out = floor((in − (kernel−1)·dilation − 1)
// / stride) + 1, a ShapeError if the dilated window is larger than the input.
WindowDim compute_window(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                         Padding padding);

// Height and width windows of an NHWC operation.
struct Window2D {
  WindowDim h;
  WindowDim w;
};

// Validates conv2d's attributes (`strides`, `dilations`: two positive ints, default [1, 1];
// `padding`) against input [N,H,W,C] and filter [KH,KW,C,O] and returns the windows.
Window2D conv2d_window(const Shape& input, const Shape& filter, const Attrs& attrs);

// Validates a pool's attributes (`ksize`, `strides`: two positive ints; `padding`) against input
// [N,H,W,C] and returns the windows.
Window2D pool_window(const Shape& input, const Attrs& attrs);

}  // namespace kiln::ir
