// GPU codegen (codegen/gpu.h) without a GPU: the PTX of every op of the table is accepted by
// ptxas for sm_80 and sm_90, and the same kernels run on the CPU through the host shim (each
// (block, thread) of the launch grid in turn) and match the interpreter, for the op suite and for
// random programs. ptxas comes from the CUDA toolkit found at build time (KILN_PTXAS); without
// it those checks WARN and stop, and nothing else is skipped.
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <limits>
#include <map>

#include <fmt/format.h>
#include <set>

#include "codegen_test_util.h"
#include "kiln/codegen/compiler.h"
#include "kiln/codegen/gpu.h"
#include "kiln/frontend/process.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/cuda/launch_plan.h"
#include "mock_gpu_test_util.h"
#include "ptxas_test_util.h"
#include "random_program.h"

using namespace kiln;
using Catch::Contains;
using ir::Attrs;
using ir::DType;
using ir::Op;
using ir::Shape;
using testing::ptxas_errors;
using testing::ptxas_path;
using testing::sample;
using testing::table_ops;

namespace {

// Ops no case of this file lowers for the GPU, with the reason: a test below fails for an op of
// the table that no case lowers unless it is listed here. (matmul lowers when it is an integer or
// a small matmul; f32/f64 GEMMs are unsupported launches, checked by their own test case.)
const std::map<Op, std::string> kNotLowered = {
    {Op::constant, "never a kernel: constants are embedded in the module"},
    {Op::scan, "a loop of its body's launches: gpu_scan_test (it needs the pipeline's plans)"},
};

struct Case {
  std::string name;
  ir::Function function;
  std::vector<ir::HostTensor> args;
  testing::Plans plans;
  double tol = 4e-6;  // codegen_elementwise_test's tolerance for floats; integers are exact
};

// A case with one kernel per node (or the given plans).
Case make_case(ir::Function f, std::vector<ir::HostTensor> args, double tol = 4e-6) {
  testing::Plans plans = testing::simple_plans(f);
  std::string name = f.name();
  return Case{std::move(name), std::move(f), std::move(args), std::move(plans), tol};
}

std::vector<Attrs> attr_variants(Op op) {
  if (op == Op::elu) return {Attrs(), Attrs().set_float("alpha", 0.7)};
  if (op == Op::gelu) return {Attrs(), Attrs().set_bool("approximate", true)};
  return {Attrs()};
}

void elementwise_cases(std::vector<Case>& cases) {
  for (DType dtype : ir::kAllDTypes) {
    ir::Function f(fmt::format("unary_{}", ir::dtype_name(dtype)));
    std::vector<ir::HostTensor> args;
    std::vector<ir::Value*> outs;
    uint32_t seed = 1;
    for (const Shape& shape : {Shape{37}, Shape{3, 17}}) {
      ir::Value* x = f.add_param({dtype, shape});
      args.push_back(sample({dtype, shape}, seed++));
      for (Op op : table_ops(1, dtype)) {
        for (const Attrs& attrs : attr_variants(op))
          outs.push_back(f.append(op, {x}, attrs)->output());
      }
    }
    f.set_outputs(outs);
    cases.push_back(make_case(std::move(f), std::move(args)));
  }
  for (DType dtype : ir::kAllDTypes) {
    ir::Function f(fmt::format("binary_{}", ir::dtype_name(dtype)));
    std::vector<ir::HostTensor> args;
    std::vector<ir::Value*> outs;
    uint32_t seed = 100;
    const std::pair<Shape, Shape> pairs[] = {
        {Shape{5, 17}, Shape{17}}, {Shape{4, 1, 3}, Shape{1, 5, 1}}, {Shape{}, Shape{2, 3}}};
    for (const auto& [sa, sb] : pairs) {
      ir::Value* a = f.add_param({dtype, sa});
      ir::Value* b = f.add_param({dtype, sb});
      args.push_back(sample({dtype, sa}, seed++));
      args.push_back(sample({dtype, sb}, seed++));
      for (Op op : table_ops(2, dtype))
        outs.push_back(f.append(op, {a, b})->output());
    }
    f.set_outputs(outs);
    cases.push_back(make_case(std::move(f), std::move(args)));
  }
  // select and every cast.
  ir::Function f("select_cast");
  const Shape shape{3, 19};
  ir::Value* q = f.add_param({DType::boolean, Shape{19}});
  std::vector<ir::HostTensor> args{sample({DType::boolean, Shape{19}}, 2)};
  std::vector<ir::Value*> outs;
  uint32_t seed = 10;
  for (DType from : ir::kAllDTypes) {
    ir::Value* x = f.add_param({from, shape});
    args.push_back(sample({from, shape}, seed++));
    ir::Value* y = f.add_param({from, Shape{3, 1}});
    args.push_back(sample({from, Shape{3, 1}}, seed++));
    outs.push_back(f.append(Op::select, {q, x, y})->output());
    for (DType to : ir::kAllDTypes)
      outs.push_back(f.append(Op::cast, {x}, Attrs().set_dtype("dtype", to))->output());
  }
  f.set_outputs(outs);
  cases.push_back(make_case(std::move(f), std::move(args)));
}

void creation_cases(std::vector<Case>& cases) {
  ir::Function f("creation");
  std::vector<ir::Value*> outs;
  for (DType dtype : ir::kAllDTypes) {
    Attrs fill;
    fill.set_ints("shape", {3, 5}).set_dtype("dtype", dtype);
    if (ir::is_floating(dtype))
      fill.set_float("value", 2.5);
    else
      fill.set_int("value", dtype == DType::boolean ? 1 : 7);
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
                              .set_int("start", 10)
                              .set_int("limit", -20)
                              .set_int("delta", -3)
                              .set_dtype("dtype", DType::i32))
                     ->output());
  ir::Value* indices = f.add_param({DType::i32, Shape{2, 3}});
  outs.push_back(f.append(Op::one_hot, {indices},
                          Attrs()
                              .set_int("depth", 4)
                              .set_float("on_value", 5.0)
                              .set_float("off_value", -1.0)
                              .set_int("axis", 1))
                     ->output());
  ir::Value* step = f.add_param({DType::i64, Shape{}});
  outs.push_back(f.append(Op::random_uniform_at, {step},
                          Attrs()
                              .set_ints("shape", {5, 17})
                              .set_dtype("dtype", DType::f32)
                              .set_float("minval", -1.0)
                              .set_float("maxval", 2.0)
                              .set_int("seed", 99))
                     ->output());
  f.set_outputs(outs);
  std::vector<ir::HostTensor> args{
      ir::HostTensor::from_values<int32_t>(Shape{2, 3}, std::vector<int32_t>{0, 3, -1, 4, 2, 1}),
      ir::HostTensor::scalar<int64_t>(int64_t{5000000000})};
  cases.push_back(make_case(std::move(f), std::move(args), 0.0));
}

