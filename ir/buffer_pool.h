// The buffer pool of host tensors (ir/host_tensor.cpp says why and how much it keeps): its
// counters and limit, for tests and for programs that want the memory back.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kiln::ir::detail {

// The buffer pool that keeps freed tensor buffers of 64 KiB and more for the next tensor of the
// same size (ir/host_tensor.cpp says why, how much and for how long). Off (all zero) under
// AddressSanitizer and ThreadSanitizer.
struct BufferPoolStats {
  bool enabled = false;    // limit_bytes > 0
  size_t limit_bytes = 0;  // the most it keeps
  size_t held_bytes = 0;   // kept now
  size_t held_blocks = 0;
  uint64_t hits = 0;    // large allocations served with a kept block
  uint64_t misses = 0;  // large allocations that found no kept block of their size
  // Blocks freed rather than kept: at their tensor's death (to stay within the limit, the oldest
  // kept ones first; or a large one whose size was made only once), when the limit is lowered,
  // when kept longer than max_idle, or when the system runs short of memory.
  uint64_t evictions = 0;
  uint64_t expirations = 0;               // of the evictions, blocks kept longer than max_idle
  std::chrono::milliseconds max_idle{0};  // how long a block is kept waiting for its next tensor
};
BufferPoolStats buffer_pool_stats();
// Keeps at most `bytes` from now on (0: none, the pool is off), freeing the least recently freed
// blocks beyond it; returns the previous limit. Does nothing (returns 0) under the sanitizers.
// The default is KILN_BUFFER_POOL_BYTES, else 256 MiB.
size_t set_buffer_pool_limit(size_t bytes);
// Frees kept blocks that no tensor takes within `idle` of their freeing (checked at the next
// large allocation or free, and now); returns the previous setting. The default is 5 s. Does
// nothing (returns 0) under the sanitizers.
std::chrono::milliseconds set_buffer_pool_max_idle(std::chrono::milliseconds idle);
// KILN_BUFFER_POOL_BYTES's syntax: a whole number of bytes, optionally with K, M or G (KiB, MiB,
// GiB; a trailing B or iB is allowed); nullopt when `text` is none.
std::optional<size_t> parse_buffer_pool_bytes(std::string_view text);

}  // namespace kiln::ir::detail
