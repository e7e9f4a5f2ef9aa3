// Differential tests of compiled creation, reduction, matmul, data-movement and nn ops against
// the interpreter, plus reductions and matmuls with fused producers and epilogues.
#include "codegen_test_util.h"
#include "kiln/ir/parser.h"
#include "kiln/passes/fusion.h"
#include "kiln/passes/memory_plan.h"

using namespace kiln;
using ir::Attrs;
using ir::DType;
using ir::Op;
using ir::Shape;
using testing::check_against_interpreter;
using testing::sample;

TEST_CASE("compiled creation ops match the interpreter bit for bit", "[codegen]") {
  ir::Function f("create");
  std::vector<ir::Value*> outs;
  for (DType dtype : ir::kAllDTypes) {
    Attrs fill;
    fill.set_ints("shape", {3, 5}).set_dtype("dtype", dtype);
    if (ir::is_floating(dtype))
      fill.set_float("value", 2.5);
    else
      fill.set_int("value", dtype == DType::boolean ? 1 : dtype == DType::u8 ? 200 : -7);
    outs.push_back(f.append(Op::fill, {}, fill)->output());
  }
  for (DType dtype : {DType::f32, DType::f64}) {
    outs.push_back(f.append(Op::range, {},
                            Attrs()
                                .set_float("start", -1.5)
                                .set_float("limit", 7.0)
                                .set_float("delta", 0.3)
                                .set_dtype("dtype", dtype))
                       ->output());
    outs.push_back(f.append(Op::linspace, {},
                            Attrs()
                                .set_float("start", -1.0)
                                .set_float("stop", 3.3)
                                .set_int("num", 21)
                                .set_dtype("dtype", dtype))
                       ->output());
    outs.push_back(f.append(Op::random_uniform, {},
                            Attrs()
                                .set_ints("shape", {4, 33})
                                .set_dtype("dtype", dtype)
                                .set_float("minval", -2.0)
                                .set_float("maxval", 3.0)
                                .set_int("seed", 1234567890123))
                       ->output());
    outs.push_back(f.append(Op::random_normal, {},
                            Attrs()
                                .set_ints("shape", {101})
                                .set_dtype("dtype", dtype)
                                .set_float("mean", 1.0)
                                .set_float("stddev", 2.0)
                                .set_int("seed", 42))
                       ->output());
  }
  outs.push_back(f.append(Op::range, {},
                          Attrs()
                              .set_int("start", 250)
                              .set_int("limit", 3)
                              .set_int("delta", -7)
                              .set_dtype("dtype", DType::u8))
                     ->output());
  for (DType dtype : {DType::i32, DType::i64}) {
    outs.push_back(f.append(Op::range, {},
                            Attrs()
                                .set_int("start", 10)
                                .set_int("limit", -20)
                                .set_int("delta", -3)
                                .set_dtype("dtype", dtype))
                       ->output());
  }
  ir::Value* indices = f.add_param({DType::i32, Shape{2, 3}});
  outs.push_back(f.append(Op::one_hot, {indices},
                          Attrs()
                              .set_int("depth", 4)
                              .set_float("on_value", 5.0)
                              .set_float("off_value", -1.0)
                              .set_int("axis", 1))
                     ->output());
  ir::Value* step = f.add_param({DType::i64, Shape{}});
  for (DType dtype : {DType::f32, DType::f64}) {
    outs.push_back(f.append(Op::random_uniform_at, {step},
                            Attrs()
                                .set_ints("shape", {5, 17})
                                .set_dtype("dtype", dtype)
                                .set_float("minval", -1.0)
                                .set_float("maxval", 2.0)
                                .set_int("seed", 99))
                       ->output());
  }
  f.set_outputs(outs);
  std::vector<ir::HostTensor> args{
      ir::HostTensor::from_values<int32_t>(Shape{2, 3}, std::vector<int32_t>{0, 3, -1, 4, 2, 1}),
      ir::HostTensor::scalar<int64_t>(int64_t{5000000000})};
  check_against_interpreter(f, args, 0.0);
}

