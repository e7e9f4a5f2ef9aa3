// Differential tests of the packed GEMM (codegen/gemm.h) against the interpreter: shapes on and
// around the micro-kernel and cache block sizes, zero-size dimensions, every transpose
// combination, broadcast batches, f64, fused epilogues, and IEEE specials.
#include "codegen_test_util.h"
#include "env_test_util.h"
#include "kiln/codegen/helper_objects.h"

#include <cmath>
#include <map>

using namespace kiln;
using ir::Attrs;
using ir::DType;
using ir::Op;
using ir::Shape;

namespace {

using testing::check_close;
using testing::uniform;

struct Case {
  Shape a, b;
  bool ta = false, tb = false;
};

Shape matrix(int64_t rows, int64_t cols, bool transposed) {
  return transposed ? Shape{cols, rows} : Shape{rows, cols};
}

// One function computing every case (one module to compile), with random arguments, and each
// case's depth (how many products each result element sums).
struct Cases {
  ir::Function f{"gemm"};
  std::vector<ir::HostTensor> args;
  std::vector<int64_t> depth;
};
Cases function_of(DType dtype, const std::vector<Case>& cases, uint32_t seed) {
  Cases out;
  std::vector<ir::Value*> outs;
  for (const Case& c : cases) {
    ir::Value* a = out.f.add_param({dtype, c.a});
    ir::Value* b = out.f.add_param({dtype, c.b});
    out.args.push_back(uniform(dtype, c.a, seed++));
    out.args.push_back(uniform(dtype, c.b, seed++));
    outs.push_back(out.f
                       .append(Op::matmul, {a, b},
                               Attrs().set_bool("transpose_a", c.ta).set_bool("transpose_b", c.tb))
                       ->output());
    out.depth.push_back(c.ta ? c.a[c.a.rank() - 2] : c.a[c.a.rank() - 1]);
  }
  out.f.set_outputs(outs);
  return out;
}

// The cases compiled as one function, checked output by output; with `uses_gemm` the module
// must contain the GEMM micro-kernel.
void check_cases(DType dtype, const std::vector<Case>& cases, bool uses_gemm = true,
                 uint32_t seed = 1) {
  const auto [f, args, depth] = function_of(dtype, cases, seed);
  const testing::Plans plans = testing::simple_plans(f);
  auto module = codegen::compile_jit(f, plans.kernels, plans.memory);
  // The packed GEMM's micro-kernel, or for a few rows the path that streams B.
  if (uses_gemm) {
    const std::string& text = module->llvm_ir();
    CHECK((text.find("gemm_micro") != std::string::npos ||
           text.find("gemm_small") != std::string::npos));
  }
  std::vector<ir::HostTensor> got = testing::run_compiled(*module, f, args);
  ir::EvalResult want = ir::evaluate(f, args);
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO("case " << i << ": " << cases[i].a.to_string() << " x " << cases[i].b.to_string()
                 << " ta=" << cases[i].ta << " tb=" << cases[i].tb << " " << ir::dtype_name(dtype));
    check_close(got[i], want.outputs[i], depth[i]);
  }
}

// M × K × N cases with every transpose combination.
std::vector<Case> mkn_cases(std::initializer_list<std::array<int64_t, 3>> sizes) {
  std::vector<Case> cases;
  for (const auto& [m, k, n] : sizes) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true})
        cases.push_back({matrix(m, k, ta), matrix(k, n, tb), ta, tb});
    }
  }
  return cases;
}

}  // namespace

TEST_CASE("gemm matches the interpreter on odd and block-boundary sizes", "[codegen][gemm]") {
  // 14 rows and 32 (f32) / 16 (f64) columns per micro-tile (28 × 16 / 28 × 8 when N fits one
  // vector), 336 rows per packed block, depth blocks of at most 256. Every case does at least
  // kGemmMinWork multiply-adds, so that it takes the GEMM path. With few columns the depth
  // blocks grow until packed B takes 512 KiB (4096 deep for up to 32 f32 columns).
  const auto cases = mkn_cases({{1, 4096, 1},
                                {7, 130, 5},
                                {33, 17, 65},
                                {14, 32, 32},
                                {15, 33, 33},
                                {13, 31, 31},
                                {28, 256, 64},
                                {29, 257, 63},
                                {3, 513, 17},
                                {337, 20, 40},
                                {2, 50, 100},
                                {30, 9000, 20}});  // few columns: deep blocks, more than one
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ir::dtype_name(dtype));
    check_cases(dtype, cases);
  }
}

