// Image ops: resizing and projective transforms (the ops of the augmentation layers).
#include <string>

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/ops.h"

namespace kiln::image {

Tensor resize(const Tensor& images, std::vector<int64_t> size, std::string_view method, Loc loc) {
  ir::Attrs attrs;
  attrs.set_ints("size", std::move(size));
  attrs.set_string("method", std::string(method));
  return detail::apply1(ir::Op::image_resize, {images}, attrs, loc);
}

Tensor transform(const Tensor& images, const Tensor& transforms, std::string_view interpolation,
                 std::string_view fill_mode, double fill_value, Loc loc) {
  ir::Attrs attrs;
  attrs.set_string("interpolation", std::string(interpolation));
  attrs.set_string("fill_mode", std::string(fill_mode));
  attrs.set_float("fill_value", fill_value);
  return detail::apply1(ir::Op::image_transform, {images, transforms}, attrs, loc);
}

}  // namespace kiln::image
