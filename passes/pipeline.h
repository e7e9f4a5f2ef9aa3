// The pass pipeline every compiled function goes through, as one list (pipeline.cpp), and the
// text `kiln::function::compiled_ir` shows.
#pragma once

#include <string>

#include "kiln/ir/function.h"
#include "kiln/passes/conv_to_gemm.h"
#include "kiln/passes/kernel_plan.h"
#include "kiln/passes/pass_manager.h"

namespace kiln::passes {

struct PipelineOptions {
  // Fuse kernels (false: one kernel per node, for differential tests).
  bool fuse = true;
  // How convolutions become GEMMs: implicit on the CPU, im2col for the GPU's cuBLASLt calls.
  ConvLowering conv_lowering = ConvLowering::implicit;
  // Verify the IR between passes and check the memory plan (see verify_by_default()).
  bool verify = verify_by_default();
  // Print after these passes (also "fusion", "memory_plan"); see PassManagerOptions.
  std::vector<std::string> print_after = print_after_from_env();
  // Where printed IR goes; stderr when empty.
  std::function<void(std::string_view)> sink = nullptr;
  // Stop after this pass (conv_to_gemm, canonicalize, cse, dce, scan): the result's function is the
  // IR at that stage and its plans are empty. Empty: run everything, planning included.
  std::string stop_after = "";
};

struct PipelineResult {
  ir::Function function;  // the optimized function; the plans point into it
  KernelPlan kernels;
  MemoryPlan memory;
};

// Runs conv_to_gemm, canonicalize, cse, dce and scan (simplify_scans), each on scan bodies too,
// then plans kernels and memory.
PipelineResult run_pipeline(ir::Function function, const PipelineOptions& options = {});

// The optimized IR, the kernel plan and the memory plan as text.
std::string print_pipeline_result(const PipelineResult& result);

}  // namespace kiln::passes
