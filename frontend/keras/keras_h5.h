// Keras HDF5 weight files: what tf.keras 2's `model.save_weights("x.h5")` writes (Keras 3 loads
// it too), the `model_weights` group of a whole-model `model.save("m.h5")`, and Keras 3's own
// `model.save_weights("x.weights.h5")`. Model's save_weights and load_weights use these for .h5
// paths and HDF5 files.
//
// Keras 2 layout: the root's `layer_names` attribute lists model.layers in order; each layer's
// group has `weight_names` ("dense/kernel:0", ...: trainable weights, then the others) and a
// dataset at each of those names, relative to the group. Dense kernels are [in, out], Conv2D
// kernels [kh, kw, in, out], BatchNormalization gamma, beta, moving_mean, moving_variance.
//
// Keras 3 layout (.weights.h5): `layers/<class>[_k]/vars/<i>`, the layer named by its place
// (snake-case class name and a counter per class: the second Dense is "dense_1" whatever its
// name), i over its weights in creation order. Loading walks the model; a layer missing from the
// file has no variables there, and by_name does not apply.
//
// Loading matches as Keras does: by order (the k-th layer with weights gets the file's k-th
// layer with weights; names are ignored) or by name, with Keras's messages listing every count
// and shape that differs, or warnings and skips under skip_mismatch. Every value is read and
// checked before any weight is assigned, so a failed load changes nothing. The file is read in a
// child process (formats/isolated.h): libhdf5 can crash or hang on a malformed file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kiln/frontend/keras/layers.h"
#include "kiln/frontend/keras/model.h"

namespace kiln::keras_h5 {

// The Keras version written into files: a Keras 2 one, so Keras converts nothing on loading.
inline constexpr const char* kKerasVersion = "2.11.0";

// Whether load_weights reads `path` as a Keras HDF5 file: it starts with the HDF5 signature or
// its name ends in .h5 or .hdf5.
bool reads_h5(const std::string& path);
// Whether save_weights writes `path` as a Keras HDF5 file: its name ends in .h5 or .hdf5.
bool writes_h5(const std::string& path);

// Loads the file's weights into `layers` (a model's layers, in model order; `model_name` for
// messages). ValueError listing what does not match, IOError for a file that cannot be read;
// skips are logged as warnings. Raised as load_weights at `loc`.
void load_weights(const std::string& path,
                  const std::vector<std::shared_ptr<layers::Layer>>& layers,
                  const std::string& model_name, const LoadWeightsOptions& options, Loc loc);

// Writes `layers`' weights (built) atomically: in Keras 3's layout for a name ending in
// .weights.h5 (the layout Keras 3 expects of that name), else in the Keras 2 layout.
void save_weights(const std::string& path,
                  const std::vector<std::shared_ptr<layers::Layer>>& layers, Loc loc);

}  // namespace kiln::keras_h5

namespace kiln::detail {

// keras_h5::load_weights in the caller's process, without the child: for fuzz/keras_h5_fuzz.cpp
// only, whose coverage counters and sanitizer reports a forked child would keep to itself. A
// malformed file can crash or hang libhdf5 here; never use it on a user's file.
void keras_h5_load_weights_in_process(const std::string& path,
                                      const std::vector<std::shared_ptr<layers::Layer>>& layers,
                                      const std::string& model_name,
                                      const LoadWeightsOptions& options, Loc loc);

}  // namespace kiln::detail
