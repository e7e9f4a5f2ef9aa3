// Helpers for the file-format tests (npy, IDX, safetensors): tensors from values, counting
// tensors of every dtype, a scratch directory, raw byte I/O, and counting text in an output.
#pragma once

#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/ir/host_tensor.h"

namespace kiln::testing {

// A tensor of C++ element type T with `values` in row-major order.
template <class T>
Tensor make_tensor(Shape shape, const std::vector<T>& values) {
  ir::HostTensor t(ir::dtype_of<T>(), std::move(shape));
  REQUIRE(static_cast<size_t>(t.num_elements()) == values.size());
  for (size_t i = 0; i < values.size(); ++i)
    t.data<T>()[i] = values[i];
  return Tensor(std::move(t));
}

// A tensor of `dtype` holding (3i − 7)/2 (bools: i % 3 == 1), for round trips.
inline Tensor counting(DType dtype, Shape shape) {
  ir::HostTensor t(dtype, shape);
  ir::visit_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      if constexpr (std::is_same_v<T, bool>)
        p[i] = i % 3 == 1;
      else
        p[i] = static_cast<T>(i * 3 - 7) / static_cast<T>(2);
    }
  });
  return Tensor(std::move(t));
}

// A fresh empty directory, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kiln_test_XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// How many times `what` occurs in `text`, overlapping occurrences included.
inline size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

// `v` as 8 little-endian bytes.
inline std::string le64(uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i)
    out += static_cast<char>(v >> (8 * i));
  return out;
}

// The bytes of `values` as they lie in memory.
template <class T>
std::string raw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A safetensors file with `header` (padded with spaces to 8 bytes) and `data`.
inline std::string safetensors_bytes(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + data;
}

}  // namespace kiln::testing
