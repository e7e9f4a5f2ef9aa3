// GPU modules kept in the persistent cache of compiled code (runtime/disk_cache.h), so that a
// function compiled for the GPU once is not compiled again by the next process. The key names
// everything compile_gpu's result depends on (gpu_cache_key); the payload is the whole GpuModule,
// PTX and every launch, as JSON. A payload that does not parse is a miss with a warning, and the
// module is recompiled and written again.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "kiln/codegen/gpu.h"
#include "kiln/runtime/disk_cache.h"

namespace kiln::codegen {

// The version of gpu_cache_key's fields and of the payload's format; part of every key.
inline constexpr int kGpuCacheFormat = 2;  // 2: scan loops (GpuLoop, step_bytes)

// compile_gpu through `cache`: a hit returns the stored module, a miss compiles and stores it.
// A null or disabled cache compiles every time. Throws what compile_gpu throws (nothing is
// stored then).
GpuModule compile_gpu_cached(const ir::Function& function, const passes::KernelPlan& plan,
                             const passes::MemoryPlan& memory, const GpuOptions& options = {},
                             runtime::DiskCache* cache = &runtime::DiskCache::process_default());

// The cache key of compile_gpu(function, plan, memory, options): the format, Kiln's version and
// build, LLVM's version, every GpuOptions field (libdevice by path, size and mtime), the IR text,
// the kernel plan and the memory plan (every value's slot).
std::string gpu_cache_key(const ir::Function& function, const passes::KernelPlan& plan,
                          const passes::MemoryPlan& memory, const GpuOptions& options);

// A GpuModule as the cache stores it (JSON); nothing when it cannot be written as JSON (a label
// or PTX that is not valid UTF-8).
std::optional<std::string> serialize_gpu_module(const GpuModule& module);
// Reads serialize_gpu_module's text back. Throws CompileError saying what is wrong for text
// that is not such a module.
GpuModule deserialize_gpu_module(std::string_view text);

}  // namespace kiln::codegen
