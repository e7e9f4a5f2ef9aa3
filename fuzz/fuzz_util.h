// Helpers for the libFuzzer targets: readers of user files take paths, so each input is written
// to a file that lives in memory (a memfd, or a folder in /dev/shm), not on the disk.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <source_location>
#include <string>
#include <string_view>

#include "kiln/frontend/process.h"
#include "kiln/ir/error.h"
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

// A fresh folder for a target's files (kept for the process's lifetime as a function-local
// static), in /dev/shm when there is one; removed at exit. Its name holds the process id:
// TempDir removes folders of its name untouched for an hour, and a long fuzzing run rewrites
// its files in place without touching the folder, so another run must not take it for stale.
inline detail::TempDir scratch_dir() {
  const std::string parent = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
  try {
    return detail::TempDir(parent, "kiln-fuzz-" + std::to_string(getpid()), "fuzz",
                           std::source_location::current());
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    std::abort();
  }
}

}  // namespace kiln::fuzz
