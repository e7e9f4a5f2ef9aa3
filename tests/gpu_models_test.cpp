// The main job's models on the GPU path (issue 14): the MLP's and the convnet's whole training
// steps (forward, gradients, optimizer updates) compile to PTX that ptxas accepts (the MLP's for
// sm_80 and sm_90, the convnet's fit step for sm_90), and a few fit steps of each on the mock
// driver (kernels as their host shim, GEMMs on the mock cuBLASLt) equal the same steps on the
// CPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "../examples/main_job_models.h"
#include "kiln/codegen/gpu.h"
#include "kiln/kiln.h"
#include "kiln/passes/pipeline.h"
#include "mock_gpu_test_util.h"
#include "ptxas_test_util.h"

namespace {

namespace k = kiln;
namespace ir = kiln::ir;
namespace passes = kiln::passes;
namespace codegen = kiln::codegen;
using kiln::testing::MockGpu;

const k::Device gpu = k::Device::cuda(0);

// A training step of `model` as the AOT example writes one: forward, loss, gradients, RMSprop.
auto train_step(k::Sequential& model, k::optimizers::RMSprop& optimizer) {
  return k::function([&model, &optimizer](const k::Tensor& x, const k::Tensor& y) {
    static const k::losses::SparseCategoricalCrossentropy loss_fn;
    k::GradientTape tape;
    k::Tensor probs = model(x, /*training=*/true);
    k::Tensor loss = loss_fn(y, probs);
    std::vector<k::Variable> vars = model.trainable_weights();
    optimizer.apply_gradients(tape.gradient(loss, std::span<const k::Variable>(vars)), vars);
    return loss;
  });
}

// The step's launch plan (every kernel lowered, the GEMMs on cuBLASLt), then its PTX for `archs`
// (each a compile of the whole step), each assembled by ptxas.
void check_ptx(k::Sequential model, int64_t batch, const std::string& archs) {
  model(k::zeros({1, 28, 28}));
  k::optimizers::RMSprop rmsprop(1e-3);
  auto step = train_step(model, rmsprop);
  const ir::Function& graph = step.graph(k::zeros({batch, 28, 28}), k::zeros({batch}, k::i32));
  passes::PipelineResult r = passes::run_pipeline(graph.clone());
  int gemms = 0;
  for (const codegen::GpuLaunch& launch :
       codegen::gpu_launch_plan(r.function, r.kernels, r.memory)) {
    CHECK(launch.supported);
    gemms += launch.gemm ? 1 : 0;
  }
  CHECK(gemms >= 3);  // forward, and the gradients of the weights and inputs
  const std::string ptxas = kiln::testing::ptxas_path();
  if (ptxas.empty()) {
    WARN("no ptxas (no CUDA toolkit at build time, or an ASan build): PTX not compiled");
    return;
  }
  codegen::GpuModule module =
      codegen::compile_gpu(r.function, r.kernels, r.memory, {.gpu_arch = archs});
  for (const auto& [arch, text] : module.ptx) {
    INFO(arch);
    CHECK(kiln::testing::ptxas_errors(ptxas, text, arch) == "");
  }
}

}  // namespace

TEST_CASE("gpu models: the MLP's training step assembles for sm_80 and sm_90", "[gpu][ptxas]") {
  check_ptx(main_job::mlp(), 128, "sm_80,sm_90");
}

TEST_CASE("gpu models: fit steps of the main job's models on the mock GPU equal the CPU's",
          "[gpu][heavy]") {
  MockGpu mock;
  for (const std::string name : {"mlp", "convnet"}) {
    INFO(name);
    // The convnet's step on the mock is slow (its GEMMs are the mock's reference loops): two
    // steps of 4 images.
    const int64_t n = name == "mlp" ? 24 : 8, batch = name == "mlp" ? 8 : 4;
    const k::Tensor x = k::random_uniform({n, 28, 28}, 0.f, 1.f, 41);
    const k::Tensor y = k::cast(k::random_uniform({n}, 0.f, 9.99f, 42), k::i32);
    auto make = [&] { return name == "mlp" ? main_job::mlp() : main_job::convnet(); };
    k::set_random_seed(3);
    k::Sequential on_cpu = make();
    on_cpu.build({28, 28});
    k::set_random_seed(3);  // the same Dropout seeds
    // Made under the scope: the models declare their input shape, so (as in Keras) they are
    // built, their weights made, when they are made.
    k::Sequential on_gpu = [&] {
      k::DeviceScope on(gpu);
      return make();
    }();
    for (size_t i = 0; i < on_cpu.weights().size(); ++i)
      on_gpu.weights()[i].assign(on_cpu.weights()[i].value().to(gpu));
    for (k::Sequential* m : {&on_cpu, &on_gpu})
      m->compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
    const k::FitOptions options{.epochs = 1, .batch_size = batch, .shuffle = false, .verbose = 0};
    const k::History want = on_cpu.fit(x, y, options);
    const k::History got = on_gpu.fit(x, y, options);
    CHECK(got.history.at("loss")[0] == Approx(want.history.at("loss")[0]).epsilon(1e-4));
    CHECK(got.history.at("accuracy")[0] == Approx(want.history.at("accuracy")[0]));
    // The convnet's training step (fit's: Adam and the metrics) as the GPU got it, through
    // ptxas: its whole step compiles in ~7 s per architecture, so only for the mock's sm_90 here
    // (codegen_gpu_test assembles every op's kernels for both).
    if (name == "convnet") {
      const std::string ptxas = kiln::testing::ptxas_path();
      REQUIRE_FALSE(mock.ptx.empty());
      const std::string& biggest = *std::max_element(
          mock.ptx.begin(), mock.ptx.end(),
          [](const std::string& a, const std::string& b) { return a.size() < b.size(); });
      if (!ptxas.empty()) CHECK(kiln::testing::ptxas_errors(ptxas, biggest, "sm_90") == "");
    }
    for (size_t i = 0; i < on_cpu.weights().size(); ++i) {
      INFO(on_cpu.weights()[i].name());
      REQUIRE(on_gpu.weights()[i].device() == gpu);
      const std::vector<float> a = on_cpu.weights()[i].value().to_vector<float>();
      const std::vector<float> b = on_gpu.weights()[i].value().to_vector<float>();
      REQUIRE(a.size() == b.size());
      double worst = 0;
      for (size_t j = 0; j < a.size(); ++j)
        worst = std::max(worst, double(std::abs(a[j] - b[j])));
      CHECK(worst < 1e-4);
    }
  }
}