TEST_CASE("matmuls below the GEMM threshold still match the interpreter", "[codegen][gemm]") {
  check_cases(DType::f32, mkn_cases({{1, 1, 1}, {2, 3, 4}, {15, 16, 17}}), false);
}

TEST_CASE("gemm matches the interpreter on an MLP-sized layer", "[codegen][gemm]") {
  // Large enough to run in parallel: split by rows, and (few rows, many columns) by columns.
  check_cases(DType::f32, {{Shape{20, 300}, Shape{300, 1000}},
                           {Shape{300, 20}, Shape{1000, 300}, true, true},
                           {Shape{128, 784}, Shape{784, 512}},
                           {Shape{128, 512}, Shape{512, 10}},
                           {Shape{784, 128}, Shape{784, 512}, true, false},
                           {Shape{128, 10}, Shape{512, 10}, false, true}});
}

TEST_CASE("GEMM helpers are compiled once and shared by later functions", "[codegen][gemm]") {
  // Split over threads, each part body and micro-kernel is compiled into an object of its own,
  // defined once however many kernels (or modules) call it; a later function with the same
  // helpers links those objects instead of compiling them again. Both compute what one module
  // does.
  testing::ScopedEnv threads("KILN_COMPILE_THREADS", "2");
  testing::ScopedEnv compiled("KILN_PREBUILT_HELPERS", "off");  // not those built with Kiln
  // Both micro-tile widths (N fits one vector or not) and every transpose pair.
  const std::vector<Case> cases = mkn_cases({{61, 999, 7}, {45, 999, 70}});
  const auto [f, args, depth] = function_of(DType::f64, cases, 40);
  const testing::Plans plans = testing::simple_plans(f);
  const ir::EvalResult want = ir::evaluate(f, args);
  // Each helper's definition, counted in a module's text.
  auto definitions = [](const std::string& text) {
    std::map<std::string, int> count;
    for (size_t at = text.find("\ndefine "); at != std::string::npos;
         at = text.find("\ndefine ", at + 1)) {
      const size_t name = text.find('@', at);
      const std::string fn = text.substr(name + 1, text.find('(', name) - name - 1);
      if (fn.starts_with("gemm_")) ++count[fn];
    }
    return count;
  };
  std::vector<std::map<std::string, int>> defined;
  std::vector<size_t> helpers_compiled;  // by the process, after each compile
  for (int round = 0; round < 2; ++round) {
    INFO("compile " << round);
    auto module = codegen::compile_jit(f, plans.kernels, plans.memory);
    helpers_compiled.push_back(codegen::HelperObjects::get().compile_count());
    defined.push_back(definitions(module->llvm_ir()));
    std::vector<ir::HostTensor> got = testing::run_compiled(*module, f, args);
    for (size_t i = 0; i < cases.size(); ++i) {
      INFO("case " << i);
      check_close(got[i], want.outputs[i], depth[i]);
    }
  }
  // Every transpose pair has a part body of its own, both widths a micro-kernel: at least six
  // helpers, each defined once; the second compile links the first's (it compiles none, and
  // its module holds the same ones).
  CHECK(defined[0].size() >= 6);
  for (const auto& [name, n] : defined[0]) {
    INFO(name);
    CHECK(n == 1);
  }
  CHECK(helpers_compiled[0] >= defined[0].size());
  CHECK(helpers_compiled[1] == helpers_compiled[0]);
  CHECK(defined[1] == defined[0]);
}

