// The packed GEMM with every size read at run time: compiled once per variant (dtype,
// transposes, blocking) and run on any matrices, so that eager matmuls (frontend/core/eager.cpp) do
// not compile a kernel per shape. No LLVM in this header: the frontend includes it.
#pragma once

#include <cstdint>

#include "kiln/ir/types.h"

namespace kiln::codegen {

class KernelJit;

// Whether a plain (2-D, same-dtype) matmul of these sizes runs on the generic GEMM: f32 or f64
// with the work that compiled kernels give the packed GEMM too (gemm_handles).
bool generic_gemm_handles(ir::DType dtype, int64_t m, int64_t n, int64_t k);

// C[m, n] = op(A) · op(B), A [m, k] ([k, m] when transpose_a), B [k, n] ([n, k] when
// transpose_b), all dense row-major; C is overwritten. Compiles the variant these sizes need
// into `jit` the first time (a few per process). Thread-safe.
void run_generic_gemm(KernelJit& jit, ir::DType dtype, bool transpose_a, bool transpose_b,
                      int64_t m, int64_t n, int64_t k, const void* a, const void* b, void* c);

// Variants compiled so far (for tests).
int64_t generic_gemm_variants();

}  // namespace kiln::codegen
