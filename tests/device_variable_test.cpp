// Variables resident on a GPU (issue 14): made from a GPU tensor or under a DeviceScope, a
// Variable lives on that device for life, in its own device memory, and its updates run there.
// Here, without a GPU, on the mock driver with the host-shim module loader
// (mock_gpu_test_util.h); every result is compared with the same thing done on the CPU.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "error_test_util.h"
#include "file_test_util.h"
#include "kiln/frontend/core/device_ops.h"
#include "kiln/kiln.h"
#include "kiln/runtime/cuda/driver.h"
#include "mock_gpu_test_util.h"

namespace {

namespace k = kiln;
namespace cu = kiln::runtime::cuda;
using Catch::Contains;
using k::detail::TensorAccess;
using k::detail::VariableAccess;
using kiln::testing::error_of;
using kiln::testing::MockGpu;

const k::Device gpu = k::Device::cuda(0);

std::string here(int line) {
  return fmt::format("device_variable_test.cpp:{}", line);
}

// The values of `t`, wherever it lives, as doubles.
std::vector<double> values(const k::Tensor& t) {
  return k::cast(t.to(k::Device::cpu()), k::f64).to_vector<double>();
}

// `on_gpu` lives on cuda:0 and holds `cpu`'s values (to a few ulps, as device_ops_test allows).
void check_same(const k::Tensor& cpu, const k::Tensor& on_gpu) {
  REQUIRE(on_gpu.device() == gpu);
  REQUIRE(cpu.device() == k::Device::cpu());
  REQUIRE(on_gpu.type() == cpu.type());
  const std::vector<double> want = values(cpu), got = values(on_gpu);
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(want[i]).epsilon(1e-5).margin(1e-6));
  }
}

void check_same(const k::Variable& cpu, const k::Variable& on_gpu) {
  INFO(on_gpu.name());
  CHECK(on_gpu.device() == gpu);
  check_same(cpu.value(), on_gpu.value());
}

const std::shared_ptr<cu::DeviceBuffer>& memory(const k::Tensor& t) {
  return TensorAccess::device_buffer(t);
}

}  // namespace

TEST_CASE("device variables: made from a GPU tensor, a Variable lives there in its own memory") {
  MockGpu mock;
  const k::Tensor x = k::constant({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}});
  const k::Tensor g = x.to(gpu);
  k::Variable v(g, "w");
  CHECK(v.device() == gpu);
  CHECK(v.type() == x.type());
  const k::Tensor read = v.value();
  CHECK(read.device() == gpu);
  CHECK(read.to_vector<float>() == x.to_vector<float>());
  // A copy, not an alias of the initial value: TensorFlow copies too, and a variable's memory is
  // then never a user's tensor's.
  REQUIRE(memory(read) != nullptr);
  CHECK(memory(read) != memory(g));
  CHECK(memory(read)->get() != memory(g)->get());
  // Each read is a handle of its own (for the tapes) to the variable's memory.
  const k::Tensor again = v.read_value();
  CHECK(TensorAccess::identity(again) != TensorAccess::identity(read));
  CHECK(memory(again) == memory(read));
  CHECK(static_cast<k::Tensor>(v).device() == gpu);
  // On the CPU, as before: the variable shares the initial value's (immutable) storage.
  k::Variable c(x, "c");
  CHECK(c.device() == k::Device::cpu());
  CHECK(VariableAccess::host(c).raw() == x.host().raw());
  CHECK(k::Variable(5.f).device() == k::Device::cpu());
  // A view of a GPU tensor (reshape shares memory) is copied as well.
  k::Variable flat(k::reshape(g, {6}), "flat");
  CHECK(flat.value().to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(memory(flat.value()) != memory(g));
}