void reduction_cases(std::vector<Case>& cases) {
  const Op ops[] = {Op::reduce_sum, Op::reduce_mean, Op::reduce_max, Op::reduce_min,
                    Op::reduce_prod};
  const std::vector<std::vector<int64_t>> axes_list{{}, {0}, {-1}, {0, 2}};
  for (DType dtype : {DType::f32, DType::f64, DType::i32, DType::u8}) {
    ir::Function f(fmt::format("reduce_{}", ir::dtype_name(dtype)));
    ir::Value* x = f.add_param({dtype, Shape{3, 5, 19}});
    std::vector<ir::Value*> outs;
    for (Op op : ops) {
      for (const auto& axes : axes_list) {
        outs.push_back(
            f.append(op, {x}, Attrs().set_ints("axes", axes).set_bool("keepdims", axes.size() == 1))
                ->output());
      }
    }
    for (Op op : {Op::argmax, Op::argmin}) {
      for (int64_t axis : {0, -1}) {
        outs.push_back(
            f.append(op, {x}, Attrs().set_int("axis", axis).set_dtype("dtype", DType::i32))
                ->output());
      }
    }
    f.set_outputs(outs);
    cases.push_back(make_case(std::move(f), {sample({dtype, Shape{3, 5, 19}}, 8, true)}));
  }
  // A reduction with fused producers, and softmax / log_softmax along both kinds of axis.
  ir::Function g("sumsq");
  ir::Value* x = g.add_param({DType::f32, Shape{6, 50}});
  ir::Value* y = g.add_param({DType::f32, Shape{50}});
  ir::Value* sq = g.append(Op::square, {g.append(Op::sub, {x, y})->output()})->output();
  g.set_outputs({g.append(Op::reduce_sum, {sq}, Attrs().set_ints("axes", {1}))->output()});
  Case fused{
      "sumsq",
      std::move(g),
      {sample({DType::f32, Shape{6, 50}}, 1, false), sample({DType::f32, Shape{50}}, 2, false)},
      {}};
  fused.plans = testing::fused_plans(fused.function, passes::KernelKind::reduction);
  cases.push_back(std::move(fused));
}

void movement_cases(std::vector<Case>& cases) {
  for (DType dtype : {DType::f32, DType::i64, DType::boolean, DType::u8}) {
    ir::Function f(fmt::format("move_{}", ir::dtype_name(dtype)));
    ir::Value* x = f.add_param({dtype, Shape{3, 4, 5}});
    ir::Value* y = f.add_param({dtype, Shape{3, 2, 5}});
    ir::Value* one = f.add_param({dtype, Shape{1, 4, 1}});
    std::vector<ir::Value*> outs{
        f.append(Op::reshape, {x}, Attrs().set_ints("shape", {6, -1}))->output(),
        f.append(Op::transpose, {x}, Attrs().set_ints("perm", {2, 0, 1}))->output(),
        f.append(Op::squeeze, {one}, Attrs().set_ints("axes", {0, 2}))->output(),
        f.append(Op::expand_dims, {x}, Attrs().set_int("axis", -1))->output(),
        f.append(Op::broadcast_to, {one}, Attrs().set_ints("shape", {2, 3, 4, 7}))->output(),
        f.append(Op::concat, {x, y, x}, Attrs().set_int("axis", 1))->output(),
        f.append(Op::slice, {x},
                 Attrs()
                     .set_ints("begin", {2, 0, 4})
                     .set_ints("end", {-1, 4, 0})
                     .set_ints("strides", {-1, 2, -2}))
            ->output(),
        f.append(Op::pad, {x}, Attrs().set_ints("paddings", {1, 0, 0, 2, 3, 1}).set_int("value", 1))
            ->output(),
        f.append(Op::tile, {y}, Attrs().set_ints("multiples", {2, 1, 3}))->output()};
    ir::Node* split =
        f.append(Op::split, {x}, Attrs().set_int("axis", 1).set_ints("sizes", {1, 0, 3}));
    for (size_t r = 0; r < split->num_outputs(); ++r)
      outs.push_back(split->output(r));
    f.set_outputs(outs);
    cases.push_back(
        make_case(std::move(f),
                  {sample({dtype, Shape{3, 4, 5}}, 1), sample({dtype, Shape{3, 2, 5}}, 2),
                   sample({dtype, Shape{1, 4, 1}}, 3)},
                  0.0));
  }
  // gather (whose indices an index-check kernel checks first) and check_index.
  ir::Function g("gather");
  ir::Value* p = g.add_param({DType::f32, Shape{5, 4, 3}});
  ir::Value* i = g.add_param({DType::i32, Shape{2, 7}});
  ir::Value* j = g.add_param({DType::i64, Shape{9}});
  g.set_outputs({g.append(Op::gather, {p, i}, Attrs().set_int("axis", 1))->output(),
                 g.append(Op::gather, {p, j}, Attrs().set_int("axis", 0))->output(),
                 g.append(Op::check_index, {j}, Attrs().set_int("limit", 5))->output()});
  cases.push_back(
      make_case(std::move(g),
                {sample({DType::f32, Shape{5, 4, 3}}, 4),
                 ir::HostTensor::from_values<int32_t>(
                     Shape{2, 7}, std::vector<int32_t>{0, 1, 2, 3, 3, 2, 1, 0, 0, 0, 1, 1, 2, 3}),
                 ir::HostTensor::from_values<int64_t>(
                     Shape{9}, std::vector<int64_t>{4, 0, 1, 2, 3, 4, 4, 0, 2})},
                0.0));
}

void matmul_nn_cases(std::vector<Case>& cases) {
  // Matmuls the loop path computes: integers, and f32 below the GEMM's threshold.
  for (DType dtype : {DType::f32, DType::i32}) {
    ir::Function f(fmt::format("matmul_{}", ir::dtype_name(dtype)));
    ir::Value* a = f.add_param({dtype, Shape{5, 7}});
    ir::Value* b = f.add_param({dtype, Shape{3, 7}});
    ir::Value* c = f.add_param({dtype, Shape{2, 1, 4, 6}});
    ir::Value* d = f.add_param({dtype, Shape{3, 6, 5}});
    f.set_outputs({f.append(Op::matmul, {a, b}, Attrs().set_bool("transpose_b", true))->output(),
                   f.append(Op::matmul, {c, d})->output()});
    cases.push_back(make_case(
        std::move(f),
        {sample({dtype, Shape{5, 7}}, 1, false), sample({dtype, Shape{3, 7}}, 2, false),
         sample({dtype, Shape{2, 1, 4, 6}}, 3, false), sample({dtype, Shape{3, 6, 5}}, 4, false)}));
  }
  for (DType dtype : {DType::f32, DType::f64}) {
    ir::Function f(fmt::format("nn_{}", ir::dtype_name(dtype)));
    ir::Value* x = f.add_param({dtype, Shape{2, 7, 6, 3}});
    ir::Value* k = f.add_param({dtype, Shape{3, 2, 3, 4}});
    std::vector<ir::Value*> outs;
    for (std::string padding : {"same", "valid"}) {
      const Attrs window = Attrs()
                               .set_string("padding", padding)
                               .set_ints("strides", {2, 1})
                               .set_ints("dilations", {1, 2});
      outs.push_back(f.append(Op::conv2d, {x, k}, window)->output());
      // The filter gradient, the convolution's result standing in for dy.
      outs.push_back(f.append(Op::conv2d_filter_grad, {x, outs.back()},
                              Attrs(window).set_ints("ksize", {3, 2}))
                         ->output());
      for (Op op : {Op::max_pool2d, Op::avg_pool2d}) {
        outs.push_back(f.append(op, {x},
                                Attrs()
                                    .set_string("padding", padding)
                                    .set_ints("ksize", {3, 2})
                                    .set_ints("strides", {2, 2}))
                           ->output());
      }
      // max_pool2d's gradient, the pool's result standing in for dy: small windows (straight-line
      // code) and large ones (loops)
      for (auto [ksize, strides] :
           {std::pair<std::vector<int64_t>, std::vector<int64_t>>{{3, 3}, {2, 1}},
            {{5, 4}, {1, 1}}}) {
        const Attrs pool = Attrs()
                               .set_string("padding", padding)
                               .set_ints("ksize", ksize)
                               .set_ints("strides", strides);
        ir::Value* y = f.append(Op::max_pool2d, {x}, pool)->output();
        outs.push_back(f.append(Op::max_pool2d_grad, {x, y, y}, pool)->output());
      }
    }
    for (int64_t axis : {-1, 1}) {
      outs.push_back(f.append(Op::softmax, {x}, Attrs().set_int("axis", axis))->output());
      outs.push_back(f.append(Op::log_softmax, {x}, Attrs().set_int("axis", axis))->output());
    }
    // The image ops (the elemental emitter's, as on the CPU): a resize each way and a rotation
    // under each fill mode (m holds one matrix per image; its coordinates avoid rounding ties).
    ir::Value* m = f.add_param({dtype, Shape{2, 8}});
    for (const char* method : {"bilinear", "nearest"}) {
      outs.push_back(f.append(Op::image_resize, {x},
                              Attrs().set_ints("size", {11, 4}).set_string("method", method))
                         ->output());
      for (const char* fill : {"reflect", "wrap", "constant", "nearest"}) {
        outs.push_back(f.append(Op::image_transform, {x, m},
                                Attrs()
                                    .set_string("interpolation", method)
                                    .set_string("fill_mode", fill)
                                    .set_float("fill_value", 0.5))
                           ->output());
      }
    }
    f.set_outputs(outs);
    const std::vector<double> rotations{0.8, -0.6, 1.13, 0.6, 0.8, -0.71, 0,    0,  // image 0
                                        1.2, 0.1,  -7.3, 0,   0.9, 8.9,   0.01, 0};
    ir::HostTensor mats =
        dtype == DType::f64
            ? ir::HostTensor::from_values<double>(Shape{2, 8}, rotations)
            : ir::HostTensor::from_values<float>(
                  Shape{2, 8}, std::vector<float>(rotations.begin(), rotations.end()));
    cases.push_back(make_case(std::move(f), {sample({dtype, Shape{2, 7, 6, 3}}, 5, false),
                                             sample({dtype, Shape{3, 2, 3, 4}}, 6, false), mats}));
  }
}

