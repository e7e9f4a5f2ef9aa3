// Lowers every floating conv2d to an explicit patch matrix and a matmul (im2col): the input is
// padded, the KH·KW window taps are taken as strided slices and concatenated along channels
// into [N·OH·OW, KH·KW·C], and multiplied by the filter viewed as [KH·KW·C, O]. The patch
// matrix is a fused loop kernel and the product runs on the packed GEMM kernel, which is far
// faster than a direct convolution loop; gradients of convolutions (themselves conv2d nodes)
// are lowered the same way.
#pragma once

#include "kiln/ir/function.h"

namespace kiln::passes {

// Returns whether it rewrote anything.
bool lower_conv_to_gemm(ir::Function& function);

}  // namespace kiln::passes