TEST_CASE("device variables: assign, assign_add and assign_sub run on the device as on the CPU") {
  MockGpu mock;
  const k::Tensor init = k::random_uniform({4, 3}, -1.0, 1.0, 1);
  const k::Tensor a = k::random_uniform({4, 3}, -2.0, 2.0, 2);
  const k::Tensor d = k::random_uniform({4, 3}, -1.0, 1.0, 3);
  k::Variable c(init, "v"), g(init.to(gpu), "v");
  const k::Tensor before = g.value();

  c.assign(a);
  const k::Tensor ga = a.to(gpu);
  const size_t copied = mock.driver.counters().bytes_device_to_device;
  g.assign(ga);
  check_same(c, g);
  CHECK(mock.driver.counters().bytes_device_to_device == copied + 4 * 3 * sizeof(float));
  // assign copies into new memory: neither the value nor a tensor read earlier is shared.
  CHECK(memory(g.value()) != memory(ga));
  check_same(init, before);

  const size_t copies = mock.driver.counters().bytes_device_to_device;
  c.assign_add(d);
  g.assign_add(d.to(gpu));
  check_same(c, g);
  c.assign_sub(d * 3.f);
  g.assign_sub(d.to(gpu) * 3.f);
  check_same(c, g);
  // The arithmetic ran on the device (kernels loaded), and its results were not copied again.
  CHECK(mock.loads > 0);
  CHECK(mock.driver.counters().bytes_device_to_device == copies);

  // The operators return the variable, so updates chain as on the CPU.
  c.assign(a).assign_add(d);
  g.assign(a.to(gpu)).assign_add(d.to(gpu));
  check_same(c, g);

  // f64 and i32 variables too.
  const k::Tensor n = k::constant({1, 2, 3});
  k::Variable ci(n, "i"), gi(n.to(gpu), "i");
  ci.assign_add(n * 2);
  gi.assign_add((n * 2).to(gpu));
  CHECK(gi.value().to_vector<int32_t>() == ci.value().to_vector<int32_t>());
  const k::Tensor f = k::random_uniform({5}, 0.0, 1.0, 4, k::f64);
  k::Variable cf(f, "f"), gf(f.to(gpu), "f");
  cf.assign_sub(f * f);
  gf.assign_sub(f.to(gpu) * f.to(gpu));
  check_same(cf, gf);
}

TEST_CASE("device variables: a 0-d cpu value goes to a variable on a GPU, as ops' scalars do") {
  MockGpu mock;
  k::Variable c(k::constant(2.f), "s"), g(k::constant(2.f).to(gpu), "s");
  c.assign(k::constant(5.f));
  g.assign(k::constant(5.f));
  CHECK(g.device() == gpu);
  CHECK(g.value().item<float>() == 5.f);
  c.assign_add(k::constant(1.5f));
  g.assign_add(k::constant(1.5f));
  c.assign_sub(k::constant(0.25f));
  g.assign_sub(k::constant(0.25f));
  check_same(c, g);
}

TEST_CASE(
    "device variables: a value on another device is a DeviceError naming both and the "
    "variable") {
  MockGpu mock({.device_count = 2});
  k::Variable g(k::zeros({2, 2}).to(gpu), "w");
  const k::Tensor host = k::ones({2, 2});
  int line = __LINE__ + 1;
  std::string message = error_of<k::DeviceError>([&] { g.assign(host); });
  CHECK_THAT(message, Contains("assign: Variable 'w' lives on cuda:0, but the value is on cpu; a "
                               "variable keeps its device for life: move the value with "
                               ".to(k::Device::cuda(0))"));
  CHECK_THAT(message, Contains(here(line)));
  line = __LINE__ + 1;
  message = error_of<k::DeviceError>([&] { g.assign_add(host); });
  CHECK_THAT(message,
             Contains("assign_add: Variable 'w' lives on cuda:0, but the value is on cpu"));
  CHECK_THAT(message, Contains(here(line)));
  message = error_of<k::DeviceError>([&] { g.assign_sub(host.to(k::Device::cuda(1))); });
  CHECK_THAT(message,
             Contains("assign_sub: Variable 'w' lives on cuda:0, but the value is on cuda:1"));
  // A variable on the CPU takes no GPU value, not even a 0-d one.
  k::Variable c(k::constant(1.f), "c");
  message = error_of<k::DeviceError>([&] { c.assign(k::constant(2.f).to(gpu)); });
  CHECK_THAT(message, Contains("assign: Variable 'c' lives on cpu, but the value is on cuda:0; a "
                               "variable keeps its device for life: move the value with "
                               ".to(k::Device::cpu())"));
  // Nothing changed.
  CHECK(g.value().to_vector<float>() == std::vector<float>{0, 0, 0, 0});
  CHECK(c.value().item<float>() == 1.f);
  CHECK(g.device() == gpu);
}