// Fused loops with broadcast operands and a constant array (read from the module's global), and
// results that are a parameter, a constant and one value twice (copied by kernels of their own).
void fused_cases(std::vector<Case>& cases) {
  ir::Function f = ir::parse(
      R"(func @fused(%x: f32[7,45], %b: f32[45]) -> (f32[7,45], f32[7,45], f32[45], f32[3], f32[7,45]) {
  %c = constant() {value = dense<f32[3]: 1.5, -2.0, 0.25>} : f32[3]
  %0 = mul(%x, %x) : f32[7,45]
  %1 = add(%0, %b) : f32[7,45]
  %2 = tanh(%1) : f32[7,45]
  %3 = relu(%2) : f32[7,45]
  return %1, %3, %b, %c, %1
})");
  std::vector<ir::HostTensor> args{sample({DType::f32, Shape{7, 45}}, 3),
                                   sample({DType::f32, Shape{45}}, 4)};
  Case fused{"fused", std::move(f), args, {}};
  fused.plans = testing::fused_plans(fused.function, passes::KernelKind::loop);
  cases.push_back(std::move(fused));
  ir::Function g = ir::parse(R"(func @consts(%x: f32[2,3]) -> f32[2,3] {
  %c = constant() {value = dense<f32[2,3]: 1.0, 2.0, 3.0, 4.0, 5.0, 6.0>} : f32[2,3]
  %0 = mul(%x, %c) : f32[2,3]
  return %0
})");
  cases.push_back(make_case(std::move(g), {sample({DType::f32, Shape{2, 3}}, 5)}));
}

// The op suite, in groups (each group's checks are test cases of their own, which ctest runs in
// parallel): every op of the table is in some case, as the coverage test checks.
const std::vector<std::string> kGroups = {"elementwise",   "creation",      "reductions",
                                          "data movement", "matmul and nn", "fused"};

const std::vector<Case>& op_suite(const std::string& group) {
  static const std::map<std::string, void (*)(std::vector<Case>&)> builders = {
      {"elementwise", elementwise_cases}, {"creation", creation_cases},
      {"reductions", reduction_cases},    {"data movement", movement_cases},
      {"matmul and nn", matmul_nn_cases}, {"fused", fused_cases}};
  static std::map<std::string, std::vector<Case>> suites;
  auto it = suites.find(group);
  if (it == suites.end()) {
    std::vector<Case> cases;
    builders.at(group)(cases);
    it = suites.emplace(group, std::move(cases)).first;
  }
  return it->second;
}

codegen::KernelJit& jit() {
  static codegen::KernelJit instance;
  return instance;
}

// Runs the host shim's launches on `args` over `grid` (see run_frame).
std::vector<ir::HostTensor> run_shim(const codegen::GpuHostModule& module, const ir::Function& f,
                                     const std::vector<ir::HostTensor>& args,
                                     const codegen::GpuGrid& grid,
                                     std::array<int64_t, 4>* status = nullptr) {
  return testing::run_frame(
      f, args, module.workspace_bytes(), [&](const kiln_frame& frame) { module.run(frame, grid); },
      status);
}

std::vector<ir::HostTensor> expected(const ir::Function& f,
                                     const std::vector<ir::HostTensor>& args) {
  ir::EvalResult want = ir::evaluate(f, args);
  std::vector<ir::HostTensor> all = want.outputs;
  all.insert(all.end(), want.updates.begin(), want.updates.end());
  return all;
}

}  // namespace

TEST_CASE("every op of the table is lowered for the GPU by some case, or listed", "[gpu]") {
  // Which kernels lowered, by the launch plans (the checks below compile the same cases to PTX,
  // assemble them and run them).
  std::set<Op> lowered;
  for (const std::string& group : kGroups) {
    for (const Case& c : op_suite(group)) {
      for (const codegen::GpuLaunch& launch :
           codegen::gpu_launch_plan(c.function, c.plans.kernels, c.plans.memory)) {
        if (!launch.supported || launch.plan_kernel < 0) continue;
        for (const ir::Node* node : c.plans.kernels.kernels[launch.plan_kernel].nodes)
          lowered.insert(node->op());
      }
    }
  }
  for (int i = 0; i < ir::kNumOps; ++i) {
    const Op op = static_cast<Op>(i);
    INFO(ir::op_name(op));
    CHECK((lowered.count(op) != 0) != (kNotLowered.count(op) != 0));
  }
}

