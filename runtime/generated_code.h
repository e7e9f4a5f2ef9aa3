#pragma once

// KILN_CALLS_GENERATED_CODE marks the functions that call code LLVM generated: a JIT-compiled
// or ahead-of-time `kiln_entry`, and the parallel loop bodies it hands to the thread pool.
// Clang's UBSan check -fsanitize=function reads a type signature that clang places just before
// each function it compiles; LLVM-generated functions have none, so the check reports a false
// mismatch or reads unmapped memory. That one check is turned off in these callers (every
// other UBSan and ASan check stays on); the attribute means nothing outside sanitizer builds.
#if defined(__clang__)
#define KILN_CALLS_GENERATED_CODE __attribute__((no_sanitize("function")))
#else
#define KILN_CALLS_GENERATED_CODE
#endif
