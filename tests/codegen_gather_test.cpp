// Compiled gather against the interpreter, and its run-time error channel: an index out of range
// sets kiln_frame.status in the raw entry and becomes the interpreter's IndexError through
// kiln::function.
#include <string>

#include "codegen_test_util.h"
#include "kiln/frontend/core/function.h"
#include "kiln/frontend/core/log.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/passes/pipeline.h"

using namespace kiln;
using Catch::Contains;
using ir::Attrs;
using ir::DType;
using ir::Op;
using ir::Shape;
using testing::check_against_interpreter;
using testing::sample;

namespace {

// Indices of `type` with values in [0, dim): every position, in a scrambled order.
ir::HostTensor valid_indices(const ir::TensorType& type, int64_t dim) {
  ir::HostTensor t(type);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    const int64_t v = (i * 7 + 3) % dim;
    if (type.dtype == DType::i32)
      t.data<int32_t>()[i] = static_cast<int32_t>(v);
    else
      t.data<int64_t>()[i] = v;
  }
  return t;
}

// f(params, indices) = gather(params, indices, axis).
ir::Function gather_function(const ir::TensorType& params, const ir::TensorType& indices,
                             int64_t axis) {
  ir::Function f("gather");
  ir::Value* p = f.add_param(params);
  ir::Value* i = f.add_param(indices);
  f.set_outputs({f.append(Op::gather, {p, i}, Attrs().set_int("axis", axis))->output()});
  return f;
}

void check_gather(const ir::TensorType& params, const ir::TensorType& indices, int64_t axis) {
  INFO("params " << params.to_string() << ", indices " << indices.to_string() << ", axis " << axis);
  ir::Function f = gather_function(params, indices, axis);
  const int64_t dim = params.shape[ir::normalize_axis(axis, params.shape.rank())];
  check_against_interpreter(f, {sample(params, 7), valid_indices(indices, dim)}, 0.0);
}

}  // namespace

TEST_CASE("compiled gather matches the interpreter for every dtype, axis and index type",
          "[codegen][gather]") {
  for (DType dtype : ir::kAllDTypes) {
    for (DType index_dtype : {DType::i32, DType::i64}) {
      for (int64_t axis : {0, 1, 2, -1}) {
        for (const Shape& idx_shape : {Shape{}, Shape{4}, Shape{2, 3}}) {
          check_gather({dtype, Shape{5, 4, 3}}, {index_dtype, idx_shape}, axis);
        }
      }
    }
  }
  // Rank 1 params, odd sizes, size-1 dims.
  check_gather({DType::f32, Shape{7}}, {DType::i64, Shape{19}}, 0);
  check_gather({DType::f64, Shape{1, 9, 1}}, {DType::i32, Shape{3, 1, 2}}, 1);
  check_gather({DType::i32, Shape{3, 1}}, {DType::i32, Shape{5}}, 1);
}

TEST_CASE("compiled gather handles zero-size operands", "[codegen][gather]") {
  check_gather({DType::f32, Shape{5, 4}}, {DType::i32, Shape{0}}, 0);
  check_gather({DType::f32, Shape{5, 4}}, {DType::i64, Shape{2, 0}}, 1);
  check_gather({DType::f32, Shape{5, 0}}, {DType::i32, Shape{3}}, 0);
  check_gather({DType::i64, Shape{0, 3}}, {DType::i32, Shape{4}}, 1);
  check_gather({DType::boolean, Shape{0, 3}}, {DType::i32, Shape{0}}, 0);
}

TEST_CASE("a large compiled gather runs in parallel and matches", "[codegen][gather]") {
  check_gather({DType::f32, Shape{300, 64}}, {DType::i32, Shape{40, 50}}, 0);
  check_gather({DType::f64, Shape{64, 300}}, {DType::i64, Shape{2000}}, 1);
}