TEST_CASE("device variables: wrong shapes and dtypes are the CPU's errors") {
  MockGpu mock;
  k::Variable c(k::zeros({2, 2}), "w"), g(k::zeros({2, 2}).to(gpu), "w");
  auto same_error = [&](auto update) {
    const std::string on_cpu = error_of<k::Error>([&] { update(c, k::Device::cpu()); });
    const std::string on_gpu = error_of<k::Error>([&] { update(g, gpu); });
    CHECK(on_gpu == on_cpu);
  };
  // The shape and dtype come first, whatever device the value is on.
  CHECK_THROWS_AS(g.assign(k::zeros({3}).to(gpu)), k::ShapeError);
  CHECK_THROWS_AS(g.assign(k::zeros({2, 2}, k::f64)), k::TypeError);
  CHECK_THROWS_AS(g.assign_add(k::zeros({3})), k::ShapeError);
  same_error([](k::Variable& v, const k::Device& d) { v.assign(k::zeros({3}).to(d)); });
  same_error([](k::Variable& v, const k::Device& d) {
    v.assign_add(k::zeros({2, 2}, k::i32).to(d));
  });
  same_error([](k::Variable& v, const k::Device&) { v.assign_sub(k::Tensor()); });
  CHECK(g.value().to_vector<float>() == std::vector<float>{0, 0, 0, 0});
}

TEST_CASE("device variables: printing shows a host copy of the values and the device") {
  MockGpu mock;
  const k::Tensor x = k::constant({{1.f, 2.f}, {3.f, 4.f}});
  k::Variable c(x, "w"), g(x.to(gpu), "w");
  const std::string want = c.to_string();
  CHECK(want == "<kiln.Variable 'w' shape=(2, 2) dtype=float32, numpy=\n[[1. 2.]\n [3. 4.]]>");
  CHECK(g.to_string() ==
        "<kiln.Variable 'w' shape=(2, 2) dtype=float32, device=cuda:0, numpy=\n[[1. 2.]\n "
        "[3. 4.]]>");
  std::ostringstream out;
  out << k::Variable(k::constant(3.5).to(gpu), "s");
  CHECK(out.str() == "<kiln.Variable 's' shape=() dtype=float64, device=cuda:0, numpy=3.5>");
}

