#include "kiln/frontend/formats/atomic_file.h"
#include "kiln/frontend/core/op_error.h"

#include <fmt/format.h>

namespace kiln::detail {

AtomicFile::AtomicFile(const std::string& path, std::string op, const std::source_location& loc)
    : path_(path), op_(std::move(op)), loc_(loc) {
  try {
    writer_.emplace(path);
  } catch (const runtime::AtomicWriteError& e) {
    fail(e);
  }
}

AtomicFile::~AtomicFile() = default;

void AtomicFile::write(const void* data, size_t n) {
  try {
    writer_->write(data, n);
  } catch (const runtime::AtomicWriteError& e) {
    fail(e);
  }
}

void AtomicFile::commit() {
  try {
    writer_->commit();
  } catch (const runtime::AtomicWriteError& e) {
    fail(e);
  }
}

void AtomicFile::fail(const runtime::AtomicWriteError& error) const {
  raise<IOError>(op_, {}, fmt::format("cannot write '{}': {}", path_, error.what()), loc_);
}

void write_file_atomically(const std::string& path, std::string_view bytes, const std::string& op,
                           const std::source_location& loc) {
  AtomicFile file(path, op, loc);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

}  // namespace kiln::detail
