// Differential test over random programs: compiled code (fusion off and on) against the
// reference interpreter, on hundreds of random well-typed graphs.
#include <catch2/catch.hpp>

#include "codegen_test_util.h"
#include "kiln/codegen/compiler.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/pipeline.h"
#include "random_program.h"

namespace {

using kiln::testing::RandomCase;

// Runs the pipeline on a copy of `c.function` and the compiled result on `c.inputs`.
std::vector<kiln::ir::HostTensor> compile_and_run(const RandomCase& c, bool fuse) {
  kiln::passes::PipelineOptions options;
  options.fuse = fuse;
  options.verify = true;
  kiln::passes::PipelineResult r =
      kiln::passes::run_pipeline(kiln::ir::parse(kiln::ir::print(c.function)), options);
  auto module = kiln::codegen::compile_jit(r.function, r.kernels, r.memory);
  return kiln::testing::run_compiled(*module, r.function, c.inputs);
}

// Checks `count` random programs (from `first_seed`) with fusion off and on.
void check_random_programs(int count, const kiln::testing::RandomProgramOptions& options,
                           uint64_t first_seed) {
  kiln::testing::for_each_random_program(
      count,
      [](const RandomCase& c) {
        INFO(c.describe());
        kiln::ir::EvalResult want = kiln::ir::evaluate(c.function, c.inputs);
        std::vector<kiln::ir::HostTensor> expected = want.outputs;
        expected.insert(expected.end(), want.updates.begin(), want.updates.end());
        for (bool fuse : {false, true}) {
          INFO("fusion " << (fuse ? "on" : "off"));
          std::string diff =
              kiln::testing::compare_results(compile_and_run(c, fuse), expected, 1e-4, 1e-4);
          CHECK(diff == "");
        }
      },
      options, first_seed);
}

}  // namespace

TEST_CASE("random programs: compiled == interpreter, fusion off and on", "[codegen][random]") {
  // Each case compiles two LLVM modules; 150 programs keep this test to seconds.
  check_random_programs(150, {}, 1);
}

TEST_CASE("random programs with updates and bigger graphs", "[codegen][random]") {
  kiln::testing::RandomProgramOptions options;
  options.updates = true;
  options.max_ops = 24;
  options.max_elements = 4096;
  check_random_programs(60, options, 1000);
}
