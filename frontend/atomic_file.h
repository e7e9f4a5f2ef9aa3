// Writing a file so that it appears whole or not at all: the bytes go to a temporary file next
// to the target, which is synced and renamed over it (atomic on POSIX). A failure, or an
// AtomicFile destroyed without commit(), removes the temporary file and leaves any existing file
// as it was. npy, IDX, safetensors, History CSV/SVG and weights all save this way.
#pragma once

#include <cstddef>
#include <source_location>
#include <string>
#include <string_view>

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
  static constexpr size_t kBufferSize = size_t{1} << 20;
  [[noreturn]] void fail(std::string_view what, int error) const;
  void flush();
  void write_fd(const char* p, size_t n);

  std::string path_, tmp_, op_;
  std::source_location loc_;
  int fd_ = -1;
  bool committed_ = false;
  std::string buffer_;
};

// Writes `bytes` to `path` through an AtomicFile.
void write_file_atomically(const std::string& path, std::string_view bytes, const std::string& op,
                           const std::source_location& loc);

}  // namespace kiln::detail
