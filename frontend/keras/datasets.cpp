#include "kiln/frontend/keras/datasets.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <future>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/formats/idx.h"

namespace kiln::datasets {

namespace {

constexpr const char* kTrainImages = "train-images-idx3-ubyte";
constexpr const char* kTrainLabels = "train-labels-idx1-ubyte";
constexpr const char* kTestImages = "t10k-images-idx3-ubyte";
constexpr const char* kTestLabels = "t10k-labels-idx1-ubyte";

// dir/name.gz if it exists, else dir/name if it exists, else "".
std::string find_file(const std::string& dir, const std::string& name) {
  std::error_code ec;
  for (const std::string& candidate : {name + ".gz", name}) {
    std::filesystem::path path = std::filesystem::path(dir) / candidate;
    if (std::filesystem::is_regular_file(path, ec)) return path.string();
  }
  return "";
}

std::string require_file(const std::string& dir, const std::string& name, const Loc& loc) {
  std::string path = find_file(dir, name);
  if (path.empty()) {
    detail::raise<IOError>("datasets.mnist_format.load_data", {},
                           fmt::format("'{}' holds neither {}.gz nor {}", dir, name, name), loc);
  }
  return path;
}

// ubyte labels (read as u8) widened to i32; labels of any other dtype as they are.
Tensor labels_as_i32(Tensor labels) {
  if (labels.dtype() != DType::u8) return labels;
  auto bytes = labels.host().values<uint8_t>();
  ir::HostTensor wide(DType::i32, labels.shape());
  std::copy(bytes.begin(), bytes.end(), wide.data<int32_t>());
  return Tensor(std::move(wide));
}

Split check_split(Split split, const std::string& images_path, const std::string& labels_path,
                  const Loc& loc) {
  const char* op = "datasets.mnist_format.load_data";
  if (split.images.rank() != 3) {
    detail::raise<ShapeError>(
        op, {split.images},
        fmt::format("'{}' holds a {} tensor; images must be rank 3 [N, rows, cols]", images_path,
                    split.images.shape().to_string()),
        loc);
  }
  if (split.labels.rank() != 1) {
    detail::raise<ShapeError>(op, {split.labels},
                              fmt::format("'{}' holds a {} tensor; labels must be rank 1 [N]",
                                          labels_path, split.labels.shape().to_string()),
                              loc);
  }
  if (split.images.shape()[0] != split.labels.shape()[0]) {
    detail::raise<ShapeError>(
        op, {split.images, split.labels},
        fmt::format("'{}' holds {} images but '{}' holds {} labels", images_path,
                    split.images.shape()[0], labels_path, split.labels.shape()[0]),
        loc);
  }
  split.labels = labels_as_i32(std::move(split.labels));
  return split;
}

}  // namespace

namespace mnist_format {

std::pair<Split, Split> load_data(const std::string& dir, Loc loc) {
  std::string paths[4] = {require_file(dir, kTrainImages, loc),
                          require_file(dir, kTrainLabels, loc), require_file(dir, kTestImages, loc),
                          require_file(dir, kTestLabels, loc)};
  // Decompressing the training images takes most of the time; read the test files alongside.
  auto test_images = std::async(std::launch::async, [&] { return idx::read(paths[2], loc); });
  Split train{idx::read(paths[0], loc), idx::read(paths[1], loc)};
  Split test{test_images.get(), idx::read(paths[3], loc)};
  return {check_split(std::move(train), paths[0], paths[1], loc),
          check_split(std::move(test), paths[2], paths[3], loc)};
}

}  // namespace mnist_format

namespace fashion_mnist {

std::pair<Split, Split> load_data(Loc loc) {
  for (const char* name : {kTrainImages, kTrainLabels, kTestImages, kTestLabels}) {
    if (find_file(kDirectory, name).empty()) {
      detail::raise<IOError>(
          "datasets.fashion_mnist.load_data", {},
          fmt::format("Fashion-MNIST is not installed: '{}' has no {}.gz. Install the Debian "
                      "package dataset-fashion-mnist (`sudo apt-get install "
                      "dataset-fashion-mnist`, or run scripts/setup.sh)",
                      kDirectory, name),
          loc);
    }
  }
  return mnist_format::load_data(kDirectory, loc);
}

}  // namespace fashion_mnist

}  // namespace kiln::datasets
