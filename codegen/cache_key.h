// Keys of the persistent cache of compiled code (runtime/disk_cache.h): one string naming
// everything that affects a compiled result, so that a change to any of it is a miss. Shared by
// the GPU modules' cache (codegen/gpu_cache.h) and the CPU's (compile_jit, codegen/compiler.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kiln/ir/function.h"
#include "kiln/passes/kernel_plan.h"

namespace kiln::codegen {

// Builds a key as "name=<length>:value\n" fields (lengths make it unambiguous whatever the
// values hold). Every key starts with its tag and what every compile depends on: Kiln's version,
// the identity of the Kiln library that compiles (so a rebuilt library never reads the entries
// of an older build) and LLVM's version.
class CacheKey {
 public:
  // `tag` names the kind of entry and its payload's format ("gpu-module/1").
  explicit CacheKey(std::string_view tag);

  CacheKey& add(std::string_view name, std::string_view value);
  CacheKey& add(std::string_view name, int64_t value);
  // A file's path with its size and modification time ("" for an empty path; "missing" when it
  // cannot be read), so that a file replaced in place changes the key.
  CacheKey& add_file(std::string_view name, const std::string& path);
  // The planned function: its IR text (constants' values included) and its kernel and memory
  // plans (every slot), which together fix the code compiled from them.
  CacheKey& add_plans(const ir::Function& function, const passes::KernelPlan& plan,
                      const passes::MemoryPlan& memory);

  const std::string& str() const { return text_; }

 private:
  std::string text_;
};

// The library (or program) holding Kiln's compiler: its path, size and modification time.
const std::string& kiln_build_identity();

}  // namespace kiln::codegen