TEST_CASE("compiled reductions match the interpreter over any axes", "[codegen]") {
  const Op ops[] = {Op::reduce_sum, Op::reduce_mean, Op::reduce_max, Op::reduce_min,
                    Op::reduce_prod};
  const std::vector<std::vector<int64_t>> axes_list{{}, {0}, {-1}, {0, 2}, {0, 1, 2}};
  for (DType dtype : {DType::f32, DType::f64, DType::i32, DType::i64, DType::u8}) {
    ir::Function f("reduce");
    ir::Value* x = f.add_param({dtype, Shape{3, 5, 19}});
    ir::Value* empty = f.add_param({dtype, Shape{2, 0}});
    std::vector<ir::Value*> outs;
    for (Op op : ops) {
      for (const auto& axes : axes_list) {
        for (bool keep : {false, true}) {
          outs.push_back(
              f.append(op, {x}, Attrs().set_ints("axes", axes).set_bool("keepdims", keep))
                  ->output());
        }
      }
      outs.push_back(f.append(op, {empty}, Attrs().set_ints("axes", {1}))->output());
    }
    for (Op op : {Op::argmax, Op::argmin}) {
      for (int64_t axis : {0, 1, -1}) {
        outs.push_back(
            f.append(op, {x}, Attrs().set_int("axis", axis).set_dtype("dtype", DType::i32))
                ->output());
      }
    }
    f.set_outputs(outs);
    INFO("dtype " << ir::dtype_name(dtype));
    // The second argument set has NaNs, for NaN propagation in max/min and argmax.
    ir::HostTensor none(dtype, Shape{2, 0});
    check_against_interpreter(f, testing::simple_plans(f),
                              {{sample({dtype, Shape{3, 5, 19}}, 7, false), none},
                               {sample({dtype, Shape{3, 5, 19}}, 8, true), none}});
  }
}

TEST_CASE("a reduction with fused elementwise producers", "[codegen]") {
  ir::Function f("sumsq");
  ir::Value* x = f.add_param({DType::f32, Shape{6, 50}});
  ir::Value* y = f.add_param({DType::f32, Shape{50}});
  ir::Value* d = f.append(Op::sub, {x, y})->output();
  ir::Value* sq = f.append(Op::square, {d})->output();
  f.set_outputs({f.append(Op::reduce_sum, {sq}, Attrs().set_ints("axes", {1}))->output()});
  check_against_interpreter(
      f, testing::fused_plans(f, passes::KernelKind::reduction),
      {sample({DType::f32, Shape{6, 50}}, 1, false), sample({DType::f32, Shape{50}}, 2, false)});
}

TEST_CASE("compiled matmul with batches, transposes and a fused epilogue", "[codegen]") {
  struct Case {
    Shape a, b;
    bool ta, tb;
  };
  const Case cases[] = {
      {Shape{5, 7}, Shape{7, 3}, false, false}, {Shape{7, 5}, Shape{7, 3}, true, false},
      {Shape{5, 7}, Shape{3, 7}, false, true},  {Shape{2, 1, 4, 6}, Shape{3, 6, 17}, false, false},
      {Shape{4, 0}, Shape{0, 3}, false, false}, {Shape{1, 1}, Shape{33, 1}, true, true}};
  for (DType dtype : {DType::f32, DType::f64, DType::i32, DType::i64, DType::u8}) {
    ir::Function f("matmul");
    std::vector<ir::HostTensor> args;
    std::vector<ir::Value*> outs;
    uint32_t seed = 20;
    for (const Case& c : cases) {
      ir::Value* a = f.add_param({dtype, c.a});
      ir::Value* b = f.add_param({dtype, c.b});
      args.push_back(sample({dtype, c.a}, seed++, false));
      args.push_back(sample({dtype, c.b}, seed++, false));
      outs.push_back(f.append(Op::matmul, {a, b},
                              Attrs().set_bool("transpose_a", c.ta).set_bool("transpose_b", c.tb))
                         ->output());
    }
    f.set_outputs(outs);
    INFO("dtype " << ir::dtype_name(dtype));
    check_against_interpreter(f, args);
  }
  ir::Function g("dense");
  ir::Value* x = g.add_param({DType::f32, Shape{9, 20}});
  ir::Value* w = g.add_param({DType::f32, Shape{20, 13}});
  ir::Value* bias = g.add_param({DType::f32, Shape{13}});
  ir::Value* mm = g.append(Op::matmul, {x, w})->output();
  g.set_outputs({g.append(Op::relu, {g.append(Op::add, {mm, bias})->output()})->output()});
  check_against_interpreter(
      g, testing::fused_plans(g, passes::KernelKind::matmul),
      {sample({DType::f32, Shape{9, 20}}, 1, false), sample({DType::f32, Shape{20, 13}}, 2, false),
       sample({DType::f32, Shape{13}}, 3, false)});
}