namespace {

// Runs `module`'s launches as the runtime does on a GPU, on the mock driver: its launch plan
// converted by detail::to_launch_plan, its kernels registered with the driver under their
// symbols, a DeviceExecutable over device buffers holding `args`; returns the results, then the
// updates.
std::vector<ir::HostTensor> run_on_mock(const std::shared_ptr<const codegen::GpuHostModule>& module,
                                        const ir::Function& f,
                                        const std::vector<ir::HostTensor>& args,
                                        testing::MockGpu& mock) {
  namespace cu = runtime::cuda;
  codegen::GpuModule gpu;
  gpu.launches = module->launches();
  gpu.workspace_bytes = module->workspace_bytes();
  mock.driver.register_image(module.get(), testing::host_shim_kernels(module));
  cu::ContextPtr context = cu::Context::retain(0);
  std::shared_ptr<const cu::Module> loaded;
  cu::LaunchPlan plan = detail::to_launch_plan(gpu);
  if (plan.uses_kernels()) loaded = std::make_shared<const cu::Module>(context, module.get());
  std::vector<ir::TensorType> out_types;
  for (const ir::Value* v : f.outputs())
    out_types.push_back(v->type());
  for (const auto& u : f.updates())
    out_types.push_back(u.value->type());
  cu::DeviceExecutable exe(context, loaded, std::move(plan), args.size(), out_types.size());
  std::vector<cu::DeviceBuffer> buffers;
  std::vector<cu::CUdeviceptr> inputs, outputs;
  for (const ir::HostTensor& a : args) {
    buffers.emplace_back(context, a.nbytes());
    if (a.nbytes() != 0) buffers.back().copy_from_host(a.raw(), a.nbytes());
    inputs.push_back(buffers.back().get());
  }
  for (const ir::TensorType& t : out_types) {
    buffers.emplace_back(context, t.nbytes());
    outputs.push_back(buffers.back().get());
  }
  CHECK_FALSE(exe.run(inputs, outputs).failed());
  std::vector<ir::HostTensor> results;
  for (size_t i = 0; i < out_types.size(); ++i) {
    results.push_back(ir::HostTensor::uninitialized(out_types[i]));
    if (results.back().nbytes() != 0)
      buffers[args.size() + i].copy_to_host(results.back().raw(), results.back().nbytes());
  }
  return results;
}

// The group's PTX for sm_80 and sm_90, each assembled by ptxas for its architecture.
void check_ptxas(const std::string& group) {
  const std::string ptxas = ptxas_path();
  if (ptxas.empty()) {
    WARN("no ptxas (no CUDA toolkit at build time, or an ASan build): PTX not assembled");
    return;
  }
  for (const Case& c : op_suite(group)) {
    INFO("case " << c.name);
    codegen::GpuModule module = codegen::compile_gpu(c.function, c.plans.kernels, c.plans.memory,
                                                     {.gpu_arch = "sm_80,sm_90"});
    REQUIRE(module.ptx.size() == 2);
    CHECK(module.fully_supported());
    for (const auto& [arch, text] : module.ptx) {
      INFO(arch);
      CHECK_THAT(text, Contains(".target " + arch));
      CHECK(ptxas_errors(ptxas, text, arch) == "");
    }
    // Every launch's kernel is an entry of the PTX, and libdevice left no visible function.
    for (const codegen::GpuLaunch& launch : module.launches)
      CHECK_THAT(module.ptx[0].text, Contains(".entry " + launch.symbol + "("));
    CHECK_THAT(module.ptx[0].text, !Contains(".visible .func"));
  }
}

// The group through the host shim on the suggested grids, then on 3 blocks of 7 threads (fewer
// threads than items, so that they stride), against the interpreter.
void check_shim(const std::string& group) {
  testing::MockGpu mock;
  for (const Case& c : op_suite(group)) {
    INFO("case " << c.name);
    auto module = std::make_shared<const codegen::GpuHostModule>(c.function, c.plans.kernels,
                                                                 c.plans.memory, jit());
    std::vector<ir::HostTensor> want = expected(c.function, c.args);
    for (codegen::GpuGrid grid : {codegen::GpuGrid{}, codegen::GpuGrid{3, 7}}) {
      INFO("grid " << grid.blocks << " x " << grid.threads);
      std::vector<ir::HostTensor> got = run_shim(*module, c.function, c.args, grid);
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        INFO("result " << i);
        testing::check_same(got[i], want[i], c.tol);
      }
    }
    // And through the runtime's path on the mock driver: the launch plan as the frontend
    // converts it, a DeviceExecutable (kernels from the driver, GEMMs on the mock cuBLASLt),
    // device buffers.
    INFO("on the mock driver");
    std::vector<ir::HostTensor> got = run_on_mock(module, c.function, c.args, mock);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO("result " << i);
      testing::check_same(got[i], want[i], c.tol);
    }
  }
}

}  // namespace

TEST_CASE("ptxas assembles the elementwise ops' PTX", "[gpu][ptxas]") {
  check_ptxas("elementwise");
}
TEST_CASE("ptxas assembles the creation ops' PTX", "[gpu][ptxas]") {
  check_ptxas("creation");
}
TEST_CASE("ptxas assembles the reductions' PTX", "[gpu][ptxas]") {
  check_ptxas("reductions");
}
TEST_CASE("ptxas assembles the data-movement ops' PTX", "[gpu][ptxas]") {
  check_ptxas("data movement");
}
TEST_CASE("ptxas assembles matmul, conv2d, pools and softmax PTX", "[gpu][ptxas]") {
  check_ptxas("matmul and nn");
}
TEST_CASE("ptxas assembles fused kernels and result copies", "[gpu][ptxas]") {
  check_ptxas("fused");
}

// Each group through the host shim on two grids, then through the runtime on the mock driver.
TEST_CASE("host shim: elementwise ops equal the interpreter", "[gpu][shim]") {
  check_shim("elementwise");
}
TEST_CASE("host shim: creation ops equal the interpreter", "[gpu][shim]") {
  check_shim("creation");
}
TEST_CASE("host shim: reductions equal the interpreter", "[gpu][shim]") {
  check_shim("reductions");
}
TEST_CASE("host shim: data-movement ops equal the interpreter", "[gpu][shim]") {
  check_shim("data movement");
}
TEST_CASE("host shim: matmul, conv2d, pools and softmax equal the interpreter", "[gpu][shim]") {
  check_shim("matmul and nn");
}
TEST_CASE("host shim: fused kernels and result copies equal the interpreter", "[gpu][shim]") {
  check_shim("fused");
}

TEST_CASE("a bad gather index sets the status words as the CPU code does", "[gpu][shim]") {
  const Case* gather = nullptr;
  for (const Case& c : op_suite("data movement"))
    if (c.name == "gather") gather = &c;
  REQUIRE(gather != nullptr);
  std::vector<ir::HostTensor> args = gather->args;
  args[1].data<int32_t>()[5] = 4;  // axis 1 has 4 elements
  args[1].data<int32_t>()[8] = -1;
  codegen::GpuHostModule module(gather->function, gather->plans.kernels, gather->plans.memory,
                                jit());
  std::array<int64_t, 4> shim{}, cpu{};
  run_shim(module, gather->function, args, {2, 5}, &shim);
  auto compiled =
      codegen::compile_jit(gather->function, gather->plans.kernels, gather->plans.memory);
  testing::run_compiled(*compiled, gather->function, args, &cpu);
  CHECK(shim == cpu);
  CHECK(shim == std::array<int64_t, 4>{1, 4, 5, 4});
}

TEST_CASE("the host shim takes a launch's parameters as cuLaunchKernel does", "[gpu][shim]") {
  ir::Function f = ir::parse(R"(func @f(%x: i32[1000], %y: i32[1000]) -> i32[1000] {
  %0 = mul(%x, %y) : i32[1000]
  return %0
})");
  testing::Plans plans = testing::simple_plans(f);
  codegen::GpuHostModule module(f, plans.kernels, plans.memory, jit());
  REQUIRE(module.launches().size() == 1);
  std::vector<int32_t> x(1000), y(1000), out(1000, -1);
  for (int32_t i = 0; i < 1000; ++i) {
    x[static_cast<size_t>(i)] = i;
    y[static_cast<size_t>(i)] = 3 - i;
  }
  void* buffers[] = {x.data(), y.data(), out.data()};
  int64_t items = 990;  // the launch's own count is ignored: the last 10 stay untouched
  void* params[] = {&buffers[0], &buffers[1], &buffers[2], &items};
  module.launch_with_params(0, params, {4, 32});
  for (int32_t i = 0; i < 1000; ++i)
    CHECK(out[static_cast<size_t>(i)] == (i < 990 ? i * (3 - i) : -1));
}