TEST_CASE("device variables: the accessors give the tensor on its device, and host copies") {
  MockGpu mock;
  k::Variable g(k::constant({1.f, 2.f}).to(gpu), "w");
  const k::Tensor& t = VariableAccess::tensor(g);
  CHECK(t.device() == gpu);
  CHECK(memory(t) == memory(g.value()));
  CHECK(VariableAccess::host_copy(g, "test").values<float>()[1] == 2.f);

  // set_tensor takes a tensor of the variable's device as it is (a compiled function's update).
  const k::Tensor update = k::constant({7.f, 8.f}).to(gpu);
  VariableAccess::set_tensor(g, update);
  CHECK(memory(VariableAccess::tensor(g)) == memory(update));
  CHECK(g.value().to_vector<float>() == std::vector<float>{7.f, 8.f});
  // A value of another type or device is the caller's bug.
  CHECK_THROWS_AS(VariableAccess::set_tensor(g, k::constant({1.f, 2.f})), k::InternalError);
  CHECK_THROWS_AS(VariableAccess::set_tensor(g, k::constant({1.f}).to(gpu)), k::InternalError);

  // set_host copies a host value to the variable's device.
  VariableAccess::set_host(g, k::constant({3.f, 4.f}).host());
  CHECK(VariableAccess::tensor(g).device() == gpu);
  CHECK(g.value().to_vector<float>() == std::vector<float>{3.f, 4.f});

  // host() has no value to give for a GPU variable: a DeviceError saying so, never a crash (a
  // compiled kiln::function reads variables this way).
  const std::string message = error_of<k::DeviceError>([&] { (void)VariableAccess::host(g); });
  CHECK_THAT(message,
             Contains("Variable 'w' lives on cuda:0, but this needs its value on the cpu"));

  // create() makes variables on a device, from host values or tensors.
  k::Variable made = VariableAccess::create(k::constant({1.f}).host(), "made", false, gpu);
  CHECK(made.device() == gpu);
  CHECK_FALSE(made.trainable());
  CHECK(made.value().to_vector<float>() == std::vector<float>{1.f});
  const k::Tensor source = k::constant({5.f}).to(gpu);
  k::Variable from = VariableAccess::create(source, "from", true);
  CHECK(from.device() == gpu);
  CHECK(memory(from.value()) != memory(source));

  // check_numerics reads a GPU value through a host copy.
  CHECK(k::check_numerics(g.value(), "w").device() == gpu);
  g.assign(k::constant({1.f, std::numeric_limits<float>::quiet_NaN()}).to(gpu));
  CHECK_THAT(error_of<k::ValueError>([&] { (void)k::check_numerics(g.value(), "w"); }),
             Contains("w: "));
}

TEST_CASE("device variables: a GradientTape gradient w.r.t. a GPU variable equals the CPU's") {
  MockGpu mock;
  const k::Tensor w0 = k::random_uniform({3, 4}, -1.0, 1.0, 5);
  const k::Tensor b0 = k::random_uniform({4}, -1.0, 1.0, 6);
  const k::Tensor x = k::random_uniform({2, 3}, -1.0, 1.0, 7);
  auto grads = [&](const k::Device& device) {
    k::Variable w(w0.to(device), "w"), b(b0.to(device), "b"), unused(b0.to(device), "unused");
    k::GradientTape tape(/*persistent=*/true);
    tape.watch(unused);
    const k::Tensor y = k::reduce_sum(k::square(k::matmul(x.to(device), w) + b));
    std::vector<k::Tensor> g = tape.gradient(y, std::vector<k::Variable>{w, b});
    // An unconnected variable's zeros are made where it lives.
    g.push_back(tape.gradient(y, unused, k::Tensor(), k::UnconnectedGradients::zero));
    return g;
  };
  const std::vector<k::Tensor> on_cpu = grads(k::Device::cpu());
  const std::vector<k::Tensor> on_gpu = grads(gpu);
  REQUIRE(on_gpu.size() == 3);
  for (size_t i = 0; i < on_cpu.size(); ++i) {
    INFO("gradient " << i);
    check_same(on_cpu[i], on_gpu[i]);
  }
}

TEST_CASE("device variables: optimizers make their slots on the variable's device") {
  MockGpu mock;
  const k::Tensor w0 = k::random_uniform({3, 2}, -1.0, 1.0, 8);
  const k::Tensor grad = k::random_uniform({3, 2}, -1.0, 1.0, 9);
  auto train = [&](k::optimizers::Optimizer& opt, const k::Device& device) {
    k::Variable w(w0.to(device), "w");
    for (int step = 0; step < 3; ++step)
      opt.apply_gradients({{(grad * static_cast<float>(step + 1)).to(device), w}});
    return w;
  };
  {
    k::optimizers::SGD cpu_opt(0.1, 0.9), gpu_opt(0.1, 0.9);
    k::Variable c = train(cpu_opt, k::Device::cpu()), g = train(gpu_opt, gpu);
    check_same(c, g);
    const std::vector<k::Variable> slots = gpu_opt.variables();
    REQUIRE(slots.size() == 2);                    // iterations, then the momentum
    CHECK(slots[0].device() == k::Device::cpu());  // the step counter stays on the host
    CHECK(slots[0].value().item<int64_t>() == 3);
    check_same(cpu_opt.variables()[1], slots[1]);
  }
  {
    // Adam's m and v; its update reads the host step counter as a 0-d operand.
    k::optimizers::Adam cpu_opt(0.01), gpu_opt(0.01);
    k::Variable c = train(cpu_opt, k::Device::cpu()), g = train(gpu_opt, gpu);
    check_same(c, g);
    const std::vector<k::Variable> slots = gpu_opt.variables();
    REQUIRE(slots.size() == 3);
    check_same(cpu_opt.variables()[1], slots[1]);
    check_same(cpu_opt.variables()[2], slots[2]);
  }
  {
    // Under a GPU DeviceScope too: the step counter's increment stays on the host.
    k::optimizers::SGD opt(0.1);
    k::DeviceScope on(gpu);
    k::Variable w = train(opt, gpu);
    CHECK(opt.iterations().value().item<int64_t>() == 3);
    CHECK(w.device() == gpu);
  }
}

