// kiln::function on a GPU (issue 14): a traced function whose tensors live on a GPU is compiled
// for that device (GPU kernels plus cuBLASLt GEMMs with fused epilogues), cached per device, and
// run there; variables it assigns stay on the device. Here, on the mock driver (MockGpu: the
// kernels run as their host shim, the GEMMs on the mock cuBLASLt's reference), every result is
// compared with the same function run on the CPU.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "error_test_util.h"
#include "kiln/frontend/core/device_ops.h"
#include "kiln/kiln.h"
#include "mock_gpu_test_util.h"

namespace {

namespace k = kiln;
using Catch::Contains;
using kiln::testing::have_libdevice;
using kiln::testing::MockGpu;

const k::Device gpu = k::Device::cuda(0);

void check_same(const k::Tensor& cpu, const k::Tensor& on_gpu, double tolerance = 1e-5) {
  kiln::testing::check_on_device(cpu, on_gpu, gpu, tolerance);
}

}  // namespace

TEST_CASE("device function: the contract's softmax(matmul) runs on the GPU, cached per device") {
  MockGpu mock;
  const k::Tensor x = k::random_uniform({64, 96}, 0.f, 1.f, 1);
  const k::Tensor w = k::random_normal({96, 32}, 0.f, 0.05f, 2);
  auto f = k::function(
      [](const k::Tensor& a, const k::Tensor& b) { return k::relu(k::matmul(a, b) + 1.f); },
      "dense");
  const k::Tensor want = f(x, w);
  const k::Tensor gx = x.to(gpu), gw = w.to(gpu);
  const k::Tensor got = f(gx, gw);
  check_same(want, got);
  CHECK(f.trace_count() == 2);  // one trace per device
  CHECK(mock.lt.counters().matmuls == 1);
  // The GEMM is cuBLASLt's, with the ReLU in its epilogue (the + 1 is a constant: a loop kernel
  // after it).
  CHECK_THAT(f.compiled_ir(gx, gw), Contains("GPU launch plan (cuda:0)") && Contains("gemm f32"));
  check_same(want, f(gx, gw));
  CHECK(f.trace_count() == 2);
  CHECK(mock.lt.counters().matmuls == 2);
  if (have_libdevice()) {
    auto g = k::function(
        [](const k::Tensor& a, const k::Tensor& b) { return k::softmax(k::matmul(a, b)); });
    check_same(g(x, w), g(gx, gw));
  }
}

TEST_CASE("device function: a Dense layer's bias and ReLU go into cuBLASLt's epilogue") {
  MockGpu mock;
  const k::Tensor x = k::random_uniform({48, 80}, -1.f, 1.f, 3);
  const k::Tensor w = k::random_uniform({80, 40}, -1.f, 1.f, 4);
  const k::Tensor b = k::random_uniform({40}, -1.f, 1.f, 5);
  auto dense = k::function([](const k::Tensor& a, const k::Tensor& k_, const k::Tensor& c) {
    return k::relu(k::matmul(a, k_) + c);
  });
  const k::Tensor want = dense(x, w, b);
  check_same(want, dense(x.to(gpu), w.to(gpu), b.to(gpu)));
  REQUIRE(mock.lt.last_matmul());
  CHECK(mock.lt.last_matmul()->desc.epilogue == kiln::runtime::cuda::CUBLASLT_EPILOGUE_RELU_BIAS);
  CHECK(mock.loads == 0);  // the whole function is one GEMM: no module
}