TEST_CASE("compiled data-movement ops match the interpreter", "[codegen]") {
  for (DType dtype : {DType::f32, DType::i64, DType::boolean, DType::u8}) {
    ir::Function f("move");
    ir::Value* x = f.add_param({dtype, Shape{3, 4, 5}});
    ir::Value* y = f.add_param({dtype, Shape{3, 2, 5}});
    ir::Value* z = f.add_param({dtype, Shape{3, 0, 5}});
    ir::Value* one = f.add_param({dtype, Shape{1, 4, 1}});
    std::vector<ir::Value*> outs{
        f.append(Op::reshape, {x}, Attrs().set_ints("shape", {6, -1}))->output(),
        f.append(Op::transpose, {x}, Attrs().set_ints("perm", {2, 0, 1}))->output(),
        f.append(Op::squeeze, {one}, Attrs().set_ints("axes", {0, 2}))->output(),
        f.append(Op::expand_dims, {x}, Attrs().set_int("axis", -1))->output(),
        f.append(Op::broadcast_to, {one}, Attrs().set_ints("shape", {2, 3, 4, 7}))->output(),
        f.append(Op::concat, {x, z, y, x}, Attrs().set_int("axis", 1))->output(),
        f.append(Op::slice, {x},
                 Attrs()
                     .set_ints("begin", {2, 0, 4})
                     .set_ints("end", {-1, 4, 0})
                     .set_ints("strides", {-1, 2, -2}))
            ->output(),
        f.append(Op::pad, {x}, Attrs().set_ints("paddings", {1, 0, 0, 2, 3, 1}).set_int("value", 1))
            ->output(),
        f.append(Op::pad, {z}, Attrs().set_ints("paddings", {0, 0, 1, 1, 0, 0}))->output(),
        f.append(Op::tile, {y}, Attrs().set_ints("multiples", {2, 1, 3}))->output()};
    ir::Node* split =
        f.append(Op::split, {x}, Attrs().set_int("axis", 1).set_ints("sizes", {1, 0, 3}));
    for (size_t r = 0; r < split->num_outputs(); ++r)
      outs.push_back(split->output(r));
    f.set_outputs(outs);
    INFO("dtype " << ir::dtype_name(dtype));
    check_against_interpreter(
        f, {sample({dtype, Shape{3, 4, 5}}, 1), sample({dtype, Shape{3, 2, 5}}, 2),
            ir::HostTensor(dtype, Shape{3, 0, 5}), sample({dtype, Shape{1, 4, 1}}, 3)});
  }
}

TEST_CASE("compiled conv2d, pools and softmax match the interpreter", "[codegen]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    ir::Function f("nn");
    ir::Value* x = f.add_param({dtype, Shape{2, 7, 6, 3}});
    ir::Value* k = f.add_param({dtype, Shape{3, 2, 3, 4}});
    std::vector<ir::Value*> outs;
    for (std::string padding : {"same", "valid"}) {
      outs.push_back(f.append(Op::conv2d, {x, k},
                              Attrs()
                                  .set_string("padding", padding)
                                  .set_ints("strides", {2, 1})
                                  .set_ints("dilations", {1, 2}))
                         ->output());
      for (Op op : {Op::max_pool2d, Op::avg_pool2d}) {
        outs.push_back(f.append(op, {x},
                                Attrs()
                                    .set_string("padding", padding)
                                    .set_ints("ksize", {3, 2})
                                    .set_ints("strides", {2, 2}))
                           ->output());
      }
    }
    for (int64_t axis : {-1, 1}) {
      outs.push_back(f.append(Op::softmax, {x}, Attrs().set_int("axis", axis))->output());
      outs.push_back(f.append(Op::log_softmax, {x}, Attrs().set_int("axis", axis))->output());
    }
    f.set_outputs(outs);
    INFO("dtype " << ir::dtype_name(dtype));
    check_against_interpreter(f, {sample({dtype, Shape{2, 7, 6, 3}}, 5, false),
                                  sample({dtype, Shape{3, 2, 3, 4}}, 6, false)});
  }
}

