// Internal: the packed, register-blocked GEMM that computes f32/f64 matmul kernels
// (KernelKind::matmul), BLIS-style: B and A are packed into panels, a micro-kernel keeps an
// MR×NR block of C in vector registers, row panels run in parallel on the runtime's pool, and
// the kernel's fused epilogue is applied to each C tile while it is still in cache.
#pragma once

#include <cstdint>

#include "kiln/codegen/llvm_util.h"
#include "kiln/passes/kernel_plan.h"

namespace kiln::codegen {

// Multiply-adds per matrix below which a matmul keeps the elemental loop: it runs in
// microseconds either way, and the GEMM's code costs tens of milliseconds to compile.
inline constexpr int64_t kGemmMinWork = 4096;

// Whether emit_gemm_kernel handles `kernel`: a matmul kernel over f32 or f64 whose only output
// is its last node's result, with M·N·max(K, 1) ≥ kGemmMinWork. Other matmul kernels take the
// elemental path.
bool gemm_handles(const passes::Kernel& kernel);

// Emits the body of `fn`, declared void(ptr in0, ..., ptr out0) as the module builder declares
// every kernel, computing `kernel`, blocked for the target's vector registers `unit`.
void emit_gemm_kernel(llvm::Function& fn, const passes::Kernel& kernel, const VectorUnit& unit);

}  // namespace kiln::codegen
