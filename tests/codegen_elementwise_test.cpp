// Differential tests of compiled elementwise code against the interpreter: every unary, binary,
// comparison, logical, select and cast op × dtype × shape (broadcasting, odd sizes, size-1 and
// zero-size dims), one kernel per node and whole fused groups.
#include "codegen_test_util.h"
#include "op_test_util.h"

using namespace kiln;
using ir::DType;
using ir::Op;
using ir::Shape;
using testing::check_against_interpreter;
using testing::sample;

namespace {

const Op kNumericUnary[] = {Op::neg, Op::abs, Op::sign, Op::square, Op::relu};
const Op kFloatUnary[] = {Op::exp,      Op::log,   Op::sqrt, Op::rsqrt,   Op::reciprocal,
                          Op::sin,      Op::cos,   Op::tanh, Op::sigmoid, Op::elu,
                          Op::softplus, Op::floor, Op::ceil, Op::round};
const Op kArithmetic[] = {Op::add, Op::sub, Op::mul, Op::div, Op::pow, Op::maximum, Op::minimum};
const Op kCompare[] = {Op::equal,      Op::not_equal, Op::less,
                       Op::less_equal, Op::greater,   Op::greater_equal};

// Shapes not multiples of the vector width, with tails, size-1 and zero-size dims.
const Shape kShapes[] = {Shape{},      Shape{1},       Shape{37},
                         Shape{3, 17}, Shape{2, 0, 5}, Shape{4, 1, 33}};

// Pairs that broadcast.
const std::pair<Shape, Shape> kPairs[] = {{Shape{5, 17}, Shape{5, 17}},
                                          {Shape{5, 17}, Shape{17}},
                                          {Shape{4, 1, 3}, Shape{1, 5, 1}},
                                          {Shape{}, Shape{2, 3}},
                                          {Shape{0, 3}, Shape{3}}};

}  // namespace

TEST_CASE("compiled unary ops match the interpreter for every dtype and shape", "[codegen]") {
  for (DType dtype : {DType::f32, DType::f64, DType::i32, DType::i64}) {
    ir::Function f("unary");
    std::vector<ir::HostTensor> args;
    std::vector<ir::Value*> outs;
    uint32_t seed = 1;
    for (const Shape& shape : kShapes) {
      ir::Value* x = f.add_param({dtype, shape});
      args.push_back(sample({dtype, shape}, seed++));
      for (Op op : kNumericUnary)
        outs.push_back(f.append(op, {x})->output());
      if (!ir::is_floating(dtype)) continue;
      for (Op op : kFloatUnary) {
        ir::Attrs attrs;
        if (op == Op::elu) attrs.set_float("alpha", 0.7);
        outs.push_back(f.append(op, {x}, attrs)->output());
      }
    }
    f.set_outputs(outs);
    INFO("dtype " << ir::dtype_name(dtype));
    check_against_interpreter(f, args);
  }
}

TEST_CASE("compiled binary ops broadcast and match the interpreter", "[codegen]") {
  for (DType dtype : {DType::f32, DType::f64, DType::i32, DType::i64}) {
    ir::Function f("binary");
    std::vector<ir::HostTensor> args;
    std::vector<ir::Value*> outs;
    uint32_t seed = 100;
    for (const auto& [sa, sb] : kPairs) {
      ir::Value* a = f.add_param({dtype, sa});
      ir::Value* b = f.add_param({dtype, sb});
      args.push_back(sample({dtype, sa}, seed++));
      args.push_back(sample({dtype, sb}, seed++));
      for (Op op : kArithmetic)
        outs.push_back(f.append(op, {a, b})->output());
      for (Op op : kCompare)
        outs.push_back(f.append(op, {a, b})->output());
    }
    f.set_outputs(outs);
    INFO("dtype " << ir::dtype_name(dtype));
    check_against_interpreter(f, args);
  }
}

