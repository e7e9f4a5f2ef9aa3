#include "kiln/ir/ops/window.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "kiln/ir/error.h"

namespace kiln::ir {

namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Reads an attribute that must hold two positive ints (height, width).
std::vector<int64_t> pair_attr(const Attrs& attrs, std::string_view name, bool has_default) {
  if (has_default && !attrs.has(name)) return {1, 1};
  const std::vector<int64_t>& v = attrs.get_ints(name);
  if (v.size() != 2) {
    throw ValueError(fmt::format("attribute '{}' must hold 2 ints (height, width), got [{}]", name,
                                 fmt::join(v, ", ")));
  }
  if (v[0] < 1 || v[1] < 1) {
    throw ValueError(
        fmt::format("attribute '{}' must be positive, got [{}]", name, fmt::join(v, ", ")));
  }
  return v;
}

void check_nhwc(const Shape& input) {
  if (input.rank() != 4) {
    throw ShapeError(fmt::format("input must have rank 4 [N, H, W, C], got rank {}", input.rank()));
  }
}

Window2D make_windows(const Shape& input, int64_t kh, int64_t kw, const Attrs& attrs,
                      std::span<const int64_t> strides, std::span<const int64_t> dilations) {
  Padding padding = parse_padding(attrs.get_string("padding"));
  return Window2D{compute_window(input[1], kh, strides[0], dilations[0], padding),
                  compute_window(input[2], kw, strides[1], dilations[1], padding)};
}

}  // namespace

Padding parse_padding(std::string_view text) {
  if (text == "same") return Padding::same;
  if (text == "valid") return Padding::valid;
  throw ValueError(fmt::format("padding must be \"same\" or \"valid\", got \"{}\"", text));
}

WindowDim compute_window(int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                         Padding padding) {
  KILN_CHECK(in >= 0 && kernel >= 1 && stride >= 1 && dilation >= 1, "bad window parameters");
  if (kernel - 1 > (kMax - 1) / dilation) {
    throw ShapeError(
        fmt::format("window of {} taps with dilation {} is too large", kernel, dilation));
  }
  const int64_t span = (kernel - 1) * dilation + 1;  // extent of the dilated window
  WindowDim w{in, kernel, stride, dilation, 0, 0, 0};
  if (padding == Padding::same) {
    w.out = in / stride + (in % stride != 0 ? 1 : 0);
    // (out - 1) * stride < in, so this cannot overflow even for a huge window.
    int64_t excess = w.out == 0 ? 0 : ((w.out - 1) * stride - in) + span;
    int64_t total = excess > 0 ? excess : 0;
    w.pad_before = total / 2;
    w.pad_after = total - w.pad_before;
  } else {
    if (span > in) {
      throw ShapeError(fmt::format(
          "with padding \"valid\" the window ({} taps, dilation {}, extent {}) is larger than "
          "the input dimension {}",
          kernel, dilation, span, in));
    }
    w.out = (in - span) / stride + 1;
  }
  return w;
}

std::pair<int64_t, int64_t> WindowDim::taps_inside(int64_t o) const {
  const int64_t start = o * stride - pad_before;  // position of tap 0
  if (start >= in) return {0, 0};
  auto ceil_div = [](int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); };
  const int64_t first = start >= 0 ? 0 : ceil_div(-start, dilation);
  const int64_t last = std::min(kernel, ceil_div(in - start, dilation));
  return {first, std::max(first, last)};
}

Window2D conv2d_window(const Shape& input, const Shape& filter, const Attrs& attrs) {
  check_nhwc(input);
  if (filter.rank() != 4) {
    throw ShapeError(
        fmt::format("filter must have rank 4 [KH, KW, C_in, C_out], got rank {}", filter.rank()));
  }
  if (filter[2] != input[3]) {
    throw ShapeError(fmt::format(
        "filter in-channels (dimension 2, {}) must equal the input channels (dimension 3, {})",
        filter[2], input[3]));
  }
  if (filter[0] < 1 || filter[1] < 1) {
    throw ShapeError(
        fmt::format("filter height and width must be at least 1, got {}x{}", filter[0], filter[1]));
  }
  std::vector<int64_t> strides = pair_attr(attrs, "strides", true);
  std::vector<int64_t> dilations = pair_attr(attrs, "dilations", true);
  return make_windows(input, filter[0], filter[1], attrs, strides, dilations);
}

Window2D pool_window(const Shape& input, const Attrs& attrs) {
  check_nhwc(input);
  std::vector<int64_t> ksize = pair_attr(attrs, "ksize", false);
  std::vector<int64_t> strides = pair_attr(attrs, "strides", false);
  const int64_t no_dilation[] = {1, 1};
  return make_windows(input, ksize[0], ksize[1], attrs, strides, no_dilation);
}

}  // namespace kiln::ir
