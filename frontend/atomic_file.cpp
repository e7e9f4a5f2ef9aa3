#include "kiln/frontend/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "kiln/frontend/apply.h"

namespace kiln::detail {

AtomicFile::AtomicFile(const std::string& path, std::string op, const std::source_location& loc)
    : path_(path), tmp_(path + ".tmp.XXXXXX"), op_(std::move(op)), loc_(loc) {
  fd_ = ::mkstemp(tmp_.data());
  if (fd_ < 0) fail("cannot create a temporary file", errno);
  ::fchmod(fd_, 0644);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  if (buffer_.size() + n > kBufferSize) flush();
  if (n >= kBufferSize) {
    write_fd(p, n);
  } else {
    buffer_.append(p, n);
  }
}

void AtomicFile::commit() {
  flush();
  if (::fsync(fd_) != 0) fail("fsync failed", errno);
  int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) fail("close failed", errno);
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail("rename failed", errno);
  committed_ = true;
  // Make the rename itself durable; a failure here leaves a complete file, so it is ignored.
  std::string dir = std::filesystem::path(path_).parent_path().string();
  int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

void AtomicFile::fail(std::string_view what, int error) const {
  raise<IOError>(op_, {},
                 fmt::format("cannot write '{}': {}: {}", path_, what, std::strerror(error)), loc_);
}

void AtomicFile::flush() {
  write_fd(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void AtomicFile::write_fd(const char* p, size_t n) {
  while (n > 0) {
    ssize_t done = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) fail("write failed", errno);
    p += done, n -= static_cast<size_t>(done);
  }
}

void write_file_atomically(const std::string& path, std::string_view bytes, const std::string& op,
                           const std::source_location& loc) {
  AtomicFile file(path, op, loc);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

}  // namespace kiln::detail
