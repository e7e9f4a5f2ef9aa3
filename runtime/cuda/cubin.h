// PTX compiled to machine code before it is loaded: the driver's JIT linker (cuLinkCreate ...
// cuLinkComplete) turns PTX into a cubin for a context's device, and the persistent cache
// (runtime/disk_cache.h) keeps the cubin under the PTX, the device's architecture and the
// driver's version, so that a later process loads the cubin instead of compiling the PTX again.
// (The driver keeps a JIT cache of its own, ~/.nv/ComputeCache, which may be off, shared or too
// small; this one is bounded and checked like every Kiln cache entry.)
#pragma once

#include <string>
#include <string_view>

#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/disk_cache.h"

namespace kiln::runtime::cuda {

// The version of cubin_cache_key's fields; part of every key.
inline constexpr int kCubinCacheFormat = 1;

// `ptx` (one module's text) compiled for `context`'s device by the driver. Throws CudaError
// (CUDA_ERROR_INVALID_PTX, ...) whose message ends with the driver's error log.
std::string link_ptx(const Context& context, std::string_view ptx);

// The cache key of `ptx`'s cubin on `context`: the format, the PTX's length and 128-bit hash,
// the device's architecture and the driver's version; "" when the driver does not say its
// version (then nothing is cached).
std::string cubin_cache_key(const Context& context, std::string_view ptx);

// link_ptx through `cache`: a hit returns the stored cubin, a miss links and stores it. A null
// or disabled cache links every time. Throws what link_ptx throws (nothing is stored then).
std::string cached_cubin(const Context& context, std::string_view ptx,
                         DiskCache* cache = &DiskCache::process_default());

}  // namespace kiln::runtime::cuda