TEST_CASE("compiled integer division and power never trap", "[codegen]") {
  for (DType dtype : {DType::i32, DType::i64}) {
    ir::Function f("intdiv");
    ir::Value* a = f.add_param({dtype, Shape{6}});
    ir::Value* b = f.add_param({dtype, Shape{6}});
    f.set_outputs({f.append(Op::div, {a, b})->output(), f.append(Op::pow, {a, b})->output()});
    auto fill = [&](auto lo) {
      using T = decltype(lo);
      std::vector<T> xs{7, lo, -7, 3, -1, 2}, ys{0, -1, 2, -2, -3, 40};
      return std::vector<ir::HostTensor>{testing::make<T>(Shape{6}, xs),
                                         testing::make<T>(Shape{6}, ys)};
    };
    std::vector<ir::HostTensor> args = dtype == DType::i32
                                           ? fill(std::numeric_limits<int32_t>::min())
                                           : fill(std::numeric_limits<int64_t>::min());
    check_against_interpreter(f, args);
  }
}

TEST_CASE("compiled bool ops, select and casts match the interpreter", "[codegen]") {
  ir::Function f("logic");
  const Shape shape{3, 19};
  ir::Value* p = f.add_param({DType::boolean, shape});
  ir::Value* q = f.add_param({DType::boolean, Shape{19}});
  std::vector<ir::HostTensor> args{sample({DType::boolean, shape}, 1),
                                   sample({DType::boolean, Shape{19}}, 2)};
  std::vector<ir::Value*> outs{
      f.append(Op::logical_and, {p, q})->output(), f.append(Op::logical_or, {p, q})->output(),
      f.append(Op::logical_not, {p})->output(), f.append(Op::equal, {p, q})->output(),
      f.append(Op::not_equal, {p, q})->output()};
  uint32_t seed = 10;
  for (DType from : ir::kAllDTypes) {
    ir::Value* x = f.add_param({from, shape});
    args.push_back(sample({from, shape}, seed++));
    ir::Value* y = f.add_param({from, Shape{3, 1}});
    args.push_back(sample({from, Shape{3, 1}}, seed++));
    outs.push_back(f.append(Op::select, {q, x, y})->output());
    for (DType to : ir::kAllDTypes) {
      outs.push_back(f.append(Op::cast, {x}, ir::Attrs().set_dtype("dtype", to))->output());
    }
  }
  f.set_outputs(outs);
  check_against_interpreter(f, args);
}

TEST_CASE("a fused elementwise group evaluates the whole chain per element", "[codegen]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    // y = 10x² − 5x + 4 with scalar constants, and a broadcast bias and a second result.
    ir::Function f("poly");
    ir::Value* x = f.add_param({dtype, Shape{7, 45}});
    ir::Value* bias = f.add_param({dtype, Shape{45}});
    auto scalar = [&](double v) {
      ir::HostTensor t(dtype, Shape{});
      ir::visit_dtype(dtype, [&](auto zero) {
        using T = decltype(zero);
        if constexpr (std::is_floating_point_v<T>) t.data<T>()[0] = static_cast<T>(v);
      });
      return f.append(Op::constant, {}, ir::Attrs().set_tensor("value", t))->output();
    };
    ir::Value* xx = f.append(Op::mul, {x, x})->output();
    ir::Value* a = f.append(Op::mul, {scalar(10), xx})->output();
    ir::Value* b = f.append(Op::mul, {scalar(-5), x})->output();
    ir::Value* s = f.append(Op::add, {f.append(Op::add, {a, b})->output(), scalar(4)})->output();
    ir::Value* y = f.append(Op::add, {s, bias})->output();
    ir::Value* r = f.append(Op::relu, {f.append(Op::tanh, {y})->output()})->output();
    f.set_outputs({y, r});
    std::vector<ir::HostTensor> args{sample({dtype, Shape{7, 45}}, 3),
                                     sample({dtype, Shape{45}}, 4)};
    check_against_interpreter(f, testing::fused_plans(f, passes::KernelKind::loop), args);
    check_against_interpreter(f, args);
  }
}

TEST_CASE("the fused loop is vectorized by the optimizer", "[codegen]") {
  ir::Function f("vec");
  ir::Value* x = f.add_param({DType::f32, Shape{1000}});
  ir::Value* y = f.add_param({DType::f32, Shape{1000}});
  f.set_outputs({f.append(Op::add, {f.append(Op::mul, {x, y})->output(), x})->output()});
  auto plans = testing::fused_plans(f, passes::KernelKind::loop);
  auto module = codegen::compile_jit(f, plans.kernels, plans.memory);
  CHECK_THAT(module->llvm_ir(), Catch::Contains("x float>"));
}
