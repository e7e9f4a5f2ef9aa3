// IDX files, the format MNIST and Fashion-MNIST ship in: a 4-byte magic (0, 0, element type,
// rank), the dimensions as big-endian uint32, then the elements, big-endian, row-major. Files
// may be plain or gzip-compressed (told apart by the gzip magic bytes 1f 8b).
//
// The element types map to Kiln dtypes like this: ubyte (0x08) → u8, as NumPy and TensorFlow
// read MNIST images; byte (0x09), short (0x0B) and int (0x0C) → i32 (Kiln has no int8 or int16
// dtype); float (0x0D) → f32; double (0x0E) → f64.
//
// Malformed input throws kiln::IOError naming the file and the problem: a missing file, a bad
// magic, a truncated header or data (with the byte counts expected and read), dimensions whose
// byte count overflows 64 bits, or bytes after the data.
#pragma once

#include <string>

#include "kiln/frontend/core/tensor.h"

namespace kiln::idx {

// Reads an IDX file (plain or gzip-compressed) into a new tensor.
Tensor read(const std::string& path, Loc loc = Loc::current());

// Writes `t` as an IDX file, gzip-compressed when `gzip` is true: u8 as ubyte; i32 as ubyte when
// every value is in [0, 255] (it reads back as u8), else as int; f32 as float; f64 as double
// (TypeError for i64 and bool). The file is written under a temporary name and renamed into
// place.
void write(const std::string& path, const Tensor& t, bool gzip, Loc loc = Loc::current());

}  // namespace kiln::idx
