// conv_to_gemm: a conv2d becomes pad + per-tap slices + concat + matmul, computing the same
// values (interpreter on random inputs) for strides, dilations and both paddings.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/conv_to_gemm.h"
#include "pass_test_util.h"

namespace {
struct Case {
  std::string in, filter, out, attrs;
};
}  // namespace

TEST_CASE("conv_to_gemm lowers conv2d to a patch matrix and a matmul", "[passes][conv_to_gemm]") {
  const Case cases[] = {
      {"f32[2,5,5,3]", "f32[3,3,3,4]", "f32[2,5,5,4]", R"(padding = "same")"},
      {"f32[1,7,6,2]", "f32[2,3,2,3]", "f32[1,3,2,3]", R"(padding = "valid", strides = [2, 2])"},
      {"f64[2,8,8,1]", "f64[3,3,1,2]", "f64[2,4,4,2]",
       R"(dilations = [2, 2], padding = "same", strides = [2, 2])"},
      {"f32[1,4,4,5]", "f32[1,1,5,2]", "f32[1,4,4,2]", R"(padding = "valid")"},
      {"f32[2,9,7,2]", "f32[5,5,2,3]", "f32[2,3,3,3]", R"(padding = "same", strides = [3, 3])"},
  };
  for (const Case& c : cases) {
    std::string text = fmt::format(R"(func @f(%x: {}, %w: {}) -> {} {{
  %0 = conv2d(%x, %w) {{{}}} : {}
  return %0
}})",
                                   c.in, c.filter, c.out, c.attrs, c.out);
    INFO(text);
    kiln::ir::Function before = kiln::ir::parse(text);
    kiln::ir::Function after = kiln::ir::parse(text);
    CHECK(kiln::passes::lower_conv_to_gemm(after));
    std::string printed = kiln::ir::print(after);
    CHECK(printed.find("conv2d") == std::string::npos);
    CHECK(printed.find("matmul") != std::string::npos);
    kiln::testing::check_equivalent(before, after);
  }
}

TEST_CASE("conv_to_gemm leaves large-window convolutions alone", "[passes][conv_to_gemm]") {
  kiln::ir::Function f =
      kiln::ir::parse(R"(func @f(%x: f32[1,12,12,1], %w: f32[10,10,1,1]) -> f32[1,3,3,1] {
  %0 = conv2d(%x, %w) {padding = "valid"} : f32[1,3,3,1]
  return %0
})");
  CHECK_FALSE(kiln::passes::lower_conv_to_gemm(f));
}
