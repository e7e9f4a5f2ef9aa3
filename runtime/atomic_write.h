// Writing a file so that it appears whole or not at all, and so that a crash leaves nothing
// behind where the system allows it. Shared by every Kiln writer: the frontend's saves (through
// frontend/formats/atomic_file.h), the AOT runtime's weights and codegen's object files. Plain C++
// and POSIX: the AOT runtime links it.
//
// On Linux the bytes go to an unnamed file in the target's folder (O_TMPFILE), which the kernel
// frees if the process dies; commit() gives it the target's name (linkat, then a rename() when
// the target exists already, so only that instant has a named temporary). Elsewhere, or on file
// systems without O_TMPFILE, they go to `<target>.kiln-tmp-XXXXXX`, renamed into place; a writer
// killed mid-write leaves that name behind, so every such write first removes the temporaries of
// its target of this pattern only that have not been touched for kStaleTemporarySeconds. Writes
// through the unnamed file never scan the folder (a save per epoch should not read it through):
// only a crash within commit()'s instant leaves a name, which a later named write removes.
// The file gets mode 0666 minus the umask, as a plain open() would.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace kiln::runtime {

// A step of an atomic write failed: step() says which ("cannot create a temporary file",
// "write failed", "rename failed", ...), error() is the errno it left.
class AtomicWriteError : public std::runtime_error {
 public:
  AtomicWriteError(std::string step, int error);
  const std::string& step() const { return step_; }
  int error() const { return error_; }

 private:
  std::string step_;
  int error_;
};

// Named temporaries of a target untouched for this long are leftovers of a crashed writer.
inline constexpr long kStaleTemporarySeconds = 3600;

class AtomicWriter {
 public:
  // unnamed_if_possible: O_TMPFILE where the system has it; named: always the named temporary
  // (what systems without O_TMPFILE get; tests use it to exercise that path).
  enum class Temporary { unnamed_if_possible, named };

  // Creates the temporary file next to `path`. Throws AtomicWriteError.
  explicit AtomicWriter(std::string path, Temporary kind = Temporary::unnamed_if_possible);
  // Without commit(), removes the temporary and leaves `path` as it was.
  ~AtomicWriter();
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  // Appends bytes, gathering small pieces into one write. Throws AtomicWriteError.
  void write(const void* data, size_t n);
  // The temporary's descriptor, for writers that need one (LLVM's object emission); bytes
  // written through it come after those passed to write() so far.
  int fd();
  // Flushes, syncs and gives the file the target's name. Throws AtomicWriteError.
  void commit();

  // Whether the temporary has no name in the file system (O_TMPFILE).
  bool unnamed() const { return temp_.empty(); }
  // The named temporary ("" when unnamed()).
  const std::string& temporary_path() const { return temp_; }

 private:
  void flush();
  void write_fd(const char* p, size_t n);
  void link_into_place();

  std::string path_, dir_, temp_;
  int fd_ = -1;
  bool committed_ = false;
  std::string buffer_;
};

// Removes the named temporaries of `path` (see above) older than `min_age_seconds`; returns how
// many it removed. Errors are ignored: this is housekeeping.
int remove_stale_temporaries(const std::string& path,
                             long min_age_seconds = kStaleTemporarySeconds);

}  // namespace kiln::runtime
