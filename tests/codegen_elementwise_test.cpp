// Differential tests of compiled elementwise code against the interpreter: every unary, binary,
// comparison, logical, select and cast op of the table × every dtype it accepts × shape
// (broadcasting, odd sizes, size-1 and zero-size dims), one kernel per node and whole fused groups.
#include "codegen_test_util.h"
#include "op_test_util.h"

using namespace kiln;
using ir::DType;
using ir::Op;
using ir::Shape;
using testing::check_against_interpreter;
using testing::sample;
using testing::table_ops;

namespace {

// Attribute sets each op runs with: its defaults, and the variants its attributes allow.
std::vector<ir::Attrs> attr_variants(Op op) {
  if (op == Op::elu) return {ir::Attrs(), ir::Attrs().set_float("alpha", 0.7)};
  if (op == Op::gelu) return {ir::Attrs(), ir::Attrs().set_bool("approximate", true)};
  return {ir::Attrs()};
}

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

TEST_CASE("the differential tests below reach every elementwise op of the table", "[codegen]") {
  for (int i = 0; i < ir::kNumOps; ++i) {
    const Op op = static_cast<Op>(i);
    if (!ir::has_trait(op, ir::kElementwise)) continue;
    INFO(ir::op_name(op));
    if (op == Op::cast || op == Op::select) continue;  // "compiled bool ops, select and casts"
    bool reached = false;
    for (DType dtype : ir::kAllDTypes) {
      for (Op listed : table_ops(ir::op_num_inputs(op), dtype))
        reached |= listed == op;
    }
    CHECK(reached);
    CHECK((ir::op_num_inputs(op) == 1 || ir::op_num_inputs(op) == 2));
  }
}

TEST_CASE("compiled unary ops match the interpreter for every dtype and shape", "[codegen]") {
  for (DType dtype : ir::kAllDTypes) {
    ir::Function f("unary");
    std::vector<ir::HostTensor> args;
    std::vector<ir::Value*> outs;
    uint32_t seed = 1;
    for (const Shape& shape : kShapes) {
      ir::Value* x = f.add_param({dtype, shape});
      args.push_back(sample({dtype, shape}, seed++));
      for (Op op : table_ops(1, dtype)) {
        for (const ir::Attrs& attrs : attr_variants(op))
          outs.push_back(f.append(op, {x}, attrs)->output());
      }
    }
    f.set_outputs(outs);
    INFO("dtype " << ir::dtype_name(dtype));
    check_against_interpreter(f, args);
  }
}

TEST_CASE("compiled binary ops broadcast and match the interpreter", "[codegen]") {
  for (DType dtype : ir::kAllDTypes) {
    ir::Function f("binary");
    std::vector<ir::HostTensor> args;
    std::vector<ir::Value*> outs;
    uint32_t seed = 100;
    for (const auto& [sa, sb] : kPairs) {
      ir::Value* a = f.add_param({dtype, sa});
      ir::Value* b = f.add_param({dtype, sb});
      args.push_back(sample({dtype, sa}, seed++));
      args.push_back(sample({dtype, sb}, seed++));
      for (Op op : table_ops(2, dtype))
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

TEST_CASE("u8 arithmetic wraps modulo 256 and compares unsigned, compiled as interpreted",
          "[codegen][u8]") {
  ir::Function f("u8ops");
  ir::Value* a = f.add_param({DType::u8, Shape{8}});
  ir::Value* b = f.add_param({DType::u8, Shape{8}});
  std::vector<Op> ops{Op::add,     Op::sub,     Op::mul,     Op::div,  Op::pow,
                      Op::maximum, Op::minimum, Op::greater, Op::less, Op::greater_equal};
  std::vector<ir::Value*> outs;
  for (Op op : ops)
    outs.push_back(f.append(op, {a, b})->output());
  for (Op op : {Op::neg, Op::abs, Op::sign, Op::square, Op::relu})
    outs.push_back(f.append(op, {a})->output());
  f.set_outputs(outs);
  std::vector<ir::HostTensor> args{
      testing::make<uint8_t>(Shape{8}, {250, 3, 0, 255, 7, 200, 16, 1}),
      testing::make<uint8_t>(Shape{8}, {10, 5, 0, 255, 0, 100, 2, 255})};
  check_against_interpreter(f, args, 0.0);
  // The oracle's values, as NumPy's uint8 gives them (x / 0 = 0 instead of a warning).
  ir::EvalResult r = ir::evaluate(f, args);
  auto u8s = [](const ir::HostTensor& t) {
    auto v = t.values<uint8_t>();
    return std::vector<int>(v.begin(), v.end());
  };
  auto bools = [](const ir::HostTensor& t) {
    auto v = t.values<bool>();
    return std::vector<int>(v.begin(), v.end());
  };
  CHECK(u8s(r.outputs[0]) == std::vector<int>{4, 8, 0, 254, 7, 44, 18, 0});        // add
  CHECK(u8s(r.outputs[1]) == std::vector<int>{240, 254, 0, 0, 7, 100, 14, 2});     // sub
  CHECK(u8s(r.outputs[2]) == std::vector<int>{196, 15, 0, 1, 0, 32, 32, 255});     // mul
  CHECK(u8s(r.outputs[3]) == std::vector<int>{25, 0, 0, 1, 0, 2, 8, 0});           // div
  CHECK(u8s(r.outputs[4]) == std::vector<int>{0, 243, 1, 255, 1, 0, 0, 1});        // pow
  CHECK(u8s(r.outputs[5]) == std::vector<int>{250, 5, 0, 255, 7, 200, 16, 255});   // maximum
  CHECK(u8s(r.outputs[6]) == std::vector<int>{10, 3, 0, 255, 0, 100, 2, 1});       // minimum
  CHECK(bools(r.outputs[7]) == std::vector<int>{1, 0, 0, 0, 1, 1, 1, 0});          // greater
  CHECK(bools(r.outputs[8]) == std::vector<int>{0, 1, 0, 0, 0, 0, 0, 1});          // less
  CHECK(bools(r.outputs[9]) == std::vector<int>{1, 0, 1, 1, 1, 1, 1, 0});          // greater_equal
  CHECK(u8s(r.outputs[10]) == std::vector<int>{6, 253, 0, 1, 249, 56, 240, 255});  // neg wraps
  CHECK(u8s(r.outputs[11]) == u8s(args[0]));                                       // abs
  CHECK(u8s(r.outputs[12]) == std::vector<int>{1, 1, 0, 1, 1, 1, 1, 1});           // sign
  CHECK(u8s(r.outputs[13]) == std::vector<int>{36, 9, 0, 1, 49, 64, 0, 1});        // square
  CHECK(u8s(r.outputs[14]) == u8s(args[0]));                                       // relu
}

TEST_CASE("casts to and from u8 agree bit for bit and follow the documented rule",
          "[codegen][u8]") {
  // In range (truncating toward zero), at the edges, out of range (saturating) and NaN (0).
  const std::vector<double> xs{0.0,   0.5,    0.99,  1.0,      1.5,       127.5, 128.0, 254.99,
                               255.0, 255.99, 256.0, 300.0,    1e10,      -0.0,  -0.5,  -0.99,
                               -1.0,  -1.5,   -300,  INFINITY, -INFINITY, NAN,   3.7,   42.25};
  const std::vector<int> want{0,   0, 0, 1, 1, 127, 128, 254, 255, 255, 255, 255,
                              255, 0, 0, 0, 0, 0,   0,   255, 0,   0,   3,   42};
  const Shape shape{static_cast<int64_t>(xs.size())};
  for (DType from : {DType::f32, DType::f64}) {
    ir::Function f("to_u8");
    ir::Value* x = f.add_param({from, shape});
    f.set_outputs({f.append(Op::cast, {x}, ir::Attrs().set_dtype("dtype", DType::u8))->output()});
    ir::HostTensor arg = from == DType::f32 ? testing::make<float>(shape, testing::as<float>(xs))
                                            : testing::make<double>(shape, xs);
    std::vector<ir::HostTensor> args{arg};
    check_against_interpreter(f, args, 0.0);
    ir::HostTensor got = ir::evaluate(f, args).outputs[0];
    CHECK(std::vector<int>(got.values<uint8_t>().begin(), got.values<uint8_t>().end()) == want);
  }
  // u8 → everything, every byte value: zero-extended, exact in floats, != 0 as bool.
  ir::Function g("from_u8");
  ir::Value* y = g.add_param({DType::u8, Shape{256}});
  std::vector<ir::Value*> outs;
  for (DType to : ir::kAllDTypes)
    outs.push_back(g.append(Op::cast, {y}, ir::Attrs().set_dtype("dtype", to))->output());
  g.set_outputs(outs);
  std::vector<uint8_t> bytes(256);
  for (int i = 0; i < 256; ++i)
    bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
  std::vector<ir::HostTensor> args{testing::make<uint8_t>(Shape{256}, bytes)};
  check_against_interpreter(g, args, 0.0);
  ir::EvalResult r = ir::evaluate(g, args);
  for (size_t k = 0; k < outs.size(); ++k) {
    for (int64_t i = 0; i < 256; ++i) {
      INFO("to " << ir::dtype_name(ir::kAllDTypes[k]) << ", byte " << i);
      CHECK(r.outputs[k].element_as_double(i) == (ir::kAllDTypes[k] == DType::boolean
                                                      ? static_cast<double>(i != 0)
                                                      : static_cast<double>(i)));
    }
  }
  // Wider integers wrap modulo 256 on the way in: i32 300 → 44, −1 → 255.
  ir::Function h("i32_to_u8");
  ir::Value* z = h.add_param({DType::i32, Shape{4}});
  h.set_outputs({h.append(Op::cast, {z}, ir::Attrs().set_dtype("dtype", DType::u8))->output()});
  std::vector<ir::HostTensor> ints{testing::make<int32_t>(Shape{4}, {300, -1, 255, 256})};
  check_against_interpreter(h, ints, 0.0);
  ir::HostTensor wrapped = ir::evaluate(h, ints).outputs[0];
  CHECK(std::vector<int>(wrapped.values<uint8_t>().begin(), wrapped.values<uint8_t>().end()) ==
        std::vector<int>{44, 255, 255, 0});
}

TEST_CASE("u8 pixels scaled to f32 in one fused kernel, as a data pipeline does", "[codegen][u8]") {
  // y = cast(x, f32) / 255: the step every image model starts with.
  ir::Function f("scale");
  ir::Value* x = f.add_param({DType::u8, Shape{3, 28, 28}});
  ir::Value* c = f.append(Op::cast, {x}, ir::Attrs().set_dtype("dtype", DType::f32))->output();
  ir::Value* k =
      f.append(Op::constant, {}, ir::Attrs().set_tensor("value", ir::HostTensor::scalar(255.0f)))
          ->output();
  f.set_outputs({f.append(Op::div, {c, k})->output()});
  std::vector<ir::HostTensor> args{sample({DType::u8, Shape{3, 28, 28}}, 9)};
  check_against_interpreter(f, testing::fused_plans(f, passes::KernelKind::loop), args, 0.0);
  check_against_interpreter(f, args, 0.0);
  ir::HostTensor y = ir::evaluate(f, args).outputs[0];
  for (int64_t i = 0; i < y.num_elements(); ++i)
    CHECK(y.data<float>()[i] == static_cast<float>(args[0].data<uint8_t>()[i]) / 255.0f);
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