namespace {

// `text` through the pass pipeline and GPU codegen: checks that the host shim (GEMMs by the shim's
// reference, the rest by the kernels) equals the interpreter on random arguments, and returns
// the module.
codegen::GpuModule check_gemm_function(const std::string& text, uint64_t seed) {
  ir::Function f = ir::parse(text);
  std::vector<ir::HostTensor> args;
  for (size_t i = 0; i < f.params().size(); ++i)
    args.push_back(testing::sample(f.param(i)->type(), static_cast<uint32_t>(seed + i), false));
  std::vector<ir::HostTensor> want = expected(f, args);
  passes::PipelineResult r = passes::run_pipeline(std::move(f));
  codegen::GpuHostModule shim(r.function, r.kernels, r.memory, jit());
  CHECK(testing::compare_results(run_shim(shim, r.function, args, {}), want, 1e-4, 1e-4) == "");
  return codegen::compile_gpu(r.function, r.kernels, r.memory, {.gpu_arch = "sm_90"});
}

}  // namespace

TEST_CASE("f32 GEMMs are cuBLASLt steps with the bias and ReLU in the epilogue", "[gpu]") {
  codegen::GpuModule module = check_gemm_function(
      R"(func @dense(%x: f32[32,64], %w: f32[64,16], %b: f32[16]) -> f32[32,16] {
  %0 = matmul(%x, %w) : f32[32,16]
  %1 = add(%0, %b) : f32[32,16]
  %2 = relu(%1) : f32[32,16]
  return %2
})",
      1);
  REQUIRE(module.launches.size() == 1);
  const codegen::GpuLaunch& gemm = module.launches[0];
  CHECK(gemm.supported);
  CHECK(module.fully_supported());
  CHECK(gemm.symbol.empty());
  REQUIRE(gemm.gemm);
  CHECK(gemm.gemm->epilogue == codegen::GpuGemm::Epilogue::bias_relu);
  CHECK(gemm.gemm->alignment == 16);
  CHECK(module.print_launch_plan() ==
        "gemm f32 D[32,16] = A[32,64] · B[64,16] + bias, relu (a=in0 b=in1 bias=in2 d=out0)  # "
        "kernel 0 (matmul: matmul, add, relu)\n");
}

TEST_CASE("a GEMM's epilogue beyond bias and ReLU runs in place after it", "[gpu]") {
  // The bias on the left, then a multiply and tanh that cuBLASLt cannot take.
  codegen::GpuModule module = check_gemm_function(
      R"(func @f(%x: f32[40,64], %w: f32[64,24], %b: f32[1,24], %s: f32[40,24]) -> f32[40,24] {
  %0 = matmul(%x, %w) : f32[40,24]
  %1 = add(%b, %0) : f32[40,24]
  %2 = mul(%1, %s) : f32[40,24]
  %3 = tanh(%2) : f32[40,24]
  return %3
})",
      2);
  REQUIRE(module.launches.size() == 2);
  REQUIRE(module.launches[0].gemm);
  CHECK(module.launches[0].gemm->epilogue == codegen::GpuGemm::Epilogue::bias);
  CHECK_THAT(module.launches[1].to_string(),
             Contains("(out0, in3) items") && Contains("kernel 0 (matmul: matmul, add, mul, tanh), "
                                                       "epilogue"));
  const std::string ptxas = ptxas_path();
  if (!ptxas.empty()) CHECK(ptxas_errors(ptxas, module.ptx[0].text, "sm_90") == "");
}

TEST_CASE("batched, broadcast and transposed GEMMs, f64, and K = 0 on the GPU path", "[gpu]") {
  // A batch of 3 against one shared matrix, transposed, then a ReLU.
  codegen::GpuModule batched = check_gemm_function(
      R"(func @f(%x: f32[3,40,64], %w: f32[24,64]) -> f32[3,40,24] {
  %0 = matmul(%x, %w) {transpose_b = true} : f32[3,40,24]
  %1 = relu(%0) : f32[3,40,24]
  return %1
})",
      3);
  REQUIRE(batched.launches.size() == 1);
  REQUIRE(batched.launches[0].gemm);
  const codegen::GpuGemm& g = *batched.launches[0].gemm;
  CHECK(g.batch_shape == std::vector<int64_t>{3});
  CHECK(g.a_batch_strides == std::vector<int64_t>{40 * 64});
  CHECK(g.b_batch_strides == std::vector<int64_t>{0});
  CHECK(g.transpose_b);
  CHECK(g.epilogue == codegen::GpuGemm::Epilogue::relu);
  // Batches broadcast both ways, f64, A transposed, the sum of two GEMMs.
  check_gemm_function(R"(func @g(%a: f64[2,1,48,40], %b: f64[1,3,48,32]) -> f64[2,3,40,32] {
  %0 = matmul(%a, %b) {transpose_a = true} : f64[2,3,40,32]
  %1 = matmul(%a, %b) {transpose_a = true} : f64[2,3,40,32]
  %2 = add(%0, %1) : f64[2,3,40,32]
  return %2
})",
                      4);
  // K = 0: D is zeros, and the bias and ReLU run in the loop kernel after it.
  codegen::GpuModule empty = check_gemm_function(
      R"(func @h(%x: f32[64,0], %w: f32[0,64], %b: f32[64]) -> f32[64,64] {
  %0 = matmul(%x, %w) : f32[64,64]
  %1 = add(%0, %b) : f32[64,64]
  %2 = relu(%1) : f32[64,64]
  return %2
})",
      5);
  REQUIRE(empty.launches.size() == 2);
  REQUIRE(empty.launches[0].gemm);
  CHECK(empty.launches[0].gemm->epilogue == codegen::GpuGemm::Epilogue::none);
  CHECK(!empty.launches[1].gemm);
}

TEST_CASE("the launch plan prints one line per launch with its frame buffers", "[gpu]") {
  ir::Function f = ir::parse(R"(func @f(%x: f32[1000], %y: f32[1000]) -> (f32[1000], f32[1000]) {
  %0 = mul(%x, %y) : f32[1000]
  %1 = relu(%0) : f32[1000]
  return %1, %x
})");
  passes::PipelineResult r = passes::run_pipeline(std::move(f));
  codegen::GpuModule module = codegen::compile_gpu(r.function, r.kernels, r.memory);
  CHECK(module.print_launch_plan() ==
        "kiln_k0_0<<<4, 256>>>(in0, in1, out0) items 1000  # kernel 0 (loop: mul, relu)\n"
        "kiln_copy1<<<4, 256>>>(out1, in0) items 1000  # copy to output 1\n");
  // A value between kernels lives in the workspace, at the memory plan's offset; a softmax of
  // rows of 50 is a launch with a warp per row.
  ir::Function h = ir::parse(R"(func @h(%x: f32[6,50]) -> f32[6,50] {
  %0 = mul(%x, %x) : f32[6,50]
  %1 = softmax(%0) {axis = -1} : f32[6,50]
  return %1
})");
  passes::PipelineResult t = passes::run_pipeline(std::move(h));
  REQUIRE(t.kernels.kernels.size() == 2);
  const int64_t offset = t.memory.slots.at(t.kernels.kernels[0].outputs[0]).offset;
  // (The plan alone needs no libdevice, which softmax's exp would.)
  CHECK(codegen::print_launch_plan(codegen::gpu_launch_plan(t.function, t.kernels, t.memory)) ==
        fmt::format("kiln_k0_0<<<2, 256>>>(in0, ws+{0}) items 300  # kernel 0 (loop: mul)\n"
                    "kiln_k1_0<<<1, 192>>>(ws+{0}, out0) items 6  # kernel 1 (op: softmax)\n",
                    offset));
  // Small loops get a block of whole warps, and a grid of 1.
  ir::Function g = ir::parse(R"(func @g(%x: f32[5]) -> f32[5] {
  %0 = neg(%x) : f32[5]
  return %0
})");
  passes::PipelineResult s = passes::run_pipeline(std::move(g));
  CHECK(codegen::compile_gpu(s.function, s.kernels, s.memory, {.gpu_arch = "sm_90"})
            .print_launch_plan() ==
        "kiln_k0_0<<<1, 32>>>(in0, out0) items 5  # kernel 0 (loop: neg)\n");
}

