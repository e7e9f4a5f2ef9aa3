#include <catch2/catch.hpp>

#include "kiln/passes/fusion.h"
#include "kiln/passes/memory_plan.h"
#include "kiln/passes/pipeline.h"
#include "pass_test_util.h"

namespace {
using kiln::passes::PipelineOptions;

// 10x² − 5x + 4 as traced, with a duplicated subexpression and a dead node.
const char* kPoly = R"(func @poly(%x: f32[4]) -> f32[4] {
  %0 = constant() {value = dense<f32[]: 10.0>} : f32[]
  %1 = mul(%0, %x) : f32[4]
  %2 = mul(%1, %x) : f32[4]
  %3 = constant() {value = dense<f32[]: -5.0>} : f32[]
  %4 = mul(%3, %x) : f32[4]
  %5 = add(%2, %4) : f32[4]
  %6 = constant() {value = dense<f32[]: 4.0>} : f32[]
  %7 = add(%5, %6) : f32[4]
  %8 = constant() {value = dense<f32[]: 1.0>} : f32[]
  %9 = mul(%7, %8) : f32[4]
  %10 = exp(%x) : f32[4]
  return %9
})";
}  // namespace

TEST_CASE("pipeline simplifies, fuses and plans memory", "[passes][pipeline]") {
  auto result = kiln::passes::run_pipeline(kiln::ir::parse(kPoly), {.verify = true});
  CHECK(kiln::passes::print_pipeline_result(result) == R"(func @poly(%x: f32[4]) -> f32[4] {
  %0 = constant() {value = dense<f32[]: 10.0>} : f32[]
  %1 = mul(%0, %x) : f32[4]
  %2 = mul(%1, %x) : f32[4]
  %3 = constant() {value = dense<f32[]: -5.0>} : f32[]
  %4 = mul(%3, %x) : f32[4]
  %5 = add(%2, %4) : f32[4]
  %6 = constant() {value = dense<f32[]: 4.0>} : f32[]
  %7 = add(%5, %6) : f32[4]
  return %7
}

kernel 0 loop(%0, %x, %3, %6) -> %7 {
  %1 = mul(%0, %x) : f32[4]
  %2 = mul(%1, %x) : f32[4]
  %4 = mul(%3, %x) : f32[4]
  %5 = add(%2, %4) : f32[4]
  %7 = add(%5, %6) : f32[4]
}

workspace 0 bytes
kernel 0: %7 output 0 (16 bytes)
)");
  kiln::testing::check_equivalent(kiln::ir::parse(kPoly), result.function);
}

TEST_CASE("pipeline prints after fusion and memory planning on request", "[passes][pipeline]") {
  std::string printed;
  PipelineOptions options{.verify = true,
                          .print_after = {"fusion", "memory_plan"},
                          .sink = [&](std::string_view text) { printed += text; }};
  kiln::passes::run_pipeline(kiln::ir::parse(kPoly), options);
  CHECK_THAT(printed, Catch::StartsWith("// ----- after fusion -----\nkernel 0 loop("));
  CHECK_THAT(printed, Catch::Contains("// ----- after memory_plan -----\nworkspace 0 bytes\n"));
}

TEST_CASE("pipeline with and without fusion computes the same plans' values",
          "[passes][pipeline]") {
  const std::string mlp =
      R"(func @mlp(%x: f32[8,16], %w1: f32[16,32], %b1: f32[32], %w2: f32[32,10], %b2: f32[10]) -> (f32[8,10], f32[]) {
  %0 = matmul(%x, %w1) : f32[8,32]
  %1 = add(%0, %b1) : f32[8,32]
  %2 = relu(%1) : f32[8,32]
  %3 = matmul(%2, %w2) : f32[8,10]
  %4 = add(%3, %b2) : f32[8,10]
  %5 = log_softmax(%4) {axis = -1} : f32[8,10]
  %6 = neg(%5) : f32[8,10]
  %7 = reduce_mean(%6) {axes = [0, 1]} : f32[]
  return %4, %7
  update %b2 = %b2
})";
  for (bool fuse : {false, true}) {
    INFO("fuse " << fuse);
    auto result = kiln::passes::run_pipeline(kiln::ir::parse(mlp), {.fuse = fuse, .verify = true});
    kiln::passes::check_memory_plan(result.function, result.kernels, result.memory);
    kiln::testing::check_equivalent(kiln::ir::parse(mlp), result.function);
    CHECK(result.kernels.kernels.size() == (fuse ? 4u : 8u));
    CHECK(result.memory.copies.size() == 1);
  }
}
