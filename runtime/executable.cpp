#include "kiln/runtime/executable.h"

#include <cstdint>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

#include "kiln/runtime/generated_code.h"

namespace kiln::runtime {

namespace {

struct FreeWithRuntime {
  void operator()(void* p) const { kiln_rt_free(p); }
};
using Buffer = std::unique_ptr<void, FreeWithRuntime>;

void check_buffers(const char* what, std::span<void* const> buffers,
                   const std::vector<size_t>& bytes) {
  if (buffers.size() != bytes.size()) {
    throw std::invalid_argument("kiln: expected " + std::to_string(bytes.size()) + " " + what +
                                " buffers, got " + std::to_string(buffers.size()));
  }
  for (size_t i = 0; i < buffers.size(); ++i) {
    if (bytes[i] == 0) continue;
    if (buffers[i] == nullptr) {
      throw std::invalid_argument("kiln: " + std::string(what) + " buffer " + std::to_string(i) +
                                  " is null");
    }
    if (reinterpret_cast<uintptr_t>(buffers[i]) % 64 != 0) {
      throw std::invalid_argument("kiln: " + std::string(what) + " buffer " + std::to_string(i) +
                                  " is not 64-byte aligned");
    }
  }
}

}  // namespace

// Idle workspaces, ready for the next run.
struct Executable::WorkspaceCache {
  std::mutex mutex;
  std::vector<Buffer> idle;
};

Executable::Executable(kiln_entry_fn entry, size_t workspace_bytes, std::vector<size_t> input_bytes,
                       std::vector<size_t> output_bytes)
    : entry_(entry),
      workspace_bytes_(workspace_bytes),
      input_bytes_(std::move(input_bytes)),
      output_bytes_(std::move(output_bytes)),
      cache_(std::make_unique<WorkspaceCache>()) {
  if (entry_ == nullptr) throw std::invalid_argument("kiln: Executable needs an entry point");
}

Executable::~Executable() = default;
Executable::Executable(Executable&&) noexcept = default;
Executable& Executable::operator=(Executable&&) noexcept = default;

// Calls the generated entry (generated_code.h).
KILN_CALLS_GENERATED_CODE RunStatus Executable::run(std::span<void* const> inputs,
                                                    std::span<void* const> outputs) const {
  check_buffers("input", inputs, input_bytes_);
  check_buffers("output", outputs, output_bytes_);
  Buffer workspace;
  {
    std::lock_guard lock(cache_->mutex);
    if (!cache_->idle.empty()) {
      workspace = std::move(cache_->idle.back());
      cache_->idle.pop_back();
    }
  }
  if (!workspace) {
    workspace.reset(kiln_rt_alloc(workspace_bytes_));
    if (!workspace) throw std::bad_alloc();
  }
  int64_t status[KILN_RT_STATUS_WORDS] = {};
  kiln_frame frame{inputs.data(), outputs.data(), workspace.get(), status};
  entry_(&frame);
  {
    std::lock_guard lock(cache_->mutex);
    cache_->idle.push_back(std::move(workspace));
  }
  return RunStatus{status[0], status[1], status[2], status[3]};
}

}  // namespace kiln::runtime
