// NumPy .npy files: read (format versions 1.0, 2.0, 3.0) and write (1.0, or 2.0 when the header
// needs it). Supported element types: '<f4', '<f8', '<i4', '<i8', '|u1', '|b1'; big-endian ('>')
// and native ('=') byte orders and fortran_order=True are converted on reading.
//
// Malformed input throws kiln::IOError naming the file and the problem. Bytes after the array
// data are ignored, as NumPy's np.load does (several arrays may be saved into one stream).
// Shapes whose byte count (counting zero dimensions as 1) overflows 64 bits are rejected, and
// sizes are checked against the data length before anything is allocated.
#pragma once

#include <source_location>
#include <string>
#include <string_view>

#include "kiln/frontend/core/tensor.h"

namespace kiln {

// Writes `t` to `path` as .npy; writes a temporary file in the same directory, then renames it
// into place, so `path` never holds a half-written file. Throws IOError on failure.
void save_npy(const std::string& path, const Tensor& t,
              std::source_location loc = std::source_location::current());

// Reads a .npy file into a new tensor. Throws IOError for a missing or malformed file.
Tensor load_npy(const std::string& path);

// The bytes of a .npy file holding `t`.
std::string encode_npy(const Tensor& t);

// Parses the bytes of a .npy file; `source` names them in error messages.
Tensor decode_npy(std::string_view bytes, std::string_view source = "<memory>");

}  // namespace kiln
