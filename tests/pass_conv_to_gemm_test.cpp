// conv_to_gemm: for the GPU (im2col) a conv2d becomes pad + per-tap slices + concat + matmul and
// a conv2d_filter_grad the transposed patch matrix times dy; for the CPU (implicit) both keep
// their op, "valid" over an explicitly padded input. Each computes the same values (interpreter
// on random inputs) for strides, dilations and both paddings.
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
    CHECK(kiln::passes::lower_conv_to_gemm(after, kiln::passes::ConvLowering::im2col));
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
  CHECK_FALSE(kiln::passes::lower_conv_to_gemm(f, kiln::passes::ConvLowering::im2col));
}

namespace {
// The filter gradient's cases: x, dy, the filter's (result's) type, ksize and the window attrs.
const Case kFilterGradCases[] = {
    {"f32[2,5,5,3]", "f32[2,5,5,4]", "f32[3,3,3,4]", R"(padding = "same")"},
    {"f32[1,7,6,2]", "f32[1,3,2,3]", "f32[2,3,2,3]", R"(padding = "valid", strides = [2, 2])"},
    {"f64[2,8,8,1]", "f64[2,4,4,2]", "f64[3,3,1,2]",
     R"(dilations = [2, 2], padding = "same", strides = [2, 2])"},
    {"f32[2,9,7,2]", "f32[2,3,3,3]", "f32[5,5,2,3]", R"(padding = "same", strides = [3, 3])"},
};

std::string filter_grad_text(const Case& c) {
  // The result's type is the filter's: [KH, KW, C, O]; ksize is its first two dims.
  const std::string dims = c.out.substr(c.out.find('[') + 1);
  const std::string kh = dims.substr(0, dims.find(','));
  const std::string rest = dims.substr(dims.find(',') + 1);
  const std::string kw = rest.substr(0, rest.find(','));
  return fmt::format(R"(func @f(%x: {}, %dy: {}) -> {} {{
  %0 = conv2d_filter_grad(%x, %dy) {{ksize = [{}, {}], {}}} : {}
  return %0
}})",
                     c.in, c.filter, c.out, kh, kw, c.attrs, c.out);
}
}  // namespace

TEST_CASE("conv_to_gemm lowers conv2d_filter_grad to a transposed patch matrix times dy",
          "[passes][conv_to_gemm]") {
  for (const Case& c : kFilterGradCases) {
    const std::string text = filter_grad_text(c);
    INFO(text);
    kiln::ir::Function before = kiln::ir::parse(text);
    kiln::ir::Function after = kiln::ir::parse(text);
    CHECK(kiln::passes::lower_conv_to_gemm(after, kiln::passes::ConvLowering::im2col));
    std::string printed = kiln::ir::print(after);
    CHECK(printed.find("conv2d_filter_grad") == std::string::npos);
    CHECK(printed.find("transpose_a = true") != std::string::npos);
    kiln::testing::check_equivalent(before, after);
  }
}

TEST_CASE("conv_to_gemm for the CPU pads explicitly and keeps the convolutions",
          "[passes][conv_to_gemm]") {
  const Case convs[] = {
      {"f32[2,5,5,3]", "f32[3,3,3,4]", "f32[2,5,5,4]", R"(padding = "same")"},
      {"f64[2,8,8,1]", "f64[3,3,1,2]", "f64[2,4,4,2]",
       R"(dilations = [2, 2], padding = "same", strides = [2, 2])"},
      {"f32[2,9,7,2]", "f32[5,5,2,3]", "f32[2,3,3,3]", R"(padding = "same", strides = [3, 3])"},
  };
  std::vector<std::string> texts;
  for (const Case& c : convs) {
    texts.push_back(fmt::format(R"(func @f(%x: {}, %w: {}) -> {} {{
  %0 = conv2d(%x, %w) {{{}}} : {}
  return %0
}})",
                                c.in, c.filter, c.out, c.attrs, c.out));
  }
  for (const Case& c : kFilterGradCases)
    if (c.attrs.find("same") != std::string::npos) texts.push_back(filter_grad_text(c));
  for (const std::string& text : texts) {
    INFO(text);
    kiln::ir::Function before = kiln::ir::parse(text);
    kiln::ir::Function after = kiln::ir::parse(text);
    CHECK(kiln::passes::lower_conv_to_gemm(after));
    const std::string printed = kiln::ir::print(after);
    CHECK(printed.find("pad(") != std::string::npos);
    CHECK(printed.find(R"(padding = "valid")") != std::string::npos);
    CHECK(printed.find("matmul") == std::string::npos);
    kiln::testing::check_equivalent(before, after);
    // Nothing left to pad: a second run changes nothing.
    CHECK_FALSE(kiln::passes::lower_conv_to_gemm(after));
  }
  // A "valid" window reads no padding: nothing to do.
  kiln::ir::Function valid =
      kiln::ir::parse(R"(func @f(%x: f32[1,12,12,1], %w: f32[10,10,1,1]) -> f32[1,3,3,1] {
  %0 = conv2d(%x, %w) {padding = "valid"} : f32[1,3,3,1]
  return %0
})");
  CHECK_FALSE(kiln::passes::lower_conv_to_gemm(valid));
}
