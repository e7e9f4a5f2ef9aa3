// Prepares every floating conv2d and conv2d_filter_grad for a GEMM. Two lowerings:
// - implicit (the CPU's): an op whose windows read padding is rewritten as an explicit `pad`
//   and the same op "valid", which codegen runs as an implicit GEMM (codegen/gemm.cpp): the
//   micro-kernel (conv2d) or the A-panel packing (conv2d_filter_grad) reads each window tap's
//   channels straight from the padded NHWC input, so no patch matrix is built.
// - im2col (the GPU's, whose GEMMs are cuBLASLt calls): the input is padded, the KH·KW window
//   taps are taken as strided slices and concatenated along channels into the patch matrix
//   [N·OH·OW, KH·KW·C]; a conv2d multiplies it by the filter viewed as [KH·KW·C, O], a
//   conv2d_filter_grad multiplies its transpose by dy viewed as [N·OH·OW, O]. Windows of more
//   than 49 taps are left to the direct loops.
#pragma once

#include "kiln/ir/function.h"

namespace kiln::passes {

enum class ConvLowering { implicit, im2col };

// Returns whether it rewrote anything.
bool lower_conv_to_gemm(ir::Function& function, ConvLowering lowering = ConvLowering::implicit);

}  // namespace kiln::passes
