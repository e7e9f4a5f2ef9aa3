// Internal to the AOT runtime (aot_model.cpp): reading and writing the model state as a
// safetensors file, through Kiln's one safetensors reader and writer (safetensors.h), with the
// model's checks and messages. No LLVM, no IR, no fmt, no iostream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/runtime/safetensors.h"

namespace kiln::runtime::detail {

// An error whose message is complete (it names the model); other exceptions get the name added.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws Failure(message).
[[noreturn]] void fail(const std::string& message);

// A tensor of an AOT model: an input, an output or part of its state.
struct TensorInfo {
  std::string name;
  int32_t dtype = 0;  // a KILN_AOT_* value
  std::vector<int64_t> shape;
  int64_t bytes = 0;
  int64_t offset = 0;  // state: in the embedded weights
};

// Bytes per element of a KILN_AOT_* dtype, or 0 for an unknown one.
using safetensors::dtype_size;
// A name from a file, made safe to print: control bytes become '?', long names are cut.
using safetensors::printable;
// "[2, 3]".
std::string shape_string(const std::vector<int64_t>& shape);
// Whether `name` can name a tensor in a safetensors file (valid UTF-8, not "__metadata__").
bool valid_tensor_name(std::string_view name);

// Reads the safetensors file at `path`, which must hold exactly the tensors of `state` with
// their dtypes and shapes: state[s] goes, in order, to buffer(s) (state[s].bytes long), with
// BOOL bytes made 0 or 1. Throws Failure naming `model` and the file.
void read_weights_file(const std::string& model, const char* path,
                       std::span<const TensorInfo> state,
                       const std::function<void*(size_t)>& buffer);

// Saves state[s] with the bytes at data[s] to `path` (safetensors::write), atomically: `path` is
// replaced whole or left as it was. Throws Failure naming `model`.
void write_weights_file(const std::string& model, const char* path,
                        std::span<const TensorInfo> state, std::span<void* const> data);

}  // namespace kiln::runtime::detail
