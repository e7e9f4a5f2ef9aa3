// Internal to the GEMM emitter (gemm.cpp, gemm_micro.cpp): the blocking parameters, the
// compile-time problem, and the emitters for packing and the micro-kernel.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "kiln/codegen/llvm_util.h"

namespace kiln::codegen::gemm {

// Blocking for one element type and target: the micro-kernel computes mr × nr() of C from an
// mr-row panel of A and an nr-column panel of B (nr = lanes · vectors); kc is the depth of one
// packed block, mc_panels the row panels one thread packs and sweeps at a time, nc the columns
// of one packed B block.
struct Config {
  ir::DType dtype = ir::DType::f32;
  int64_t lanes = 16;
  int64_t registers = 32;  // vector registers of the target
  int64_t mr = 14;
  int64_t vectors = 2;
  int64_t kc = 256;
  int64_t mc_panels = 24;
  int64_t nc = 2048;
  unsigned unroll = 2;
  int64_t nr() const { return lanes * vectors; }
  int64_t element_bytes() const { return static_cast<int64_t>(ir::dtype_size(dtype)); }
  // Names the functions generated for this configuration, e.g. "f32_14x32_256_24_4096".
  std::string tag() const;
};

// The blocking for `dtype` on a target with vector registers `unit`, for a result `n` columns
// wide.
Config choose_config(ir::DType dtype, int64_t n, const VectorUnit& unit);

// One (non-batched) C = A·B with sizes read at run time (i64 values) and the transposes fixed:
// A is [m, k] ([k, m] when transpose_a) and B is [k, n] ([n, k] when transpose_b), dense
// row-major; C is [m, n].
struct Problem {
  llvm::Value* m = nullptr;
  llvm::Value* n = nullptr;
  llvm::Value* k = nullptr;
  bool transpose_a = false, transpose_b = false;
};

// for (i = begin; i < end; i += step) body(i), with i64 bounds known at run time. Without
// `vectorize` LLVM's loop vectorizer leaves the loop alone (packing loops: it would turn their
// strided accesses into gathers and scatters that are slower and slow to compile).
// With `runtime_unroll` false, LLVM's unroller leaves it alone too (see the GEMM epilogue).
void emit_range(Builder& b, llvm::Value* begin, llvm::Value* end, int64_t step,
                const std::function<void(llvm::Value*)>& body, bool vectorize = true,
                bool runtime_unroll = true);

llvm::Value* emit_min(Builder& b, llvm::Value* x, llvm::Value* y);

// Lanes [first, first + config.lanes) that are below `limit` (an i64), as an i1 vector.
llvm::Value* lanes_below(Builder& b, const Config& config, int64_t first, llvm::Value* limit);

// void micro(ptr a_panel, ptr b_panel, i64 kc, ptr c, i64 ldc, i64 rows, i64 cols,
// i1 accumulate): C[0:rows, 0:cols] (+)= Σ_k a_panel[k][0:mr] ⊗ b_panel[k][0:nr], C with row
// stride ldc. One per element type in a module, shared by its matmul kernels. With
// `unpacked_a` it takes a ninth argument, lda, and reads A as it lies (row r at a + r·lda):
// for results so narrow that packing A would cost as much as using it.
llvm::Function* micro_kernel(llvm::Module& module, const Config& config, bool unpacked_a = false);
// How a micro-kernel reads A: packed panels; rows where they lie (unpacked_a above); or, with
// `table` (a ninth argument, ptr to i64), depth k's mr elements together at a + table[k] (a
// filter gradient's panel within one window tap, read from the input without packing).
enum class AReads { packed, rows, table };
llvm::Function* micro_kernel(llvm::Module& module, const Config& config, AReads reads);
// The names micro_kernel and conv_micro_kernel give their functions (gemm_helpers lists them).
std::string micro_kernel_name(const Config& config, AReads reads);
// Whether `name` is one of those names.
bool is_micro_kernel_name(std::string_view name);

// void micro(ptr a, ptr b_panel, i64 taps, ptr c, i64 ldc, i64 rows, i64 cols, i1 accumulate,
// ptr row_offsets, i64 channels, i64 tap0, i64 kw, i64 tap_h, i64 tap_w): the micro-kernel of an
// implicit-GEMM convolution. Row r of A starts at a + row_offsets[r] (mr offsets: the rows past
// `rows` repeat a valid row); depth runs over `taps` window taps from tap0, each `channels`
// deep, tap t = (i, j) = (t / kw, t % kw) lying at i·tap_h + j·tap_w from the row's start; B is
// packed as usual (taps · channels deep). A `shape` with a row_step makes a micro-kernel for
// full tiles whose rows lie row_step elements apart (one output row's pixels) and whose taps
// are shape.channels deep, both fixed at compile time: row r starts at a + row_offsets[0] +
// r · row_step, and the channels argument is ignored.
struct ConvMicroShape {
  int64_t row_step = 0;  // 0: rows anywhere (row_offsets[r]), channels from the argument
  int64_t channels = 0;
};
llvm::Function* conv_micro_kernel(llvm::Module& module, const Config& config,
                                  const ConvMicroShape& shape);
std::string conv_micro_kernel_name(const Config& config, const ConvMicroShape& shape);

// Packs rows [i0, i0 + mr) × depth [pc, pc + kc) of A into `dst` as dst[k][r] (mr per k),
// rows past m zero.
void emit_pack_a_panel(Builder& b, const Config& config, const Problem& problem, llvm::Value* a,
                       llvm::Value* dst, llvm::Value* i0, llvm::Value* pc, llvm::Value* kc);

// Packs depth [pc, pc + kc) × columns [j0, j0 + nr) of B into `dst` as dst[k][j] (nr per k),
// columns past n zero.
void emit_pack_b_panel(Builder& b, const Config& config, const Problem& problem, llvm::Value* bm,
                       llvm::Value* dst, llvm::Value* j0, llvm::Value* pc, llvm::Value* kc);

}  // namespace kiln::codegen::gemm