TEST_CASE("compiled gather with fused producers and consumers, after the pipeline",
          "[codegen][gather]") {
  // exp(gather(x * 2, i, 1)) + table[i], with the kernel and memory plans of run_pipeline.
  ir::Function f("embed");
  ir::Value* x = f.add_param({DType::f32, Shape{3, 10}});
  ir::Value* i = f.add_param({DType::i64, Shape{4}});
  ir::HostTensor table_values = sample({DType::f32, Shape{10}}, 3, false);
  ir::Value* table =
      f.append(Op::constant, {}, Attrs().set_tensor("value", table_values))->output();
  ir::Value* two =
      f.append(Op::constant, {}, Attrs().set_tensor("value", ir::HostTensor::scalar(2.f)))
          ->output();
  ir::Value* scaled = f.append(Op::mul, {x, two})->output();
  ir::Value* picked = f.append(Op::gather, {scaled, i}, Attrs().set_int("axis", 1))->output();
  ir::Value* bias = f.append(Op::gather, {table, i}, Attrs().set_int("axis", 0))->output();
  ir::Value* e = f.append(Op::exp, {picked})->output();
  f.set_outputs({f.append(Op::add, {e, bias})->output(), picked});
  std::vector<ir::HostTensor> args{
      sample(x->type(), 11, false),
      ir::HostTensor::from_values<int64_t>(Shape{4}, std::vector<int64_t>{9, 0, 4, 9})};
  ir::EvalResult want = ir::evaluate(f, args);

  passes::PipelineResult planned = passes::run_pipeline(std::move(f));
  auto module = codegen::compile_jit(planned.function, planned.kernels, planned.memory);
  std::vector<ir::HostTensor> got = testing::run_compiled(*module, planned.function, args);
  REQUIRE(got.size() == 2);
  testing::check_same(got[0], want.outputs[0], 4e-6);
  testing::check_same(got[1], want.outputs[1], 0.0);
}

TEST_CASE("a bad index sets the frame's status words and reads nothing out of bounds",
          "[codegen][gather]") {
  ir::Function f = gather_function({DType::f32, Shape{2, 4}}, {DType::i32, Shape{2, 3}}, 1);
  testing::Plans plans = testing::simple_plans(f);
  auto module = codegen::compile_jit(f, plans.kernels, plans.memory);
  ir::HostTensor params = sample({DType::f32, Shape{2, 4}}, 5, false);
  auto indices = [](std::vector<int32_t> v) {
    return ir::HostTensor::from_values<int32_t>(Shape{2, 3}, v);
  };
  std::array<int64_t, 4> status{};

  testing::run_compiled(*module, f, {params, indices({0, 1, 2, 3, 3, 0})}, &status);
  CHECK(status == std::array<int64_t, 4>{0, 0, 0, 0});

  // The first bad index in row-major order is reported: 4 at position 3, not -1 at 4.
  std::vector<ir::HostTensor> got =
      testing::run_compiled(*module, f, {params, indices({2, 1, 0, 4, -1, 3})}, &status);
  CHECK(status == std::array<int64_t, 4>{1, 4, 3, 4});  // kernel 0, index 4, position 3, dim 4
  // The bad indices read element 0 instead; the good ones are computed as usual.
  const float* p = params.data<float>();
  const float* out = got[0].data<float>();
  CHECK(out[0] == p[2]);
  CHECK(out[3] == p[0]);
  CHECK(out[4] == p[0]);
  CHECK(out[5] == p[3]);
  CHECK(out[6 + 3] == p[4 + 0]);

  testing::run_compiled(*module, f, {params, indices({0, 0, 0, 0, 0, -2147483647 - 1})}, &status);
  CHECK(status == std::array<int64_t, 4>{1, -2147483648LL, 5, 4});

  // A null status pointer: nothing is reported and nothing breaks.
  ir::HostTensor out_buffer(ir::TensorType{DType::f32, Shape{2, 2, 3}});
  ir::HostTensor bad = indices({9, 9, 9, -9, -9, -9});
  void* ins[] = {params.raw(), bad.raw()};
  void* outs[] = {out_buffer.raw()};
  ir::HostTensor workspace(DType::f64, Shape{module->workspace_bytes() / 8 + 8});
  kiln_frame frame{ins, outs, workspace.raw(), nullptr};
  testing::call_entry(*module, frame);
  CHECK(out_buffer.data<float>()[0] == p[0]);
}

