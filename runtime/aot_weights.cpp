// Reading and writing an AOT model's state as a safetensors file (aot_weights.h): the format is
// safetensors.h's; this file matches a file's tensors to the model's state.
#include "kiln/runtime/aot_weights.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/runtime/aot_model.h"
#include "kiln/runtime/atomic_write.h"
#include "kiln/runtime/safetensors.h"

namespace kiln::runtime::detail {

void fail(const std::string& message) {
  throw Failure(message);
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

bool valid_tensor_name(std::string_view name) {
  return name != safetensors::kMetadataKey && safetensors::valid_utf8(name);
}

void read_weights_file(const std::string& model, const char* path,
                       std::span<const TensorInfo> state,
                       const std::function<void*(size_t)>& buffer) {
  const std::string prefix = model + ": weights file '" + path + "': ";
  auto error = [&](const std::string& what) { fail(prefix + what); };
  try {
    safetensors::Reader file(path);
    for (const TensorInfo& t : state) {
      if (file.find(t.name) == nullptr)
        error("it has no tensor '" + t.name + "', which the model needs");
    }
    std::vector<std::string_view> names;
    for (const TensorInfo& t : state)
      names.push_back(t.name);
    std::sort(names.begin(), names.end());
    for (const safetensors::Entry& e : file.entries()) {
      if (!std::binary_search(names.begin(), names.end(), std::string_view(e.name))) {
        error("it holds tensor '" + printable(e.name) + "', which is not part of the model");
      }
    }
    for (const TensorInfo& t : state) {
      const safetensors::Entry& e = *file.find(t.name);
      if (e.dtype != t.dtype) {
        error(t.name + " has dtype " + safetensors::dtype_name(e.dtype) +
              " in the file, the model expects " + safetensors::dtype_name(t.dtype));
      }
      if (e.shape != t.shape) {
        error(t.name + " has shape " + shape_string(e.shape) + " in the file, the model expects " +
              shape_string(t.shape));
      }
    }
    // No Reader::check_layout(): the model reads any layout, tensors sharing bytes included.
    for (size_t s = 0; s < state.size(); ++s)
      file.read(*file.find(state[s].name), buffer(s));
  } catch (const safetensors::FormatError& e) {
    error(e.what());
  }
}

void write_weights_file(const std::string& model, const char* path,
                        std::span<const TensorInfo> state, std::span<void* const> data) {
  std::vector<safetensors::TensorRef> tensors;
  for (size_t s = 0; s < state.size(); ++s) {
    const TensorInfo& t = state[s];
    tensors.push_back({t.name, t.dtype, t.shape, data[s], static_cast<uint64_t>(t.bytes)});
  }
  try {
    safetensors::write(path, tensors);
  } catch (const AtomicWriteError& e) {
    fail(model + ": cannot write '" + path + "': " + e.what());
  } catch (const std::invalid_argument& e) {
    fail(model + ": cannot save the state: " + e.what());
  }
}

}  // namespace kiln::runtime::detail