TEST_CASE("gemm handles zero-size dimensions", "[codegen][gemm]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    // K = 0 gives zeros; M = 0, N = 0 or an empty batch give empty results.
    check_cases(dtype, {{Shape{64, 0}, Shape{0, 70}},
                        {Shape{0, 80}, Shape{0, 100}, true, false},
                        {Shape{0, 5}, Shape{5, 3}},
                        {Shape{5, 3}, Shape{3, 0}},
                        {Shape{0, 2, 3}, Shape{3, 4}},
                        {Shape{20, 0}, Shape{33, 0}, false, true}});
  }
}

TEST_CASE("gemm broadcasts batch dimensions", "[codegen][gemm]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    check_cases(dtype, {{Shape{2, 1, 20, 30}, Shape{3, 30, 17}},
                        {Shape{4, 60, 100}, Shape{100, 30}},
                        {Shape{16, 100}, Shape{4, 100, 33}},
                        {Shape{3, 1, 20, 17}, Shape{1, 2, 33, 20}, true, true},
                        {Shape{2, 15, 40}, Shape{2, 50, 40}, false, true}});
  }
}

TEST_CASE("gemm applies a fused epilogue to every tile", "[codegen][gemm]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ir::dtype_name(dtype));
    // relu(x·w + bias) and a batched variant with a broadcast [N] bias and a [M, 1] scale.
    ir::Function g("dense");
    ir::Value* x = g.add_param({dtype, Shape{37, 300}});
    ir::Value* w = g.add_param({dtype, Shape{300, 45}});
    ir::Value* bias = g.add_param({dtype, Shape{45}});
    ir::Value* mm = g.append(Op::matmul, {x, w})->output();
    g.set_outputs({g.append(Op::relu, {g.append(Op::add, {mm, bias})->output()})->output()});
    const std::vector<ir::HostTensor> args{uniform(dtype, Shape{37, 300}, 1),
                                           uniform(dtype, Shape{300, 45}, 2),
                                           uniform(dtype, Shape{45}, 3)};
    testing::check_against_interpreter(g, testing::fused_plans(g, passes::KernelKind::matmul), args,
                                       1e-3);

    ir::Function h("batched");
    ir::Value* p = h.add_param({dtype, Shape{3, 20, 16}});
    ir::Value* q = h.add_param({dtype, Shape{16, 35}});
    ir::Value* scale = h.add_param({dtype, Shape{20, 1}});
    ir::Value* prod = h.append(Op::matmul, {p, q})->output();
    ir::Value* scaled = h.append(Op::mul, {prod, scale})->output();
    h.set_outputs({h.append(Op::tanh, {scaled})->output()});
    testing::check_against_interpreter(
        h, testing::fused_plans(h, passes::KernelKind::matmul),
        {uniform(dtype, Shape{3, 20, 16}, 4), uniform(dtype, Shape{16, 35}, 5),
         uniform(dtype, Shape{20, 1}, 6)},
        1e-4);
  }
}

TEST_CASE("gemm streams B for a few rows, with the epilogue, across column blocks",
          "[codegen][gemm]") {
  // Up to 8 rows with a block of B that fits L2 take the small-M path: blocks of 8 vectors of
  // columns for up to 3 rows (128 f32 / 64 f64 on AVX-512), fewer for more, so 300 columns are
  // several blocks and a masked tail; 9 rows pack B.
  for (DType dtype : {DType::f32, DType::f64}) {
    for (int64_t m : {1, 2, 3, 4, 8, 9}) {
      INFO(ir::dtype_name(dtype) << " m = " << m);
      ir::Function g("dense");
      ir::Value* x = g.add_param({dtype, Shape{m, 200}});
      ir::Value* w = g.add_param({dtype, Shape{200, 300}});
      ir::Value* bias = g.add_param({dtype, Shape{300}});
      ir::Value* mm = g.append(Op::matmul, {x, w})->output();
      g.set_outputs({g.append(Op::relu, {g.append(Op::add, {mm, bias})->output()})->output()});
      testing::check_against_interpreter(
          g, testing::fused_plans(g, passes::KernelKind::matmul),
          {uniform(dtype, Shape{m, 200}, 11), uniform(dtype, Shape{200, 300}, 12),
           uniform(dtype, Shape{300}, 13)},
          1e-4);
    }
    check_cases(dtype, {{Shape{2, 4, 50}, Shape{50, 130}}, {Shape{3, 60, 2}, Shape{60, 70}, true}});
  }
}

