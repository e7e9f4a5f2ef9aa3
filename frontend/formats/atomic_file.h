// Writing a file so that it appears whole or not at all: runtime/atomic_write.h's writer (an
// unnamed temporary where the system has them, so a crash leaves nothing behind; the mode the
// umask gives a new file) with errors raised as IOErrors naming the op and the user's line. A
// failure, or an AtomicFile destroyed without commit(), leaves any existing file as it was.
// npy, IDX, safetensors, History CSV/SVG and weights all save this way.
#pragma once

#include <cstddef>
#include <optional>
#include <source_location>
#include <string>
#include <string_view>

#include "kiln/runtime/atomic_write.h"

namespace kiln::detail {

class AtomicFile {
 public:
  // Creates the temporary file; errors are IOErrors raised as `op` at `loc`.
  AtomicFile(const std::string& path, std::string op, const std::source_location& loc);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes, gathering small pieces into one write.
  void write(const void* data, size_t n);
  // Flushes, syncs to disk and renames the file into place.
  void commit();

 private:
  [[noreturn]] void fail(const runtime::AtomicWriteError& error) const;

  std::string path_, op_;
  std::source_location loc_;
  std::optional<runtime::AtomicWriter> writer_;
};

// Writes `bytes` to `path` through an AtomicFile.
void write_file_atomically(const std::string& path, std::string_view bytes, const std::string& op,
                           const std::source_location& loc);

}  // namespace kiln::detail
