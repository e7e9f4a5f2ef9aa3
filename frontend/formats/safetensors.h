// safetensors files, the Hugging Face format: an 8-byte little-endian header length n, n bytes
// of JSON ({name: {"dtype", "shape", "data_offsets": [begin, end]}, optional "__metadata__":
// {string: string}}), then the tensors' raw little-endian bytes. Kiln reads and writes the
// dtypes "F32", "F64", "I32", "I64", "U8" and "BOOL".
//
// The format itself is runtime/safetensors.h's, shared with the AOT runtime; this is its face for
// Tensors. Writing follows the reference implementation's layout: the header's JSON (keys
// sorted) is padded with spaces to a multiple of 8 bytes, and the data is ordered by dtype (I64,
// F64, F32, I32, U8, BOOL) then name, so every tensor starts naturally aligned. Reading checks
// everything before it allocates and throws kiln::IOError naming the file and the problem.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kiln/frontend/core/tensor.h"

namespace kiln::safetensors {

// Writes `tensors` (and `metadata`, if any) to `path`: to a temporary file in the same
// directory, flushed to disk, then renamed into place, so a failed save leaves an existing file
// untouched. Throws ValueError for duplicate or reserved ("__metadata__") names and for
// undefined or symbolic tensors; IOError when the file cannot be written. Tensors on a GPU are
// copied to the host to be written.
void save(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata = {}, Loc loc = Loc::current());

// Reads every tensor in the file, sorted by name.
std::vector<std::pair<std::string, Tensor>> load(const std::string& path, Loc loc = Loc::current());

// The file's "__metadata__" (empty if it has none); reads only the header.
std::map<std::string, std::string> metadata(const std::string& path, Loc loc = Loc::current());

}  // namespace kiln::safetensors