TEST_CASE("the first failing kernel wins the status words", "[codegen][gather]") {
  ir::Function f("two");
  ir::Value* p = f.add_param({DType::i64, Shape{3}});
  ir::Value* a = f.add_param({DType::i64, Shape{2}});
  ir::Value* b = f.add_param({DType::i32, Shape{2}});
  ir::Value* first = f.append(Op::gather, {p, a}, Attrs().set_int("axis", 0))->output();
  ir::Value* second = f.append(Op::gather, {p, b}, Attrs().set_int("axis", 0))->output();
  f.set_outputs({first, second});
  testing::Plans plans = testing::simple_plans(f);
  auto module = codegen::compile_jit(f, plans.kernels, plans.memory);
  ir::HostTensor params =
      ir::HostTensor::from_values<int64_t>(Shape{3}, std::vector<int64_t>{5, 6, 7});
  auto i64 = [](int64_t x, int64_t y) {
    return ir::HostTensor::from_values<int64_t>(Shape{2}, std::vector<int64_t>{x, y});
  };
  auto i32 = [](int32_t x, int32_t y) {
    return ir::HostTensor::from_values<int32_t>(Shape{2}, std::vector<int32_t>{x, y});
  };
  std::array<int64_t, 4> status{};
  testing::run_compiled(*module, f, {params, i64(0, 3), i32(-5, 0)}, &status);
  CHECK(status == std::array<int64_t, 4>{1, 3, 1, 3});
  testing::run_compiled(*module, f, {params, i64(0, 2), i32(1, -5)}, &status);
  CHECK(status == std::array<int64_t, 4>{2, -5, 1, 3});
  testing::run_compiled(*module, f, {params, i64(int64_t{1} << 40, 2), i32(1, 2)}, &status);
  CHECK(status == std::array<int64_t, 4>{1, int64_t{1} << 40, 0, 3});
}

TEST_CASE("kiln::function raises the interpreter's IndexError for a bad index",
          "[codegen][gather][function]") {
  auto pick = kiln::function(
      [](const Tensor& params, const Tensor& indices) {
        return gather(params, indices, 1) * 2.f;  // the line the error names
      },
      "pick");
  const int line = __LINE__ - 3;
  Tensor params = constant({{1.f, 2.f, 3.f, 4.f}, {5.f, 6.f, 7.f, 8.f}});
  Tensor y = pick(params, constant({3, 0, 1}));
  CHECK(y.to_vector<float>() == std::vector<float>{8, 2, 4, 16, 10, 12});
  CHECK_THAT(pick.compiled_ir(params, constant({3, 0, 1})), !Contains("runs in the interpreter"));

  const std::string where = "codegen_gather_test.cpp:" + std::to_string(line);
  CHECK_THROWS_AS(pick(params, constant({0, 4, 1})), IndexError);
  CHECK_THROWS_WITH(pick(params, constant({0, 4, 1})),
                    Contains("gather: index 4 (element 1 of indices) is out of range for axis 1 "
                             "of size 4 (valid: 0 to 3)") &&
                        Contains(where));
  CHECK_THROWS_WITH(pick(params, constant({0, 1, -1})),
                    Contains("gather: index -1 (element 2 of indices) is out of range") &&
                        Contains("(valid: 0 to 3)") && Contains(where));
  CHECK(pick.trace_count() == 1);  // the errors came from the compiled code, not a retrace

  // Word for word what the interpreter says for the same graph and arguments.
  Tensor bad = constant({2, 7, -3});
  std::string compiled, interpreted;
  try {
    pick(params, bad);
  } catch (const IndexError& e) {
    compiled = e.what();
  }
  try {
    ir::evaluate(pick.graph(params, bad), std::vector<ir::HostTensor>{params.host(), bad.host()});
  } catch (const IndexError& e) {
    interpreted = e.what();
  }
  CHECK_FALSE(compiled.empty());
  CHECK(compiled == interpreted);
}

TEST_CASE("kiln::function: gather along an empty axis has no valid index",
          "[codegen][gather][function]") {
  auto previous = set_log_sink([](std::string_view) {});  // the retrace notice
  auto pick = kiln::function(
      [](const Tensor& params, const Tensor& indices) { return gather(params, indices, 1); });
  Tensor empty(ir::HostTensor(ir::TensorType{DType::f64, Shape{2, 0}}));
  CHECK_THROWS_WITH(pick(empty, constant<int64_t>({0})),
                    Contains("index 0 (element 0 of indices) is out of range for axis 1 of size "
                             "0 (no index is valid)"));
  CHECK(pick(empty, Tensor(ir::HostTensor(ir::TensorType{DType::i64, Shape{0}})))
            .host()
            .num_elements() == 0);
  set_log_sink(previous);
}