TEST_CASE("device function: a training step updates variables on the device like the CPU") {
  MockGpu mock;
  const k::Tensor x = k::random_uniform({32, 64}, -1.f, 1.f, 6);
  const k::Tensor y = k::random_uniform({32, 16}, -1.f, 1.f, 7);
  const k::Tensor w0 = k::random_uniform({64, 16}, -0.1f, 0.1f, 8);
  auto run = [&](const k::Device& device) {
    k::Variable w(w0.to(device), "w");
    auto step = k::function([&](const k::Tensor& a, const k::Tensor& t) {
      k::GradientTape tape;
      const k::Tensor loss = k::reduce_mean(k::square(k::matmul(a, w.value()) - t));
      const k::Tensor grad = tape.gradient(loss, w);
      w.assign_sub(grad * 0.5f);
      return loss;
    });
    std::vector<k::Tensor> losses;
    for (int i = 0; i < 3; ++i)
      losses.push_back(step(x.to(device), y.to(device)));
    CHECK(w.device() == device);
    losses.push_back(w.value());
    return losses;
  };
  const std::vector<k::Tensor> on_cpu = run(k::Device::cpu());
  const std::vector<k::Tensor> on_gpu = run(gpu);
  REQUIRE(on_gpu.size() == on_cpu.size());
  for (size_t i = 0; i < on_cpu.size(); ++i)
    check_same(on_cpu[i], on_gpu[i], 1e-4);
}

TEST_CASE("device function: captured cpu tensors and plain numbers go along; variables do not") {
  MockGpu mock;
  const k::Tensor mask = k::constant({1.f, 0.f, 1.f, 0.f});
  auto masked = k::function([&](const k::Tensor& a, float s) { return a * mask * s; });
  const k::Tensor a = k::random_uniform({4}, -1.f, 1.f, 9);
  check_same(masked(a, 3.f), masked(a.to(gpu), 3.f));
  // A variable on the CPU read by a call on the GPU: a DeviceError naming both.
  k::Variable v(k::ones({4}), "scale");
  auto scaled = k::function([&](const k::Tensor& t) { return t * v.value(); }, "scaled");
  const std::string message =
      kiln::testing::error_of<k::DeviceError>([&] { (void)scaled(a.to(gpu)); });
  CHECK_THAT(message, Contains("function 'scaled' reads tensors on cuda:0 and cpu") &&
                          Contains("tensor argument 0 is on cuda:0") &&
                          Contains("Variable 'scale' on cpu"));
  // Arguments on two devices.
  auto add = k::function([](const k::Tensor& p, const k::Tensor& q) { return p + q; }, "add");
  CHECK_THAT(kiln::testing::error_of<k::DeviceError>([&] { (void)add(a.to(gpu), a); }),
             Contains("function 'add' reads tensors on cuda:0 and cpu"));
}

TEST_CASE("device function: a retrace says the device changed") {
  MockGpu mock;
  std::vector<std::string> logged;
  auto f = k::function([](const k::Tensor& t) { return t * 2.f; }, "twice");
  const k::Tensor a = k::ones({3});
  k::LogSink previous = k::set_log_sink([&](std::string_view m) { logged.emplace_back(m); });
  (void)f(a);
  (void)f(a.to(gpu));
  k::set_log_sink(previous);
  REQUIRE(logged.size() == 1);
  CHECK_THAT(logged[0], Contains("argument 0: device cpu → cuda:0"));
}

TEST_CASE("device function: a bad gather index on the GPU is the CPU's IndexError") {
  MockGpu mock;
  auto take = k::function(
      [](const k::Tensor& t, const k::Tensor& i) { return k::gather(t, i) * 2.f; }, "take");
  const k::Tensor t = k::random_uniform({5, 3}, 0.f, 1.f, 10);
  const k::Tensor ok = k::constant({4, 0, 2});
  check_same(take(t, ok), take(t.to(gpu), ok.to(gpu)));
  const k::Tensor bad = k::constant({1, 7});
  const std::string want = kiln::testing::error_of<k::IndexError>([&] { (void)take(t, bad); });
  const std::string got =
      kiln::testing::error_of<k::IndexError>([&] { (void)take(t.to(gpu), bad.to(gpu)); });
  CHECK_THAT(got, Contains("index 7 (element 1 of indices) is out of range"));
  CHECK(got.substr(0, got.find('\n')) == want.substr(0, want.find('\n')));
}