TEST_CASE("gemm's narrow and small-M paths at their edges", "[codegen][gemm]") {
  // Column panels split across threads with A unpacked; deep blocks with transposed B split by
  // columns; small-M with no depth, above the threading threshold, and with a broadcast A.
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ir::dtype_name(dtype));
    check_cases(dtype, {{Shape{12, 6000}, Shape{6000, 60}},
                        {Shape{10, 20000}, Shape{40, 20000}, false, true},
                        {Shape{4, 0}, Shape{0, 1100}},
                        {Shape{1, 4096}, Shape{4096, 1100}},
                        {Shape{4, 100}, Shape{3, 100, 200}}});
  }
}

TEST_CASE("gemm epilogues may change the element type", "[codegen][gemm]") {
  ir::Function f("positive");
  ir::Value* a = f.add_param({DType::f32, Shape{19, 40}});
  ir::Value* b = f.add_param({DType::f32, Shape{40, 50}});
  ir::Value* mm = f.append(Op::matmul, {a, b})->output();
  ir::Value* wide = f.append(Op::cast, {mm}, Attrs().set_dtype("dtype", DType::f64))->output();
  f.set_outputs({f.append(Op::mul, {wide, wide})->output()});
  testing::check_against_interpreter(
      f, testing::fused_plans(f, passes::KernelKind::matmul),
      {uniform(DType::f32, Shape{19, 40}, 7), uniform(DType::f32, Shape{40, 50}, 8)},
      1e5);  // f64 results of f32 sums: tolerance × 1e-8 below
}

TEST_CASE("gemm propagates NaN and infinities like the interpreter", "[codegen][gemm]") {
  // With only ±inf, NaN and small integers the classification of every result does not
  // depend on the summation order, so compiled and interpreted results must agree exactly.
  ir::Function f("specials");
  ir::Value* a = f.add_param({DType::f32, Shape{17, 9}});
  ir::Value* b = f.add_param({DType::f32, Shape{9, 35}});
  f.set_outputs({f.append(Op::matmul, {a, b})->output()});
  auto fill = [](const Shape& shape, uint32_t seed) {
    ir::HostTensor t(DType::f32, shape);
    std::mt19937 gen(seed);
    const float values[] = {0.f,  1.f, -2.f, 3.f,      -0.f,      2.f,
                            -1.f, 1.f, -3.f, INFINITY, -INFINITY, NAN};
    for (int64_t i = 0; i < t.num_elements(); ++i)
      t.data<float>()[i] = values[gen() % (i % 11 == 0 ? 12 : 9)];
    return t;
  };
  testing::check_against_interpreter(f, {fill(Shape{17, 9}, 1), fill(Shape{9, 35}, 2)}, 0.0);
}

TEST_CASE("gemm uses vector FMAs sized for the target", "[codegen][gemm]") {
  ir::Function f("fma");
  ir::Value* a = f.add_param({DType::f32, Shape{64, 64}});
  ir::Value* b = f.add_param({DType::f32, Shape{64, 64}});
  f.set_outputs({f.append(Op::matmul, {a, b})->output()});
  const testing::Plans plans = testing::simple_plans(f);
  auto module = codegen::compile_jit(f, plans.kernels, plans.memory);
  const std::string& ir = module->llvm_ir();
  __builtin_cpu_init();
  const char* want = __builtin_cpu_supports("avx512f") ? "@llvm.fma.v16f32"
                     : __builtin_cpu_supports("avx2")  ? "@llvm.fma.v8f32"
                                                       : "@llvm.fma.v4f32";
  CHECK(ir.find(want) != std::string::npos);
  CHECK(ir.find("gemm_micro") != std::string::npos);
  CHECK(ir.find("kiln_rt_parallel_for") != std::string::npos);
}