TEST_CASE("reshapes that take their operand's block compute the same values", "[codegen]") {
  // The planned memory makes %1, %2 and %6 views of the blocks they reshape: no kernel runs
  // for them, and what reads them must still see the right bytes.
  ir::Function f = ir::parse(R"(func @f(%x: f32[2,3], %y: f32[2,3]) -> (f32[3,2], f32[6]) {
  %0 = concat(%x, %y) {axis = 0} : f32[4,3]
  %1 = reshape(%0) {shape = [3, 4]} : f32[3,4]
  %2 = reshape(%1) {shape = [12]} : f32[12]
  %3 = slice(%2) {begin = [3], end = [9], strides = [1]} : f32[6]
  %4 = add(%x, %y) : f32[2,3]
  %5 = exp(%4) : f32[2,3]
  %6 = reshape(%5) {shape = [6]} : f32[6]
  %7 = add(%6, %3) : f32[6]
  %8 = reshape(%4) {shape = [3, 2]} : f32[3,2]
  return %8, %7
})");
  testing::Plans plans;
  plans.kernels = passes::plan_kernels(f, {.fuse = false});
  plans.memory = passes::plan_memory(f, plans.kernels);
  CHECK(plans.memory.in_place.size() >= 3);
  check_against_interpreter(
      f, plans,
      {sample({DType::f32, Shape{2, 3}}, 1, false), sample({DType::f32, Shape{2, 3}}, 2, false)});
}

TEST_CASE("u8 sums wrap modulo 256 and u8 max/min/argmax compare unsigned", "[codegen][u8]") {
  ir::Function f("u8reduce");
  ir::Value* x = f.add_param({DType::u8, Shape{2, 3}});
  std::vector<ir::Value*> outs;
  for (Op op : {Op::reduce_sum, Op::reduce_max, Op::reduce_min, Op::reduce_mean}) {
    for (int64_t axis : {0, 1})
      outs.push_back(f.append(op, {x}, Attrs().set_ints("axes", {axis}))->output());
  }
  outs.push_back(f.append(Op::argmax, {x}, Attrs().set_int("axis", 1))->output());
  f.set_outputs(outs);
  std::vector<ir::HostTensor> args{ir::HostTensor::from_values<uint8_t>(
      Shape{2, 3}, std::vector<uint8_t>{200, 100, 7, 1, 255, 0})};
  check_against_interpreter(f, args, 0.0);
  ir::EvalResult r = ir::evaluate(f, args);
  auto ints = [](const ir::HostTensor& t) {
    std::vector<int64_t> v;
    for (int64_t i = 0; i < t.num_elements(); ++i)
      v.push_back(static_cast<int64_t>(t.element_as_double(i)));
    return v;
  };
  CHECK(ints(r.outputs[0]) == std::vector<int64_t>{201, 99, 7});  // 100 + 255 wraps to 99
  CHECK(ints(r.outputs[1]) == std::vector<int64_t>{51, 0});       // 307 and 256 wrap
  CHECK(ints(r.outputs[2]) == std::vector<int64_t>{200, 255, 7});
  CHECK(ints(r.outputs[3]) == std::vector<int64_t>{200, 255});
  CHECK(ints(r.outputs[4]) == std::vector<int64_t>{1, 100, 0});
  CHECK(ints(r.outputs[5]) == std::vector<int64_t>{7, 0});
  CHECK(ints(r.outputs[6]) == std::vector<int64_t>{100, 49, 3});  // wrapped sums / 2
  CHECK(ints(r.outputs[7]) == std::vector<int64_t>{17, 0});       // 51 / 3, 0 / 3
  CHECK(ints(r.outputs[8]) == std::vector<int64_t>{0, 1});        // 200 and 255 are largest
}
