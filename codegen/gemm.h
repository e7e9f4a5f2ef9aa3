// Internal: the packed, register-blocked GEMM that computes f32/f64 matmul kernels
// (KernelKind::matmul), BLIS-style: B and A are packed into panels, a micro-kernel keeps an
// MR×NR block of C in vector registers, row panels run in parallel on the runtime's pool, and
// the kernel's fused epilogue is applied to each C tile while it is still in cache.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/codegen/gemm_parts.h"
#include "kiln/codegen/llvm_util.h"
#include "kiln/ir/ops/matmul.h"
#include "kiln/passes/kernel_plan.h"

namespace kiln::codegen {

// Multiply-adds per matrix below which a matmul keeps the elemental loop: it runs in
// microseconds either way, and the GEMM's code costs tens of milliseconds to compile.
inline constexpr int64_t kGemmMinWork = 4096;

// Whether emit_gemm_kernel handles `kernel`: a matmul kernel over f32 or f64 whose only output
// is its last node's result, with M·N·max(K, 1) ≥ kGemmMinWork, or a conv2d kernel of the same
// kind whose windows read no padding (conv_to_gemm pads explicitly), run as an implicit GEMM.
// Other matmul and conv2d kernels take the elemental path.
bool gemm_handles(const passes::Kernel& kernel);

// Multiply-adds per matrix from which a GEMM splits its parts across the threads; below, waking a
// thread costs more than it saves, and the calling thread runs every part.
inline constexpr int64_t kGemmParallelWork = int64_t{1} << 22;

// How a matmul of `dims` (its batch aside) is blocked and split into parts: what a compiled
// matmul kernel fixes at compile time, and what a generic one (generic_gemm.cpp) computes for
// each call.
struct GemmSchedule {
  gemm::Config config;
  int64_t k_blocks = 1;  // depth blocks (at least one, so that K = 0 still writes C)
  int64_t kc = 0;        // depth of every block but maybe the last
  int64_t row_panels = 0;
  int64_t col_panels = 0;
  bool unpacked_a = false;  // the micro-kernel reads A where it lies
  bool split_n = false;     // parts are column panels (else row panels)
};
GemmSchedule schedule_gemm(ir::DType dtype, const ir::MatmulDims& dims, const VectorUnit& unit);

// The context the part functions read, as C lays it out (every field 8 bytes, in the order of
// the LLVM struct gemm.cpp builds).
struct GemmContext {
  const void* a;
  const void* b;
  void* c;
  void* c_full;
  void* out;
  void* inputs;
  void* epilogue;  // null: no epilogue
  int64_t m, n, k, split_n, k_blocks, kc, batch;
  // An implicit-GEMM convolution's geometry (gemm.cpp; unused by matmuls).
  int64_t conv_pixels = 0, conv_out_w = 0, conv_image = 0, conv_row = 0, conv_col = 0,
          conv_channels = 0, conv_kw = 0, conv_tap_h = 0, conv_tap_w = 0;
  const void* conv_micro = nullptr;
};

// The part function body(ctx, begin, end) for `config` and the transposes, which takes every
// size from the context: emitted into `module` once and returned.
llvm::Function* gemm_part_function(llvm::Module& module, const gemm::Config& config,
                                   bool transpose_a, bool transpose_b, bool unpacked_a);

// Names of the shared functions (part bodies, micro-kernels) emit_gemm_kernel puts into its
// module for `kernel`, beside the per-kernel driver and epilogue; the part body first. Split
// compiles (build_split_modules) compile each once, apart (emit_gemm_helper).
std::vector<std::string> gemm_helpers(const passes::Kernel& kernel, const VectorUnit& unit);

// Defines the helper `name` (one of gemm_helpers(kernel, unit)) in `module`, with external
// linkage; the other helpers it calls are only declared there. Compiled so, one helper to an
// object, it links beside kernels whose modules declare it, and is compiled once for all of them.
void emit_gemm_helper(llvm::Module& module, const passes::Kernel& kernel, const VectorUnit& unit,
                      const std::string& name);
// Whether the helper `name` is a micro-kernel: code vectorized and unrolled as it is emitted,
// which LLVM's standard pipeline makes no faster (LlvmPipeline::unrolled_light suffices).
bool is_gemm_micro_kernel(const std::string& name);

// Emits the body of `fn`, declared void(ptr in0, ..., ptr out0) as the module builder declares
// every kernel, computing `kernel`, blocked for the target's vector registers `unit`.
void emit_gemm_kernel(llvm::Function& fn, const passes::Kernel& kernel, const VectorUnit& unit);

}  // namespace kiln::codegen
