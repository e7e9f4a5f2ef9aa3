// Large kernels (above the parallel threshold, so they run through kiln_rt_parallel_for) of
// every kind, compiled vs the interpreter, at odd sizes; the vectorized shape of contiguous
// loops; in-place kernels from the real memory planner.
#include <catch2/catch.hpp>

#include "codegen_test_util.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/pipeline.h"

namespace kiln {
namespace {

using ir::Attrs;
using ir::DType;
using ir::Op;
using ir::Shape;
using testing::check_against_interpreter;
using testing::sample;

bool host_has_avx512() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

// y = relu(x*a + b)*c − x over `shape`, one fused loop kernel.
ir::Function chain(Shape shape) {
  ir::Function f("chain");
  ir::Value* x = f.add_param({DType::f32, shape});
  ir::Value* a = f.add_param({DType::f32, shape});
  ir::Value* b = f.add_param({DType::f32, shape});
  ir::Value* c = f.add_param({DType::f32, shape});
  ir::Value* t = f.append(Op::add, {f.append(Op::mul, {x, a})->output(), b})->output();
  t = f.append(Op::mul, {f.append(Op::relu, {t})->output(), c})->output();
  f.set_outputs({f.append(Op::sub, {t, x})->output()});
  return f;
}

std::vector<ir::HostTensor> samples(const ir::Function& f, uint32_t seed) {
  std::vector<ir::HostTensor> args;
  for (size_t i = 0; i < f.params().size(); ++i)
    args.push_back(sample(f.param(i)->type(), seed + static_cast<uint32_t>(i)));
  return args;
}

TEST_CASE("a large contiguous loop kernel is vectorized and parallel", "[codegen][parallel]") {
  ir::Function f = chain(Shape{301, 517});  // 155617 elements: not a multiple of 16
  auto plans = testing::fused_plans(f, passes::KernelKind::loop);
  auto module = codegen::compile_jit(f, plans.kernels, plans.memory);
  const std::string& text = module->llvm_ir();
  CHECK(text.find("kiln_rt_parallel_for") != std::string::npos);
  CHECK(text.find(host_has_avx512() ? "<16 x float>" : "x float>") != std::string::npos);
  CHECK(text.find("noalias") != std::string::npos);
  check_against_interpreter(f, plans, samples(f, 1));
}

TEST_CASE("a small loop kernel runs inline", "[codegen][parallel]") {
  ir::Function f = chain(Shape{37});
  auto plans = testing::fused_plans(f, passes::KernelKind::loop);
  auto module = codegen::compile_jit(f, plans.kernels, plans.memory);
  CHECK(module->llvm_ir().find("kiln_rt_parallel_for") == std::string::npos);
  check_against_interpreter(f, plans, samples(f, 2));
}

TEST_CASE("large broadcasting loop kernels match the interpreter", "[codegen][parallel]") {
  for (DType dtype : {DType::f32, DType::i32, DType::f64}) {
    ir::Function f("broadcast");
    ir::Value* x = f.add_param({dtype, Shape{3, 170, 131}});
    ir::Value* row = f.add_param({dtype, Shape{131}});
    ir::Value* col = f.add_param({dtype, Shape{3, 170, 1}});
    ir::Value* t = f.append(Op::add, {f.append(Op::mul, {x, row})->output(), col})->output();
    f.set_outputs({f.append(Op::sub, {t, x})->output(), f.append(Op::maximum, {t, row})->output()});
    INFO("dtype " << ir::dtype_name(dtype));
    check_against_interpreter(f, testing::fused_plans(f, passes::KernelKind::loop), samples(f, 3));
  }
}

TEST_CASE("large reductions over every kind of axis match the interpreter", "[codegen][parallel]") {
  struct Case {
    Shape shape;
    std::vector<int64_t> axes;
    bool keepdims;
  };
  const Case cases[] = {
      {Shape{257, 301}, {1}, false},      // innermost: one vectorized sum per row
      {Shape{257, 301}, {0}, false},      // outermost: column blocks across rows
      {Shape{9, 81, 97}, {1}, true},      // middle axis, keepdims
      {Shape{9, 81, 97}, {0, 2}, false},  // outer and inner
      {Shape{70001}, {0}, false},         // everything to one element
      {Shape{3, 700, 41}, {-3, -2}, false},
  };
  for (DType dtype : {DType::f32, DType::f64, DType::i64}) {
    for (Op op : {Op::reduce_sum, Op::reduce_mean, Op::reduce_max, Op::reduce_min}) {
      for (const Case& c : cases) {
        ir::Function f("reduce");
        ir::Value* x = f.add_param({dtype, c.shape});
        ir::Value* sq = f.append(Op::mul, {x, x})->output();
        f.set_outputs(
            {f.append(op, {sq}, Attrs().set_ints("axes", c.axes).set_bool("keepdims", c.keepdims))
                 ->output()});
        INFO(ir::print(f));
        // Without specials: squares of ±3e19 overflow, and inf − inf orders differ.
        check_against_interpreter(f, testing::fused_plans(f, passes::KernelKind::reduction),
                                  {sample(x->type(), 4, dtype != DType::f32)});
      }
    }
  }
  ir::Function g("prod_arg");
  ir::Value* x = g.add_param({DType::f32, Shape{300, 257}});
  g.set_outputs({g.append(Op::reduce_prod, {x}, Attrs().set_ints("axes", {0}))->output(),
                 g.append(Op::argmax, {x}, Attrs().set_int("axis", 1))->output(),
                 g.append(Op::argmin, {x}, Attrs().set_int("axis", 0))->output()});
  check_against_interpreter(g, samples(g, 5));
}

TEST_CASE("large op kernels match the interpreter", "[codegen][parallel]") {
  ir::Function f("ops");
  ir::Value* x = f.add_param({DType::f32, Shape{130, 17, 33}});
  ir::Value* y = f.add_param({DType::f32, Shape{130, 5, 33}});
  ir::Value* img = f.add_param({DType::f32, Shape{2, 67, 65, 8}});
  ir::Value* filter = f.add_param({DType::f32, Shape{3, 3, 8, 5}});
  f.set_outputs({
      f.append(Op::transpose, {x}, Attrs().set_ints("perm", {2, 0, 1}))->output(),
      f.append(Op::concat, {x, y}, Attrs().set_int("axis", 1))->output(),
      f.append(Op::pad, {x}, Attrs().set_ints("paddings", {1, 0, 0, 2, 3, 1}))->output(),
      f.append(Op::softmax, {x})->output(),
      f.append(Op::log_softmax, {x}, Attrs().set_int("axis", 1))->output(),
      f.append(Op::softmax, {x}, Attrs().set_int("axis", 0))->output(),
      f.append(Op::max_pool2d, {img},
               Attrs()
                   .set_ints("ksize", {3, 3})
                   .set_ints("strides", {2, 2})
                   .set_string("padding", "valid"))
          ->output(),
      f.append(Op::avg_pool2d, {img},
               Attrs()
                   .set_ints("ksize", {2, 2})
                   .set_ints("strides", {1, 1})
                   .set_string("padding", "same"))
          ->output(),
      f.append(Op::conv2d, {img, filter}, Attrs().set_string("padding", "same"))->output(),
  });
  check_against_interpreter(f, samples(f, 6), 1e-5);
}

TEST_CASE("a large integer matmul with an epilogue runs in parallel", "[codegen][parallel]") {
  ir::Function f("imatmul");
  ir::Value* a = f.add_param({DType::i32, Shape{129, 67}});
  ir::Value* b = f.add_param({DType::i32, Shape{67, 515}});
  ir::Value* bias = f.add_param({DType::i32, Shape{515}});
  ir::Value* mm = f.append(Op::matmul, {a, b})->output();
  f.set_outputs({f.append(Op::add, {mm, bias})->output()});
  auto plans = testing::fused_plans(f, passes::KernelKind::matmul);
  auto module = codegen::compile_jit(f, plans.kernels, plans.memory);
  CHECK(module->llvm_ir().find("kiln_rt_parallel_for") != std::string::npos);
  check_against_interpreter(f, plans, samples(f, 7));
}

TEST_CASE("planned in-place kernels stay correct when vectorized", "[codegen][parallel]") {
  // Unfused, each elementwise step may write over the block of the step before it.
  ir::Function f = chain(Shape{257, 263});
  passes::PipelineOptions options;
  options.fuse = false;
  options.print_after.clear();
  passes::PipelineResult planned = passes::run_pipeline(std::move(f), options);
  CHECK_FALSE(planned.memory.in_place.empty());
  testing::Plans plans{planned.kernels, planned.memory};
  check_against_interpreter(planned.function, plans, samples(planned.function, 8));
}

}  // namespace
}  // namespace kiln
