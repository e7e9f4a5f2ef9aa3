// Keras-style preprocessing layers (keras.layers.Rescaling, CenterCrop): weightless layers that
// run as the first layers of a model, so images go in as stored (u8, any size) and the compiled
// steps, predict and saved models do the conversion.
//
//   k::Sequential model({k::layers::Rescaling(1.0 / 255), k::layers::CenterCrop(24, 24), ...});
#pragma once

#include <cstdint>
#include <source_location>
#include <string>

#include "kiln/frontend/keras/layers.h"

namespace kiln::layers {

// y = x · scale + offset. Integer and bool inputs are cast to f32 first, as Keras casts to its
// float32 compute dtype; floating inputs keep their dtype (Kiln layers have no dtype policy, and
// f64 stays f64 for gradient checks). No input_shape argument: a declared input_shape makes a
// model expect f32 samples, while this layer is there to take u8 ones; give their shape with
// model.build({h, w, c}, k::u8) instead.
class Rescaling : public Layer {
 public:
  explicit Rescaling(double scale, double offset = 0.0, std::string name = "");
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(Rescaling)
  double scale() const { return scale_; }
  double offset() const { return offset_; }

 private:
  double scale_, offset_;
};

// Crops the centre of [batch, h, w, c] images (data_format "channels_first": [batch, c, h, w]) to
// height × width, starting at row (h − height) / 2 and column (w − width) / 2 (rounded down) as
// Keras. Integer inputs come out as f32, as Keras's. An input smaller than the crop is resized to
// it, as Keras does: its centre at the crop's aspect ratio, scaled bilinearly.
class CenterCrop : public Layer {
 public:
  CenterCrop(int64_t height, int64_t width, std::string data_format = "channels_last",
             std::string name = "", std::source_location loc = std::source_location::current());
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(CenterCrop)
  int64_t height() const { return height_; }
  int64_t width() const { return width_; }
  const std::string& data_format() const { return data_format_; }

 private:
  int64_t height_, width_;
  std::string data_format_;
};

}  // namespace kiln::layers
