// Helpers for the libFuzzer targets: readers of user files take paths, so each input is written
// to a file that lives in memory (a memfd, or a folder in /dev/shm), not on the disk.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "kiln/ir/function.h"

namespace kiln::fuzz {

// Whether `f` is small enough to compile and run on every fuzzer iteration: at most 64 nodes and
// 2^20 elements in its parameters and results together (long chains are tested elsewhere).
inline bool small_enough(const ir::Function& f) {
  constexpr size_t kMaxNodes = 64;
  constexpr int64_t kMaxElements = int64_t(1) << 20;
  if (f.nodes().size() > kMaxNodes) return false;
  int64_t elements = 0;
  auto add = [&](const ir::TensorType& t) {
    elements += t.shape.num_elements();
    return elements <= kMaxElements;
  };
  for (const auto& p : f.params())
    if (!add(p->type())) return false;
  for (const auto& n : f.nodes())
    for (size_t i = 0; i < n->num_outputs(); ++i)
      if (!add(n->output(i)->type())) return false;
  return true;
}

// Bytes of the fuzzer's input.
inline std::string_view bytes(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Exits the fuzzer with a message when the harness itself cannot run (not a finding in Kiln).
[[noreturn]] inline void harness_failure(const char* what) {
  std::perror(what);
  std::abort();
}

// Writes `content` to `path`, replacing what was there.
inline void write_file(const std::string& path, std::string_view content) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) harness_failure(path.c_str());
  if (!content.empty() && std::fwrite(content.data(), 1, content.size(), f) != content.size())
    harness_failure(path.c_str());
  if (std::fclose(f) != 0) harness_failure(path.c_str());
}

// One in-memory file, rewritten for each input; path() opens it by name.
class MemoryFile {
 public:
  MemoryFile() : fd_(memfd_create("kiln-fuzz", 0)) {
    if (fd_ < 0) harness_failure("memfd_create");
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemoryFile() { close(fd_); }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  // Replaces the file's content with `content` and returns its path.
  const std::string& hold(std::string_view content) {
    if (ftruncate(fd_, 0) != 0) harness_failure("ftruncate");
    size_t done = 0;
    while (done < content.size()) {
      ssize_t n = pwrite(fd_, content.data() + done, content.size() - done, off_t(done));
      if (n <= 0) harness_failure("pwrite");
      done += size_t(n);
    }
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

// A folder for the process's lifetime, in /dev/shm when there is one; removed at exit.
class ScratchDir {
 public:
  ScratchDir() {
    std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string pattern = base + "/kiln-fuzz.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) harness_failure("mkdtemp");
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace kiln::fuzz