TEST_CASE("device function: a GradientTape records a call on the GPU and differentiates it") {
  MockGpu mock;
  auto f = k::function([](const k::Tensor& a, const k::Tensor& b) {
    return k::reduce_sum(k::relu(k::matmul(a, b)));
  });
  const k::Tensor a = k::random_uniform({40, 64}, -1.f, 1.f, 11);
  const k::Tensor b = k::random_uniform({64, 30}, -1.f, 1.f, 12);
  auto grads = [&](const k::Tensor& p, const k::Tensor& q) {
    k::GradientTape tape;
    tape.watch(p);
    tape.watch(q);
    const k::Tensor y = f(p, q);
    return tape.gradient(y, {p, q});
  };
  const std::vector<k::Tensor> want = grads(a, b);
  const std::vector<k::Tensor> got = grads(a.to(gpu), b.to(gpu));
  REQUIRE(got.size() == 2);
  check_same(want[0], got[0], 1e-4);
  check_same(want[1], got[1], 1e-4);
}

TEST_CASE("device function: without a usable driver, GPU tensors never reach a function") {
  // On this machine there is no driver: .to(cuda) is the DeviceError, before any trace.
  if (k::cuda::is_available()) return;
  auto f = k::function([](const k::Tensor& t) { return t + 1.f; });
  CHECK_THROWS_AS(f(k::ones({2}).to(gpu)), k::DeviceError);
  CHECK(f.trace_count() == 0);
}

TEST_CASE("device function: a few fit steps of a model built under a DeviceScope equal the CPU's") {
  MockGpu mock;
  auto model = [] {
    return k::Sequential(
        {k::layers::Dense(64, "relu", {20}, true, "glorot_uniform", "zeros", "hidden"),
         k::layers::Dropout(0.25, 3),
         k::layers::Dense(5, "softmax", {}, true, "glorot_uniform", "zeros", "out")});
  };
  const k::Tensor x = k::random_uniform({96, 20}, -1.f, 1.f, 21);
  const k::Tensor y = k::cast(k::random_uniform({96}, 0.f, 4.99f, 22), k::i32);
  k::set_random_seed(7);
  k::Sequential on_cpu = model();
  on_cpu.build({20});
  // Made under the scope: its first layer declares input_shape, so (as in Keras) it is built,
  // its weights made, when it is made.
  k::Sequential on_gpu = [&] {
    k::DeviceScope on(gpu);
    return model();
  }();
  REQUIRE(on_gpu.weights().size() == on_cpu.weights().size());
  for (size_t i = 0; i < on_cpu.weights().size(); ++i) {
    REQUIRE(on_gpu.weights()[i].device() == gpu);
    on_gpu.weights()[i].assign(on_cpu.weights()[i].value().to(gpu));
  }
  for (k::Sequential* m : {&on_cpu, &on_gpu})
    m->compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
  const k::FitOptions options{
      .epochs = 2, .batch_size = 32, .validation_split = 0.25, .verbose = 0};
  const k::History want = on_cpu.fit(x, y, options);
  const k::History got = on_gpu.fit(x, y, options);  // host data: each batch is copied over
  for (const char* metric : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
    INFO(metric);
    REQUIRE(got.history.at(metric).size() == 2);
    for (size_t e = 0; e < 2; ++e)
      CHECK(got.history.at(metric)[e] == Approx(want.history.at(metric)[e]).epsilon(1e-4));
  }
  for (size_t i = 0; i < on_cpu.weights().size(); ++i) {
    INFO(on_cpu.weights()[i].name());
    CHECK(on_gpu.weights()[i].device() == gpu);
    check_same(on_cpu.weights()[i].value(), on_gpu.weights()[i].value(), 1e-4);
  }
  check_same(on_cpu.predict(x), on_gpu.predict(x), 1e-4);
  CHECK(mock.lt.counters().matmuls > 0);
}
