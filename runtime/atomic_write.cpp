#include "kiln/runtime/atomic_write.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string_view>

namespace kiln::runtime {

namespace {

constexpr size_t kBufferSize = size_t{1} << 20;
constexpr std::string_view kPattern = ".kiln-tmp-";
constexpr size_t kSuffixLength = 6;
constexpr int kNameAttempts = 100;

// The folder holding `path` and the name in it.
std::pair<std::string, std::string> split_path(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

// A fresh 6-character [A-Za-z0-9] suffix: distinct per call in this process, and spread so that
// processes writing the same target rarely pick the same one (O_EXCL / linkat catch the rest).
std::string random_suffix() {
  static std::atomic<uint64_t> counter{0};
  uint64_t z = counter.fetch_add(1) * 0x9E3779B97F4A7C15ull;
  z ^= static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  z ^= static_cast<uint64_t>(::getpid()) << 32;
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string s;
  for (size_t i = 0; i < kSuffixLength; ++i) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    s += kChars[z % (sizeof kChars - 1)];
  }
  return s;
}

bool is_suffix_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// Whether `name` is `base` + our temporary pattern + 6 suffix characters. Only ours: the
// ".tmp.XXXXXX" names of older writers could as well be a user's own files.
bool is_temporary_of(std::string_view name, std::string_view base) {
  if (name.size() <= base.size() || name.substr(0, base.size()) != base) return false;
  std::string_view rest = name.substr(base.size());
  return rest.size() == kPattern.size() + kSuffixLength &&
         rest.substr(0, kPattern.size()) == kPattern &&
         std::all_of(rest.begin() + static_cast<ptrdiff_t>(kPattern.size()), rest.end(),
                     is_suffix_char);
}

void sync_folder(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

AtomicWriteError::AtomicWriteError(std::string step, int error)
    : std::runtime_error(step + ": " + std::strerror(error)),
      step_(std::move(step)),
      error_(error) {}

int remove_stale_temporaries(const std::string& path, long min_age_seconds) {
  auto [dir, base] = split_path(path);
  if (base.empty()) return 0;
  DIR* folder = ::opendir(dir.c_str());
  if (folder == nullptr) return 0;
  const int dir_fd = ::dirfd(folder);
  const std::time_t now = std::time(nullptr);
  int removed = 0;
  while (const dirent* entry = ::readdir(folder)) {
    if (!is_temporary_of(entry->d_name, base)) continue;
    struct stat st;
    if (::fstatat(dir_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    // Only plain files of this user that nobody has written to for a while: a writer that is
    // still busy keeps its temporary's mtime fresh.
    if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) continue;
    if (now - st.st_mtime < min_age_seconds) continue;
    if (::unlinkat(dir_fd, entry->d_name, 0) == 0) ++removed;
  }
  ::closedir(folder);
  return removed;
}

AtomicWriter::AtomicWriter(std::string path, Temporary kind) : path_(std::move(path)) {
  dir_ = split_path(path_).first;
#ifdef O_TMPFILE
  if (kind == Temporary::unnamed_if_possible) {
    // The mode is applied with the umask, as for any new file.
    fd_ = ::open(dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    // commit() names the file through /proc; without it, fall back to a named temporary.
    if (fd_ >= 0 && ::access(("/proc/self/fd/" + std::to_string(fd_)).c_str(), F_OK) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (fd_ >= 0) return;
  }
#else
  (void)kind;
#endif
  // Only here: with O_TMPFILE nothing of ours outlives a crash but for an instant in commit(),
  // and a folder of many files should not be read through on every save.
  remove_stale_temporaries(path_);
  for (int attempt = 0; attempt < kNameAttempts && fd_ < 0; ++attempt) {
    temp_ = path_ + std::string(kPattern) + random_suffix();
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) {
    int error = errno;
    temp_.clear();
    throw AtomicWriteError("cannot create a temporary file", error);
  }
}

AtomicWriter::~AtomicWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
}

void AtomicWriter::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  if (buffer_.size() + n > kBufferSize) flush();
  if (n >= kBufferSize) {
    write_fd(p, n);
  } else {
    buffer_.append(p, n);
  }
}

int AtomicWriter::fd() {
  flush();
  return fd_;
}

void AtomicWriter::flush() {
  write_fd(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void AtomicWriter::write_fd(const char* p, size_t n) {
  while (n > 0) {
    ssize_t done = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) throw AtomicWriteError("write failed", errno);
    p += done, n -= static_cast<size_t>(done);
  }
}

// Gives the unnamed file the target's name: directly when there is no target yet (nothing named
// ever exists but the result), else under a fresh temporary name renamed over the target.
void AtomicWriter::link_into_place() {
#ifdef O_TMPFILE
  const std::string self = "/proc/self/fd/" + std::to_string(fd_);
  auto link_as = [&](const std::string& name) {
    return ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW);
  };
  if (link_as(path_) == 0) return;
  if (errno != EEXIST) throw AtomicWriteError("cannot link the file into place", errno);
  // The temporary name lives only until the rename below; no folder scan for leftovers here, as
  // this is the path of every ordinary save that replaces a file (a checkpoint each epoch).
  std::string temp;
  int linked = -1;
  for (int attempt = 0; attempt < kNameAttempts && linked != 0; ++attempt) {
    temp = path_ + std::string(kPattern) + random_suffix();
    linked = link_as(temp);
    if (linked != 0 && errno != EEXIST) break;
  }
  if (linked != 0) throw AtomicWriteError("cannot link the file into place", errno);
  if (std::rename(temp.c_str(), path_.c_str()) != 0) {
    int error = errno;
    ::unlink(temp.c_str());
    throw AtomicWriteError("rename failed", error);
  }
#endif
}

void AtomicWriter::commit() {
  flush();
  if (::fsync(fd_) != 0) throw AtomicWriteError("fsync failed", errno);
  if (temp_.empty()) {
    link_into_place();
    int closed = ::close(fd_);
    fd_ = -1;
    if (closed != 0) throw AtomicWriteError("close failed", errno);
  } else {
    int closed = ::close(fd_);
    fd_ = -1;
    if (closed != 0) throw AtomicWriteError("close failed", errno);
    if (std::rename(temp_.c_str(), path_.c_str()) != 0)
      throw AtomicWriteError("rename failed", errno);
  }
  committed_ = true;
  // Makes the new name durable; a failure here leaves a complete file, so it is ignored.
  sync_folder(dir_);
}

}  // namespace kiln::runtime
