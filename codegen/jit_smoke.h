// A smoke test of the LLVM toolchain: builds `i64 add(i64, i64)` in IR, JIT-compiles it for the
// host CPU with ORC LLJIT and calls it. Real codegen comes with the kiln::function issue.
#pragma once

#include <cstdint>
#include <string>

namespace kiln::codegen {

// Returns a + b computed by JIT-compiled code; throws CompileError if LLVM fails.
int64_t jit_add(int64_t a, int64_t b);
// The host CPU name LLVM detects (e.g. "znver5").
std::string host_cpu_name();

}  // namespace kiln::codegen
