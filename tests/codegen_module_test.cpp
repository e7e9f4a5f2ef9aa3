// The compiled module as a whole: results that are parameters, constants or repeated, updates,
// object-file emission, and errors that become CompileError instead of aborting.
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "codegen_test_util.h"
#include "env_test_util.h"
#include "kiln/passes/fusion.h"
#include "kiln/passes/memory_plan.h"
#include "kiln/passes/pipeline.h"
#include "random_program.h"

using namespace kiln;
using ir::Attrs;
using ir::DType;
using ir::Op;
using ir::Shape;

namespace {

ir::Value* constant(ir::Function& f, std::vector<float> values) {
  ir::HostTensor t = ir::HostTensor::from_values<float>(Shape{static_cast<int64_t>(values.size())},
                                                        std::span<const float>(values));
  return f.append(Op::constant, {}, Attrs().set_tensor("value", t))->output();
}

}  // namespace

TEST_CASE("results that are params, constants or repeated are copied out", "[codegen]") {
  ir::Function f("copies");
  ir::Value* x = f.add_param({DType::f32, Shape{5}});
  ir::Value* v = f.add_param({DType::f32, Shape{5}}, "var");
  ir::Value* c = constant(f, {1, 2, 3, 4, 5});
  ir::Value* y = f.append(Op::mul, {x, c})->output();
  f.set_outputs({x, c, y, y});
  f.add_update(v, f.append(Op::add, {v, y})->output());
  std::vector<ir::HostTensor> args{testing::sample({DType::f32, Shape{5}}, 1, false),
                                   testing::sample({DType::f32, Shape{5}}, 2, false)};
  testing::check_against_interpreter(f, args);
  testing::check_against_interpreter(f, testing::fused_plans(f, passes::KernelKind::loop), args);
}

TEST_CASE("the 10x^2 - 5x + 4 contract computes 9 34 79 144", "[codegen]") {
  ir::Function f("poly");
  ir::Value* x = f.add_param({DType::f32, Shape{4}});
  auto scalar = [&](float v) {
    return f.append(Op::constant, {}, Attrs().set_tensor("value", ir::HostTensor::scalar(v)))
        ->output();
  };
  ir::Value* a = f.append(Op::mul, {f.append(Op::mul, {scalar(10), x})->output(), x})->output();
  ir::Value* b = f.append(Op::mul, {scalar(-5), x})->output();
  f.set_outputs({f.append(Op::add, {f.append(Op::add, {a, b})->output(), scalar(4)})->output()});
  auto plans = testing::fused_plans(f, passes::KernelKind::loop);
  auto module = codegen::compile_jit(f, plans.kernels, plans.memory);
  auto out = testing::run_compiled(
      *module, f, {ir::HostTensor::from_values<float>(Shape{4}, std::vector<float>{1, 2, 3, 4})});
  std::vector<float> got(out[0].values<float>().begin(), out[0].values<float>().end());
  CHECK(got == std::vector<float>{9, 34, 79, 144});
  CHECK_THAT(module->llvm_ir(), Catch::Contains("kiln_entry"));
}

TEST_CASE("emit_object_file writes an ELF object", "[codegen]") {
  ir::Function f("obj");
  ir::Value* x = f.add_param({DType::f32, Shape{3, 40}});
  f.set_outputs({f.append(Op::exp, {x})->output()});
  auto plans = testing::simple_plans(f);
  const std::string path =
      (std::filesystem::temp_directory_path() / "kiln_codegen_module_test.o").string();
  codegen::emit_object_file(f, plans.kernels, plans.memory, path);
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  CHECK(std::string(magic, 4) ==
        "\x7f"
        "ELF");
  CHECK(std::filesystem::file_size(path) > 100);
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  std::filesystem::remove(path);
  CHECK_THROWS_AS(codegen::emit_object_file(f, plans.kernels, plans.memory, "/nonexistent-dir/x.o"),
                  IOError);
}

TEST_CASE("broken plans are CompileErrors", "[codegen]") {
  ir::Function g("noslot");
  ir::Value* x = g.add_param({DType::f32, Shape{4}});
  g.set_outputs({g.append(Op::neg, {x})->output()});
  auto broken = testing::simple_plans(g);
  broken.memory.slots.erase(x);
  CHECK_THROWS_WITH(codegen::compile_jit(g, broken.kernels, broken.memory),
                    Catch::Contains("kernel 0 (loop: neg)") && Catch::Contains("no slot"));
}

TEST_CASE("compiled code agrees with the interpreter under the real fusion and memory plans",
          "[codegen]") {
  ir::Function f("mlp");
  ir::Value* x = f.add_param({DType::f32, Shape{6, 20}});
  ir::Value* w = f.add_param({DType::f32, Shape{20, 9}});
  ir::Value* bias = f.add_param({DType::f32, Shape{9}});
  ir::Value* h = f.append(Op::matmul, {x, w})->output();
  h = f.append(Op::relu, {f.append(Op::add, {h, bias})->output()})->output();
  ir::Value* s = f.append(Op::softmax, {h})->output();
  ir::Value* m = f.append(Op::reduce_mean, {f.append(Op::square, {s})->output()},
                          Attrs().set_ints("axes", {0}))
                     ->output();
  f.set_outputs({s, m, x});
  f.add_update(bias, f.append(Op::sub, {bias, m})->output());
  std::vector<ir::HostTensor> args{testing::sample({DType::f32, Shape{6, 20}}, 1, false),
                                   testing::sample({DType::f32, Shape{20, 9}}, 2, false),
                                   testing::sample({DType::f32, Shape{9}}, 3, false)};
  for (bool fuse : {false, true}) {
    INFO("fuse " << fuse);
    testing::Plans plans;
    plans.kernels = passes::plan_kernels(f, passes::FusionOptions{fuse});
    plans.memory = passes::plan_memory(f, plans.kernels);
    testing::check_against_interpreter(f, plans, args);
  }
}

TEST_CASE("kernels compiled on several threads compute what one module computes", "[codegen]") {
  // Random programs of several kernels: KILN_COMPILE_THREADS=1 builds one module (kernels
  // inlined into the entry), 3 spreads the kernels over three modules compiled at once.
  int split = 0;
  testing::for_each_random_program(12, [&](const testing::RandomCase& c) {
    INFO(c.describe());
    passes::PipelineResult r = passes::run_pipeline(c.function.clone());
    std::vector<std::vector<ir::HostTensor>> results;
    std::vector<std::string> texts;
    for (const char* threads : {"1", "3"}) {
      testing::ScopedEnv env("KILN_COMPILE_THREADS", threads);
      auto module = codegen::compile_jit(r.function, r.kernels, r.memory);
      results.push_back(testing::run_compiled(*module, r.function, c.inputs));
      texts.push_back(module->llvm_ir());
    }
    // The same kernels' code, called instead of inlined: equal but for the order LLVM may give
    // a vectorized reduction.
    const std::string diff = testing::compare_results(results[1], results[0], 1e-6, 1e-6);
    INFO(diff);
    CHECK(diff.empty());
    // Split when there are at least two kernels per thread: the parts' modules are there.
    const bool several = r.kernels.kernels.size() >= 4;
    const std::string part = fmt::format("; ModuleID = '{}.part1'", r.function.name());
    CHECK((texts[1].find(part) != std::string::npos) == several);
    CHECK(texts[0].find(part) == std::string::npos);
    split += several ? 1 : 0;
  });
  CHECK(split >= 3);  // many random programs have several kernels
}