TEST_CASE("compile_gpu names a bad architecture and a math function without libdevice", "[gpu]") {
  ir::Function f = ir::parse(R"(func @f(%x: f32[8]) -> (f32[8], f32[8]) {
  %0 = tanh(%x) : f32[8]
  %1 = add(%x, %x) : f32[8]
  return %0, %1
})");
  testing::Plans plans = testing::simple_plans(f);
  CHECK_THROWS_WITH(codegen::compile_gpu(f, plans.kernels, plans.memory, {.gpu_arch = "sm_100"}),
                    Contains("unknown GPU architecture 'sm_100'") && Contains("sm_90"));
  CHECK_THROWS_WITH(codegen::compile_gpu(f, plans.kernels, plans.memory, {.gpu_arch = " , "}),
                    Contains("no GPU architecture"));
  codegen::GpuOptions none{.gpu_arch = "sm_80", .libdevice = ""};
  CHECK_THROWS_WITH(codegen::compile_gpu(f, plans.kernels, plans.memory, none),
                    Contains("kernel 0 (loop: tanh)") && Contains("tanhf") &&
                        Contains("libdevice") && Contains("none was given"));
  codegen::GpuOptions missing{.gpu_arch = "sm_80", .libdevice = "/nonexistent/libdevice.10.bc"};
  CHECK_THROWS_WITH(codegen::compile_gpu(f, plans.kernels, plans.memory, missing),
                    Contains("not at /nonexistent/libdevice.10.bc"));
  // Without math functions, no libdevice is needed.
  ir::Function g = ir::parse(R"(func @g(%x: f32[8]) -> f32[8] {
  %0 = add(%x, %x) : f32[8]
  return %0
})");
  testing::Plans gp = testing::simple_plans(g);
  CHECK(codegen::compile_gpu(g, gp.kernels, gp.memory, none).ptx.size() == 1);
}

TEST_CASE("random programs through the GPU path equal the interpreter", "[gpu][shim][random]") {
  const std::string ptxas = ptxas_path();
  int ran = 0, gemms = 0, assembled = 0;
  const auto start = std::chrono::steady_clock::now();
  testing::RandomProgramOptions options;
  options.updates = true;
  // 60 programs (about 5 s here): every one through the host shim on two grids, the first 8
  // through ptxas.
  testing::for_each_random_program(
      60,
      [&](const testing::RandomCase& c) {
        INFO(c.describe());
        passes::PipelineResult r = passes::run_pipeline(ir::parse(ir::print(c.function)));
        codegen::GpuHostModule module(r.function, r.kernels, r.memory, jit());
        if (std::any_of(module.launches().begin(), module.launches().end(),
                        [](const codegen::GpuLaunch& l) { return l.gemm.has_value(); }))
          ++gemms;  // a GEMM for cuBLASLt: the shim runs its reference GEMM
        std::vector<ir::HostTensor> want = expected(c.function, c.inputs);
        for (codegen::GpuGrid grid : {codegen::GpuGrid{}, codegen::GpuGrid{2, 33}}) {
          std::string diff = testing::compare_results(run_shim(module, r.function, c.inputs, grid),
                                                      want, 1e-4, 1e-4);
          CHECK(diff == "");
        }
        ++ran;
        // The first programs' PTX through ptxas too.
        if (!ptxas.empty() && assembled < 8) {
          codegen::GpuModule gpu =
              codegen::compile_gpu(r.function, r.kernels, r.memory, {.gpu_arch = "sm_90"});
          CHECK(ptxas_errors(ptxas, gpu.ptx[0].text, "sm_90") == "");
          ++assembled;
        }
      },
      options, 1);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN(ran << " random programs ran through the host shim (" << gemms << " had a GEMM), "
           << assembled << " assembled by ptxas, in " << seconds << " s");
  CHECK(ran == 60);
}

// Cooperative reductions and softmax (codegen/gpu_reduce.h): a warp or a block per row, a block
// per tile of columns. The host shim runs them block by block, each thread a fiber that switches
// at barriers and shuffles.
namespace {

// Every reduction and softmax through the cooperative kernels, with small blocks (so that the
// shim's fibers stay few): a block per row, or a warp per row.
const codegen::GpuOptions kBlockRows{
    .block_size = 64, .warp_reduce_elements = 0, .block_reduce_elements = 0};
const codegen::GpuOptions kWarpRows{
    .block_size = 64, .warp_reduce_elements = 0, .block_reduce_elements = int64_t{1} << 40};

// `f` (a kernel per node) through the host shim compiled with `options`, on each grid, against
// the interpreter.
void check_shim_with(const ir::Function& f, const std::vector<ir::HostTensor>& args,
                     const codegen::GpuOptions& options, const std::vector<codegen::GpuGrid>& grids,
                     double tol = 4e-6) {
  testing::Plans plans = testing::simple_plans(f);
  codegen::GpuHostModule module(f, plans.kernels, plans.memory, jit(), options);
  std::vector<ir::HostTensor> want = expected(f, args);
  for (const codegen::GpuGrid& grid : grids) {
    INFO("grid " << grid.blocks << " x " << grid.threads);
    std::vector<ir::HostTensor> got = run_shim(module, f, args, grid);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO("result " << i);
      testing::check_same(got[i], want[i], tol);
    }
  }
}

// The reduce_* `ops` over each axis set of `shape` (with keepdims on single axes), and
// argmax/argmin along each axis.
const std::vector<Op> kReduceOps = {Op::reduce_sum, Op::reduce_mean, Op::reduce_max, Op::reduce_min,
                                    Op::reduce_prod};

ir::Function all_reductions(DType dtype, const Shape& shape,
                            const std::vector<std::vector<int64_t>>& axes_list,
                            const std::vector<Op>& ops = kReduceOps) {
  ir::Function f(fmt::format("reduce_{}", ir::dtype_name(dtype)));
  ir::Value* x = f.add_param({dtype, shape});
  std::vector<ir::Value*> outs;
  for (Op op : ops) {
    for (const auto& axes : axes_list) {
      outs.push_back(
          f.append(op, {x}, Attrs().set_ints("axes", axes).set_bool("keepdims", axes.size() == 1))
              ->output());
    }
  }
  for (Op op : {Op::argmax, Op::argmin}) {
    for (int64_t axis = 0; axis < shape.rank(); ++axis) {
      if (shape[axis] == 0) continue;
      outs.push_back(f.append(op, {x}, Attrs().set_int("axis", axis).set_dtype("dtype", DType::i32))
                         ->output());
    }
  }
  f.set_outputs(outs);
  return f;
}

