#include "kiln/frontend/keras/preprocessing.h"

#include <fmt/format.h>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/keras/augmentation.h"

namespace kiln::layers {

namespace {
// Keras's preprocessing layers compute in float32 whatever the stored dtype of the data.
Tensor as_floating(const Tensor& x) {
  return ir::is_floating(x.dtype()) ? x : cast(x, f32);
}
}  // namespace

Rescaling::Rescaling(double scale, double offset, std::string name)
    : Layer("rescaling", std::move(name), std::nullopt), scale_(scale), offset_(offset) {}

Tensor Rescaling::call(const Tensor& x, bool) {
  Tensor y = as_floating(x) * scale_;
  return offset_ == 0.0 ? y : y + offset_;
}

CenterCrop::CenterCrop(int64_t height, int64_t width, std::string data_format, std::string name,
                       std::source_location loc)
    : Layer("center_crop", std::move(name), std::nullopt),
      height_(height),
      width_(width),
      data_format_(std::move(data_format)) {
  if (height <= 0 || width <= 0) {
    detail::raise<ValueError>(
        "CenterCrop", {},
        fmt::format("height and width must be positive, got {} and {}", height, width), loc);
  }
  if (data_format_ != "channels_last" && data_format_ != "channels_first") {
    detail::raise<ValueError>(
        "CenterCrop", {},
        fmt::format("data_format must be \"channels_last\" or \"channels_first\", got \"{}\"",
                    data_format_),
        loc);
  }
}

Tensor CenterCrop::call(const Tensor& x, bool) {
  bool last = data_format_ == "channels_last";
  if (x.rank() != 4) {
    detail::raise<ShapeError>(
        "CenterCrop", {x},
        fmt::format("needs inputs of rank 4 ({}), got shape {}",
                    last ? "[batch, height, width, channels]" : "[batch, channels, height, width]",
                    x.shape().to_string()),
        std::source_location::current());
  }
  int64_t h_axis = last ? 1 : 2;
  int64_t h = x.shape()[h_axis], w = x.shape()[h_axis + 1];
  if (h < height_ || w < width_) {
    // As Keras: images smaller than the crop are resized to it (the centre at the crop's aspect
    // ratio, scaled bilinearly).
    Tensor images = as_floating(last ? x : transpose(x, {0, 2, 3, 1}));
    Tensor y = smart_resize(images, height_, width_);
    return last ? y : transpose(y, {0, 3, 1, 2});
  }
  int64_t top = (h - height_) / 2, left = (w - width_) / 2;
  Slice rows(top, top + height_), cols(left, left + width_);
  // Cropped first, so that only the kept pixels are converted.
  Tensor crop =
      last ? x.index({Slice(), rows, cols, Slice()}) : x.index({Slice(), Slice(), rows, cols});
  return as_floating(crop);
}

}  // namespace kiln::layers
