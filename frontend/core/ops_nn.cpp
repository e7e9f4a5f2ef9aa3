// Neural-network ops: convolution, pooling, softmax.
#include <algorithm>
#include <cctype>
#include <string>

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/ops.h"

namespace kiln {

using detail::apply1;

std::string detail::lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

namespace {

// One value means the same for both spatial dims (as Keras' strides=2).
std::vector<int64_t> pair_of(std::vector<int64_t> v) {
  if (v.size() == 1) v.push_back(v[0]);
  return v;
}

using detail::lower;

Tensor pool(ir::Op op, const Tensor& input, std::vector<int64_t> ksize,
            std::vector<int64_t> strides, std::string_view padding, const Loc& loc) {
  ksize = pair_of(std::move(ksize));
  strides = strides.empty() ? ksize : pair_of(std::move(strides));
  ir::Attrs attrs;
  attrs.set_ints("ksize", std::move(ksize));
  attrs.set_ints("strides", std::move(strides));
  attrs.set_string("padding", lower(padding));
  return apply1(op, {input}, attrs, loc);
}

Tensor softmax_like(ir::Op op, const Tensor& x, int64_t axis, const Loc& loc) {
  ir::Attrs attrs;
  attrs.set_int("axis", axis);
  return apply1(op, {x}, attrs, loc);
}

}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& filter, std::vector<int64_t> strides,
              std::string_view padding, std::vector<int64_t> dilations, Loc loc) {
  ir::Attrs attrs;
  attrs.set_ints("strides", pair_of(std::move(strides)));
  attrs.set_string("padding", lower(padding));
  attrs.set_ints("dilations", pair_of(std::move(dilations)));
  return apply1(ir::Op::conv2d, {input, filter}, attrs, loc);
}

Tensor max_pool2d(const Tensor& input, std::vector<int64_t> ksize, std::vector<int64_t> strides,
                  std::string_view padding, Loc loc) {
  return pool(ir::Op::max_pool2d, input, std::move(ksize), std::move(strides), padding, loc);
}

Tensor avg_pool2d(const Tensor& input, std::vector<int64_t> ksize, std::vector<int64_t> strides,
                  std::string_view padding, Loc loc) {
  return pool(ir::Op::avg_pool2d, input, std::move(ksize), std::move(strides), padding, loc);
}

Tensor softmax(const Tensor& x, int64_t axis, Loc loc) {
  return softmax_like(ir::Op::softmax, x, axis, loc);
}

Tensor log_softmax(const Tensor& x, int64_t axis, Loc loc) {
  return softmax_like(ir::Op::log_softmax, x, axis, loc);
}

}  // namespace kiln