// Axis sets of a [3, 5, 19] operand: columns (the innermost axis kept) and rows of one or two
// axes; the block and warp tests take different ones.
const std::vector<std::vector<int64_t>> kBlockAxes = {{0}, {-1}, {0, 2}};
const std::vector<std::vector<int64_t>> kWarpAxes = {{1}, {1, 2}};

template <class T>
std::vector<T> values_of(const ir::HostTensor& t) {
  auto values = t.values<T>();
  return {values.begin(), values.end()};
}

}  // namespace

TEST_CASE("the GPU path picks a thread, a warp or a block per reduced row or column", "[gpu]") {
  auto plan = [](const std::string& text) {
    ir::Function f = ir::parse(text);
    testing::Plans plans = testing::simple_plans(f);
    return codegen::print_launch_plan(codegen::gpu_launch_plan(f, plans.kernels, plans.memory));
  };
  // Short rows: a thread per row, as before.
  CHECK(plan(R"(func @f(%x: f32[64,10]) -> f32[64] {
  %0 = reduce_sum(%x) {axes = [1]} : f32[64]
  return %0
})") == "kiln_k0_0<<<1, 64>>>(in0, out0) items 64  # kernel 0 (reduction: reduce_sum)\n");
  // Rows of 100: a warp per row, 8 rows a block.
  CHECK(plan(R"(func @f(%x: f32[64,100]) -> f32[64] {
  %0 = reduce_sum(%x) {axes = [1]} : f32[64]
  return %0
})") == "kiln_k0_0<<<8, 256>>>(in0, out0) items 64  # kernel 0 (reduction: reduce_sum)\n");
  // Rows of 3000: a block per row.
  CHECK(plan(R"(func @f(%x: f32[2,3000]) -> i64[2] {
  %0 = argmax(%x) {axis = 1} : i64[2]
  return %0
})") == "kiln_k0_0<<<2, 256>>>(in0, out0) items 2  # kernel 0 (reduction: argmax)\n");
  // Columns of 4096: a block per tile of 32 columns.
  CHECK(plan(R"(func @f(%x: f32[4096,40]) -> f32[40] {
  %0 = reduce_max(%x) {axes = [0]} : f32[40]
  return %0
})") == "kiln_k0_0<<<2, 256>>>(in0, out0) items 2  # kernel 0 (reduction: reduce_max)\n");
}

TEST_CASE("every reduction through a block per row equals the interpreter", "[gpu][shim]") {
  // Grids with fewer threads than elements, partial warps, and more threads than elements.
  const std::vector<codegen::GpuGrid> grids = {{}, {3, 7}, {2, 45}};
  // Every op in f32 and i32; the wider and narrower types' shuffles and shared memory with fewer.
  for (DType dtype : {DType::f32, DType::f64, DType::i32, DType::i64, DType::u8}) {
    INFO(ir::dtype_name(dtype));
    const Shape shape{3, 5, 19};
    const bool all = dtype == DType::f32 || dtype == DType::i32;
    const std::vector<Op> ops =
        all ? kReduceOps : std::vector<Op>{Op::reduce_sum, Op::reduce_max, Op::reduce_mean};
    // f64 sums fold in another order than the interpreter's: 1e-12 instead of 4e-14.
    check_shim_with(all_reductions(dtype, shape, all ? kBlockAxes : kWarpAxes, ops),
                    {sample({dtype, shape}, 8, true)}, kBlockRows, grids, 1e-4);
  }
}

TEST_CASE("every reduction through a warp per row equals the interpreter", "[gpu][shim]") {
  const std::vector<codegen::GpuGrid> grids = {{}, {2, 40}, {1, 7}};
  for (DType dtype : {DType::f32, DType::i64}) {
    INFO(ir::dtype_name(dtype));
    const Shape shape{3, 5, 19};
    check_shim_with(all_reductions(dtype, shape, kWarpAxes), {sample({dtype, shape}, 9, true)},
                    kWarpRows, grids, 1e-4);
  }
}

TEST_CASE("empty reductions through the cooperative kernels", "[gpu][shim]") {
  // Rows and columns that fold nothing: sums 0, products 1, max −inf or the lowest integer,
  // the mean of floats NaN.
  const Shape shape{4, 0, 3};
  for (DType dtype : {DType::f32, DType::i32}) {
    INFO(ir::dtype_name(dtype));
    ir::Function f = all_reductions(dtype, shape, {{1}, {1, 2}, {0, 1}});
    check_shim_with(f, {ir::HostTensor(dtype, shape)}, kBlockRows, {{}, {2, 5}});
    if (dtype == DType::f32) check_shim_with(f, {ir::HostTensor(dtype, shape)}, kWarpRows, {{}});
  }
}

TEST_CASE("long rows and columns through the default GPU path", "[gpu][shim]") {
  // Rows longer than a block (a block per row), columns of 2500 (a block per column tile), rows
  // of 100 (a warp per row) and a full reduction, on the suggested grids and on small ones.
  ir::Function f = ir::parse(
      R"(func @f(%x: f32[3,2500], %y: i32[2500,37], %z: f64[100,100]) -> (f32[3], i64[3], f32[], i32[37], i32[37], f64[100], i64[100], f64[]) {
  %0 = reduce_sum(%x) {axes = [1]} : f32[3]
  %1 = argmin(%x) {axis = 1} : i64[3]
  %2 = reduce_max(%x) {axes = [0, 1]} : f32[]
  %3 = reduce_sum(%y) {axes = [0]} : i32[37]
  %4 = argmax(%y) {axis = 0, dtype = i32} : i32[37]
  %5 = reduce_mean(%z) {axes = [1]} : f64[100]
  %6 = argmax(%z) {axis = 1} : i64[100]
  %7 = reduce_prod(%z) {axes = [0, 1]} : f64[]
  return %0, %1, %2, %3, %4, %5, %6, %7
})");
  ir::HostTensor z = sample({DType::f64, Shape{100, 100}}, 3, false);
  for (int64_t i = 0; i < z.num_elements(); ++i)
    z.data<double>()[i] = 1.0 + z.data<double>()[i] * 1e-3;  // a product that stays finite
  check_shim_with(f,
                  {sample({DType::f32, Shape{3, 2500}}, 1, false),
                   sample({DType::i32, Shape{2500, 37}}, 2, false), z},
                  {}, {{}, {2, 96}}, 1e-4);
}

