// Ready-made datasets, as in tf.keras.datasets: `auto [train, test] = k::datasets::fashion_mnist::
// load_data();` gives images [N, 28, 28] and labels [N]. Pixels (0..255) come as u8, as in
// TensorFlow (`k::cast(images, k::f32) / 255.f` scales them); labels (0..9) come as i32, the
// index dtype Kiln's sparse losses and metrics take.
#pragma once

#include <string>
#include <utility>

#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/core/tensor.h"

namespace kiln::datasets {

// One part of a dataset: images[i] is labelled labels[i].
struct Split {
  Tensor images;
  Tensor labels;
};

namespace mnist_format {
// Reads (train, test) from the four MNIST-layout IDX files in `dir`: train-images-idx3-ubyte,
// train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each plain or with a
// .gz suffix. Images keep the file's dtype (u8 for ubyte files); ubyte labels become i32.
// Throws IOError for a missing or malformed file, ShapeError when images are not rank 3, labels
// not rank 1, or their counts differ.
std::pair<Split, Split> load_data(const std::string& dir, Loc loc = Loc::current());
}  // namespace mnist_format

namespace fashion_mnist {
// Where the Debian package dataset-fashion-mnist installs the files.
inline constexpr const char* kDirectory = "/usr/share/datasets/fashion-mnist";
// Fashion-MNIST (train: 60000 images, test: 10000; labels 0..9, class names below). Throws an
// IOError saying how to install the Debian package dataset-fashion-mnist when it is missing.
std::pair<Split, Split> load_data(Loc loc = Loc::current());
// The ten class names, indexed by label.
inline constexpr const char* kClassNames[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                "Bag",         "Ankle boot"};
}  // namespace fashion_mnist

}  // namespace kiln::datasets