TEST_CASE("device variables: layers built under a GPU DeviceScope hold their weights there") {
  MockGpu mock;
  auto dense = [] {
    return k::layers::Dense(3, "relu", {}, true, "glorot_uniform", "zeros", "dense");
  };
  // Seeded alike, the initializers' draws are the same on both devices (Philox).
  k::set_random_seed(11);
  k::layers::Dense seeded_cpu = dense();
  k::set_random_seed(11);
  k::layers::Dense seeded_gpu = dense();
  seeded_cpu.build({2, 4});
  {
    k::DeviceScope on(gpu);
    seeded_gpu.build({2, 4});
  }
  REQUIRE(seeded_gpu.weights().size() == 2);
  for (size_t i = 0; i < 2; ++i)
    check_same(seeded_cpu.weights()[i], seeded_gpu.weights()[i]);  // on cuda:0 too
  // The layer runs on the device, on its GPU weights.
  const k::Tensor x = k::random_uniform({2, 4}, -1.0, 1.0, 12);
  check_same(seeded_cpu(x), seeded_gpu(x.to(gpu)));

  k::set_random_seed(13);
  k::layers::Conv2D conv_cpu(2, {3, 3}, {1, 1}, "valid", "", {}, true, "he_normal", "zeros",
                             "conv");
  k::set_random_seed(13);
  k::layers::Conv2D conv_gpu(2, {3, 3}, {1, 1}, "valid", "", {}, true, "he_normal", "zeros",
                             "conv");
  conv_cpu.build({1, 5, 5, 3});
  {
    k::DeviceScope on(gpu);
    conv_gpu.build({1, 5, 5, 3});
  }
  REQUIRE(conv_gpu.weights().size() == 2);
  for (size_t i = 0; i < 2; ++i)
    check_same(conv_cpu.weights()[i], conv_gpu.weights()[i]);

  // Dropout's mask is drawn on the input's device, from its host step counter.
  k::layers::Dropout drop_cpu(0.5, 21), drop_gpu(0.5, 21);
  const k::Tensor ones = k::ones({4, 8});
  check_same(drop_cpu(ones, true), drop_gpu(ones.to(gpu), true));
  check_same(drop_cpu(ones, true), drop_gpu(ones.to(gpu), true));
}

