#include "kiln/passes/pipeline.h"

#include <fmt/format.h>

#include "kiln/ir/printer.h"
#include "kiln/passes/canonicalize.h"
#include "kiln/passes/conv_to_gemm.h"
#include "kiln/passes/cse.h"
#include "kiln/passes/dce.h"
#include "kiln/passes/fusion.h"
#include "kiln/passes/memory_plan.h"
#include "kiln/passes/scan_bodies.h"
#include "kiln/passes/scan_simplify.h"

namespace kiln::passes {

PipelineResult run_pipeline(ir::Function function, const PipelineOptions& options) {
  PassManager passes({options.verify, options.print_after, options.sink});
  // Each pass runs inside scan bodies too (bodies are compiled like any function).
  const ConvLowering lowering = options.conv_lowering;
  passes
      .add("conv_to_gemm",
           with_bodies([lowering](ir::Function& f) { return lower_conv_to_gemm(f, lowering); }))
      .add("canonicalize", with_bodies(canonicalize))
      .add("cse", with_bodies(eliminate_common_subexpressions))
      .add("dce", with_bodies(eliminate_dead_code))
      .add("scan", with_bodies(simplify_scans));
  passes.run(function, options.stop_after);
  if (!options.stop_after.empty()) return {std::move(function), {}, {}};

  KernelPlan kernels = plan_kernels(function, {.fuse = options.fuse});
  passes.report("fusion", print_plan(function, kernels));
  MemoryPlan memory = plan_memory(function, kernels);
  if (options.verify) check_memory_plan(function, kernels, memory);
  passes.report("memory_plan", print_memory_plan(function, kernels, memory));
  return {std::move(function), std::move(kernels), std::move(memory)};
}

std::string print_pipeline_result(const PipelineResult& result) {
  return fmt::format("{}\n{}\n{}", ir::print(result.function),
                     print_plan(result.function, result.kernels),
                     print_memory_plan(result.function, result.kernels, result.memory));
}

}  // namespace kiln::passes