TEST_CASE("a full reduction of 1M elements runs on a block, not on one thread", "[gpu][shim]") {
  ir::Function f =
      ir::parse(R"(func @f(%x: f32[1048576], %i: i32[1048576]) -> (f32[], i32[], i64[], i64[]) {
  %0 = reduce_sum(%x) {axes = [0]} : f32[]
  %1 = reduce_sum(%i) {axes = [0]} : i32[]
  %2 = argmax(%x) {axis = 0} : i64[]
  %3 = argmin(%i) {axis = 0} : i64[]
  return %0, %1, %2, %3
})");
  testing::Plans plans = testing::simple_plans(f);
  const std::vector<codegen::GpuLaunch> launches =
      codegen::gpu_launch_plan(f, plans.kernels, plans.memory);
  REQUIRE(launches.size() == 4);
  for (const codegen::GpuLaunch& launch : launches) {
    CHECK(launch.items == 1);
    CHECK(launch.block_size == 256);
  }
  // Integers near the limits, whose sum wraps: exact, whatever the order.
  ir::HostTensor x = sample({DType::f32, Shape{1048576}}, 5, false);
  ir::HostTensor i(DType::i32, Shape{1048576});
  for (int64_t k = 0; k < i.num_elements(); ++k)
    i.data<int32_t>()[k] = static_cast<int32_t>((k * 2654435761u) ^ (k << 7));
  x.data<float>()[777777] = 1e30f;  // argmax
  x.data<float>()[999999] = 1e30f;  // a later tie
  check_shim_with(f, {x, i}, {}, {{}, {3, 100}});
}

TEST_CASE("argmax/argmin ties and NaNs give the first index, as on the CPU", "[gpu][shim]") {
  ir::Function f = ir::parse(
      R"(func @f(%x: f32[4,300], %y: f32[300,4], %i: u8[3,500]) -> (i64[4], i64[4], i64[4], i64[4], i32[3], i32[3]) {
  %0 = argmax(%x) {axis = 1} : i64[4]
  %1 = argmin(%x) {axis = 1} : i64[4]
  %2 = argmax(%y) {axis = 0} : i64[4]
  %3 = argmin(%y) {axis = 0} : i64[4]
  %4 = argmax(%i) {axis = 1, dtype = i32} : i32[3]
  %5 = argmin(%i) {axis = 1, dtype = i32} : i32[3]
  return %0, %1, %2, %3, %4, %5
})");
  // Rows: all equal; ±0 ties; maxima and minima repeated; NaNs after and before the extremes.
  ir::HostTensor x(DType::f32, Shape{4, 300}), y(DType::f32, Shape{300, 4});
  ir::HostTensor i(DType::u8, Shape{3, 500});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t k = 0; k < 300; ++k) {
    const float values[4] = {1.5f, k % 2 == 0 ? 0.0f : -0.0f, static_cast<float>(k % 7),
                             static_cast<float>(k % 5)};
    for (int64_t r = 0; r < 4; ++r) {
      x.data<float>()[r * 300 + k] = values[r];
      y.data<float>()[k * 4 + r] = values[r];
    }
  }
  x.data<float>()[3 * 300 + 250] = nan;
  x.data<float>()[3 * 300 + 260] = nan;
  y.data<float>()[40 * 4 + 2] = nan;
  y.data<float>()[20 * 4 + 2] = nan;
  for (int64_t k = 0; k < i.num_elements(); ++k)
    i.data<uint8_t>()[k] = static_cast<uint8_t>(k < 500 ? 7 : (k * 37) % 256);
  // The default path (a warp per row of x and i, column tiles of y), and a block per row.
  check_shim_with(f, {x, y, i}, {}, {{}, {2, 33}}, 0.0);
  check_shim_with(f, {x, y, i}, kBlockRows, {{}, {2, 33}}, 0.0);
  // The answers themselves.
  std::vector<ir::HostTensor> got = expected(f, {x, y, i});
  CHECK(values_of<int64_t>(got[0]) == std::vector<int64_t>{0, 0, 6, 250});
  CHECK(values_of<int64_t>(got[1]) == std::vector<int64_t>{0, 0, 0, 250});
  CHECK(values_of<int64_t>(got[2]) == std::vector<int64_t>{0, 0, 20, 4});
  CHECK(values_of<int32_t>(got[4])[0] == 0);
}

TEST_CASE("softmax and log_softmax with a warp or a block per row", "[gpu][shim]") {
  ir::Function f = ir::parse(
      R"(func @f(%x: f32[3,2500], %y: f64[40,70], %z: f32[100,3]) -> (f32[3,2500], f32[3,2500], f64[40,70], f64[40,70], f32[100,3]) {
  %0 = softmax(%x) {axis = -1} : f32[3,2500]
  %1 = log_softmax(%x) {axis = 1} : f32[3,2500]
  %2 = softmax(%y) {axis = 1} : f64[40,70]
  %3 = log_softmax(%y) {axis = 0} : f64[40,70]
  %4 = softmax(%z) {axis = 0} : f32[100,3]
  return %0, %1, %2, %3, %4
})");
  std::vector<ir::HostTensor> args{sample({DType::f32, Shape{3, 2500}}, 1, false),
                                   sample({DType::f64, Shape{40, 70}}, 2, false),
                                   sample({DType::f32, Shape{100, 3}}, 3, false)};
  check_shim_with(f, args, {}, {{}, {2, 40}});
  check_shim_with(f, args, kBlockRows, {{}, {1, 7}});
}

TEST_CASE("ptxas assembles the cooperative kernels: shuffles, barriers, shared memory",
          "[gpu][ptxas]") {
  const std::string ptxas = ptxas_path();
  if (ptxas.empty()) {
    WARN("no ptxas (no CUDA toolkit at build time, or an ASan build): PTX not assembled");
    return;
  }
  std::vector<std::pair<ir::Function, codegen::GpuOptions>> cases;
  // 64-bit and 8-bit shuffles, shared memory and barriers (the reductions' suite above has
  // warps per row already).
  for (DType dtype : {DType::f64, DType::u8}) {
    cases.emplace_back(
        all_reductions(dtype, Shape{3, 5, 19}, {{0}, {1, 2}}, {Op::reduce_sum, Op::reduce_min}),
        kBlockRows);
  }
  cases.emplace_back(
      ir::parse(R"(func @s(%x: f32[3,2500], %y: f64[40,70]) -> (f32[3,2500], f64[40,70]) {
  %0 = softmax(%x) {axis = -1} : f32[3,2500]
  %1 = log_softmax(%y) {axis = 0} : f64[40,70]
  return %0, %1
})"),
      codegen::GpuOptions{});
  for (auto& [f, options] : cases) {
    INFO(f.name() << " block from " << options.block_reduce_elements);
    testing::Plans plans = testing::simple_plans(f);
    codegen::GpuOptions both = options;
    both.gpu_arch = "sm_80,sm_90";
    codegen::GpuModule module = codegen::compile_gpu(f, plans.kernels, plans.memory, both);
    for (const auto& [arch, text] : module.ptx) {
      INFO(arch);
      CHECK_THAT(text, Contains("shfl.sync.down.b32"));
      CHECK_THAT(text, Contains(".shared"));
      if (options.block_reduce_elements == 0) CHECK_THAT(text, Contains("bar.sync"));
      CHECK(ptxas_errors(ptxas, text, arch) == "");
    }
  }
}

TEST_CASE("the host shim refuses a block of more than 1024 threads for a cooperative kernel",
          "[gpu][shim]") {
  ir::Function f = ir::parse(R"(func @f(%x: f32[4,3000]) -> f32[4] {
  %0 = reduce_sum(%x) {axes = [1]} : f32[4]
  return %0
})");
  testing::Plans plans = testing::simple_plans(f);
  codegen::GpuHostModule module(f, plans.kernels, plans.memory, jit());
  CHECK_THROWS_AS(run_shim(module, f, {sample({DType::f32, Shape{4, 3000}}, 1)}, {1, 2048}),
                  ValueError);
  CHECK_THROWS_WITH(run_shim(module, f, {sample({DType::f32, Shape{4, 3000}}, 1)}, {1, 2048}),
                    Contains("2048 threads") && Contains("1024"));
}