TEST_CASE("device variables: a model on a GPU saves and loads its weights") {
  MockGpu mock;
  kiln::testing::TempDir dir;
  auto model = [] {
    return k::Sequential({k::layers::Dense(4, "relu", {3}, true, "glorot_uniform", "zeros", "d1"),
                          k::layers::Dense(2, "", {}, true, "glorot_uniform", "zeros", "d2")});
  };
  k::set_random_seed(5);
  // Made under the scope: its first layer declares input_shape, so (as in Keras) it is built,
  // its weights made, when it is made.
  k::Sequential gpu_model = [&] {
    k::DeviceScope on(gpu);
    return model();
  }();
  const std::vector<k::Variable> weights = gpu_model.weights();
  REQUIRE(weights.size() == 4);
  for (const k::Variable& v : weights)
    CHECK(v.device() == gpu);

  // Saved from host copies; the file holds the values.
  const std::string path = dir.file("gpu.safetensors");
  gpu_model.save_weights(path);
  const auto saved = k::safetensors::load(path);
  REQUIRE(saved.size() == 4);
  for (const auto& [name, t] : saved) {
    INFO(name);
    CHECK(t.device() == k::Device::cpu());
    bool found = false;
    for (const k::Variable& v : weights) {
      if (v.name() != name) continue;
      found = true;
      CHECK(values(v.value()) == values(t));
    }
    CHECK(found);
  }

  // Loaded into a GPU model (copied to the device) and into a CPU one.
  k::set_random_seed(99);
  k::Sequential other_gpu = [&] {
    k::DeviceScope on(gpu);
    return model();
  }();
  other_gpu.load_weights(path);
  k::Sequential on_cpu = model();
  on_cpu.build({3});
  on_cpu.load_weights(path);
  for (size_t i = 0; i < weights.size(); ++i) {
    INFO(weights[i].name());
    CHECK(other_gpu.weights()[i].device() == gpu);
    CHECK(values(other_gpu.weights()[i].value()) == values(weights[i].value()));
    CHECK(values(on_cpu.weights()[i].value()) == values(weights[i].value()));
  }
  // And the other way: CPU weights into the GPU model.
  on_cpu.weights()[0].assign(k::zeros(on_cpu.weights()[0].shape()));
  on_cpu.save_weights(dir.file("cpu.safetensors"));
  other_gpu.load_weights(dir.file("cpu.safetensors"));
  CHECK(other_gpu.weights()[0].device() == gpu);
  for (double x : values(other_gpu.weights()[0].value()))
    CHECK(x == 0.0);

  // model.save traces the inference function (the variables read symbolically) and writes host
  // copies of the weights; the saved model predicts as the CPU model with those weights.
  gpu_model.save(dir.file("saved"), 2);
  const k::SavedModel loaded = k::load_model(dir.file("saved"));
  const k::Tensor x = k::random_uniform({2, 3}, -1.0, 1.0, 31);
  k::Sequential same_on_cpu = model();
  same_on_cpu.build({3});
  same_on_cpu.load_weights(path);
  const std::vector<double> want = values(same_on_cpu.predict(x)), got = values(loaded.predict(x));
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i)
    CHECK(got[i] == Approx(want[i]).epsilon(1e-6));

  // EarlyStopping's kept weights (values read on the device) restore there too.
  other_gpu.weights()[1].assign(weights[1].value());
  CHECK(values(other_gpu.weights()[1].value()) == values(weights[1].value()));
}

TEST_CASE("device variables: without a usable driver, GPU variables are a clean DeviceError") {
  const cu::DriverStatus& status = cu::driver_status();
  if (status.available()) {
    WARN("a CUDA driver is present: " << status.message);
    return;
  }
  // On the CPU, nothing changes.
  k::Variable c(k::constant({1.f, 2.f}), "c");
  c.assign_add(k::constant({1.f, 1.f}));
  CHECK(c.value().to_vector<float>() == std::vector<float>{2.f, 3.f});
  CHECK(c.device() == k::Device::cpu());
  // A GPU cannot be had, for a variable's value or for a layer's weights.
  CHECK_THROWS_AS(k::Variable(k::constant(1.f).to(gpu), "g"), k::DeviceError);
  const std::string message = error_of<k::DeviceError>(
      [] { (void)VariableAccess::create(k::constant(1.f).host(), "made", true, gpu); });
  CHECK_THAT(message, Contains("Variable 'made': cuda:0 cannot be used ("));
  CHECK_THAT(message, Contains(status.message));
  k::layers::Dense dense(2);
  CHECK_THROWS_AS(
      [&] {
        k::DeviceScope on(gpu);
        dense.build({1, 2});
      }(),
      k::DeviceError);
  CHECK_FALSE(dense.built());
}
