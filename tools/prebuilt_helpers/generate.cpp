// kiln_prebuild_helpers OUT: compiles the GEMM helpers (part bodies and micro-kernels, which take
// every size at run time) that matmuls and convolutions of f32 and f64 call, for the machine it
// runs on, and writes them to OUT as a blob that libkiln embeds (tools/prebuilt_helpers/
// register.cpp): a process then links them instead of compiling them (codegen/helper_objects.h).
// The build runs it on the build machine; on another CPU the keys do not match and Kiln compiles
// the helpers as it would without them. Micro-kernels specialised to one convolution's geometry
// ("_conv_s<step>_c<channels>") are left out: they belong to a model, not to Kiln.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kiln/codegen/compiler.h"
#include "kiln/codegen/helper_objects.h"
#include "kiln/ir/function.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/atomic_write.h"

namespace {

using kiln::ir::Attrs;
using kiln::ir::DType;
using kiln::ir::Op;
using kiln::ir::Shape;

// One function of several matmuls (several kernels, so compile_jit splits them and compiles
// each helper on its own): every transpose pair, results one vector wide or wider (the two
// micro-tile widths), A read packed or where it lies, and one or two rows (inference).
kiln::ir::Function matmuls(DType dtype) {
  kiln::ir::Function f(fmt::format("matmuls_{}", kiln::ir::dtype_name(dtype)));
  std::vector<kiln::ir::Value*> outs;
  auto add = [&](int64_t m, int64_t k, int64_t n, bool ta, bool tb) {
    kiln::ir::Value* a = f.add_param({dtype, ta ? Shape{k, m} : Shape{m, k}});
    kiln::ir::Value* b = f.add_param({dtype, tb ? Shape{n, k} : Shape{k, n}});
    outs.push_back(f.append(Op::matmul, {a, b},
                            Attrs().set_bool("transpose_a", ta).set_bool("transpose_b", tb))
                       ->output());
  };
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (int64_t n : {10, 40, 512})
        add(256, 300, n, ta, tb);
      for (int64_t m : {1, 2})
        add(m, 3136, 1024, ta, tb);
    }
  }
  f.set_outputs(outs);
  return f;
}

// A 5 × 5 'same' convolution's forward, input gradient (a convolution too) and filter gradient,
// with few and many channels.
kiln::ir::Function convolutions(DType dtype) {
  kiln::ir::Function f(fmt::format("convolutions_{}", kiln::ir::dtype_name(dtype)));
  std::vector<kiln::ir::Value*> outs;
  for (int64_t channels : {1, 32}) {
    Attrs window;
    window.set_string("padding", "same").set_ints("strides", {1, 1}).set_ints("dilations", {1, 1});
    kiln::ir::Value* x = f.add_param({dtype, Shape{8, 14, 14, channels}});
    kiln::ir::Value* w = f.add_param({dtype, Shape{5, 5, channels, 64}});
    kiln::ir::Value* y = f.append(Op::conv2d, {x, w}, window)->output();
    Attrs grad = window;
    grad.set_ints("ksize", {5, 5});
    kiln::ir::Value* dy = f.add_param({dtype, Shape{8, 14, 14, 64}});
    outs.push_back(y);
    outs.push_back(f.append(Op::conv2d_filter_grad, {x, dy}, std::move(grad))->output());
  }
  f.set_outputs(outs);
  return f;
}

// Compiles the corpus and returns the helpers worth embedding.
std::map<std::string, std::shared_ptr<const kiln::codegen::HelperObject>> compile_helpers() {
  // Several threads: the split compile is the one that compiles helpers apart; compile_jit is
  // given no disk cache; the helpers are this program's, not ones an earlier build embedded.
  setenv("KILN_COMPILE_THREADS", "2", 1);
  setenv("KILN_PREBUILT_HELPERS", "off", 1);
  unsetenv("KILN_PERF_MAP");
  auto compile = [](const kiln::ir::Function& f) {
    kiln::passes::PipelineResult planned = kiln::passes::run_pipeline(f.clone());
    kiln::codegen::compile_jit(planned.function, planned.kernels, planned.memory);
  };
  for (DType dtype : {DType::f32, DType::f64}) {
    compile(matmuls(dtype));
    compile(convolutions(dtype));
  }
  std::map<std::string, std::shared_ptr<const kiln::codegen::HelperObject>> helpers;
  for (auto& [key, helper] : kiln::codegen::HelperObjects::get().compiled())
    if (key.substr(0, key.find('|')).find("_conv_s") == std::string::npos)
      helpers.emplace(key, helper);
  return helpers;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: kiln_prebuild_helpers OUT\n");
    return 2;
  }
  std::map<std::string, std::shared_ptr<const kiln::codegen::HelperObject>> helpers;
  try {
    helpers = compile_helpers();
  } catch (const std::exception& e) {
    // The build goes on with no prebuilt helpers (Kiln compiles them at run time, as on another
    // CPU); helper_objects_test then fails, saying the build embedded none.
    std::fprintf(stderr, "kiln_prebuild_helpers: warning: no helpers embedded: %s\n", e.what());
    helpers.clear();
  }
  try {
    const std::string blob = kiln::codegen::HelperObjects::to_blob(helpers);
    kiln::runtime::AtomicWriter out(argv[1]);
    out.write(blob.data(), blob.size());
    out.commit();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln_prebuild_helpers: %s: %s\n", argv[1], e.what());
    return 1;
  }
  std::printf("kiln_prebuild_helpers: %zu helpers in %s\n", helpers.size(), argv[1]);
  return 0;
}
