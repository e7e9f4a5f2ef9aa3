// A compiled function ready to run: its entry point, workspace size and buffer sizes.
// No LLVM and no IR types: an ahead-of-time library uses this with the runtime alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kiln/runtime/kiln_rt.h"

namespace kiln::runtime {

// Calls a kiln_entry with dense, 64-byte aligned input and output buffers and a workspace of
// the compiled size. Workspaces are cached per Executable and reused; concurrent run() calls
// each get their own, so one Executable may run on several threads at once.
// What the generated code reported through kiln_frame.status (see kiln_rt.h).
struct RunStatus {
  int64_t code = 0;      // 0: ok; else 1 + the index of the kernel that found a bad index
  int64_t value = 0;     // the bad index
  int64_t position = 0;  // its flat position in the indices operand
  int64_t bound = 0;     // the size of the indexed axis
  bool failed() const { return code != 0; }
};

class Executable {
 public:
  // `input_bytes` / `output_bytes`: the byte size of each parameter / each result (then each
  // update), in the order of kiln_frame.
  Executable(kiln_entry_fn entry, size_t workspace_bytes, std::vector<size_t> input_bytes,
             std::vector<size_t> output_bytes);
  ~Executable();
  Executable(Executable&&) noexcept;
  Executable& operator=(Executable&&) noexcept;

  kiln_entry_fn entry() const { return entry_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  size_t num_inputs() const { return input_bytes_.size(); }
  size_t num_outputs() const { return output_bytes_.size(); }
  size_t input_bytes(size_t i) const { return input_bytes_.at(i); }
  size_t output_bytes(size_t i) const { return output_bytes_.at(i); }

  // Runs the entry. Throws std::invalid_argument if the buffer counts differ from the
  // signature, or a buffer of non-zero size is null or not 64-byte aligned; std::bad_alloc if
  // no workspace can be allocated. Returns what the code reported: on failure the outputs hold
  // values computed with the bad indices replaced by 0; the caller decides what to raise.
  RunStatus run(std::span<void* const> inputs, std::span<void* const> outputs) const;

 private:
  struct WorkspaceCache;
  kiln_entry_fn entry_;
  size_t workspace_bytes_;
  std::vector<size_t> input_bytes_;
  std::vector<size_t> output_bytes_;
  std::unique_ptr<WorkspaceCache> cache_;
};

}  // namespace kiln::runtime
