// Ahead-of-time libraries (kiln::aot): compiled, loaded with dlopen, run through their C API and
// compared with the JIT; used from C and C++ programs; built for another CPU; a training step
// trained from the library; and every kind of bad input.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <kiln/kiln.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../examples/main_job_models.h"
#include "aot_test_util.h"
#include "cli_test_util.h"
#include "error_test_util.h"
#include "file_test_util.h"

namespace k = kiln;
using k::testing::AotLibrary;
using k::testing::check_close;
using k::testing::TempDir;

namespace {

using RunFn = int(void*, const float*, float*);

auto poly_function() {
  return k::function([](const k::Tensor& x) { return 10.f * x * x - 5.f * x + 4.f; }, "poly");
}

k::Tensor poly_input() {
  return k::constant({-2.f, -0.5f, 0.f, 0.25f, 1.f, 3.f});
}

// A model of the main job built (weights drawn from a fixed seed) for f32 images.
k::Sequential built(k::Sequential model) {
  k::set_random_seed(5);
  model(k::zeros({1, 28, 28}));
  return model;
}

// Compiles the program `source` in `dir` against libpoly.so there with `compiler` (plain words),
// runs it and returns its output.
std::string build_and_run(const TempDir& dir, const std::string& compiler,
                          const std::string& source) {
  std::vector<std::string> argv = k::testing::words(compiler);
  for (std::string a : {dir.file(source), "-L" + dir.path.string(), std::string("-lpoly"),
                        std::string("-Wl,-rpath,$ORIGIN"), std::string("-o"), dir.file("main")})
    argv.push_back(a);
  k::testing::Outcome build = k::testing::run(argv);
  INFO(build.out);
  REQUIRE(build.status == 0);
  k::testing::Outcome run = k::testing::run({dir.file("main")});
  INFO(run.out);
  REQUIRE(run.status == 0);
  return run.out;
}

k::Tensor images(int64_t n, uint64_t seed) {
  return k::random_uniform({n, 28, 28}, 0.0, 1.0, seed);
}

}  // namespace

TEST_CASE("aot: the tutorial polynomial compiles, loads and matches the JIT", "[aot]") {
  TempDir dir;
  auto poly = poly_function();
  const k::Tensor x = poly_input();
  const k::aot::Library lib = k::aot::compile(poly, {k::TensorSpec({6}, k::f32)},
                                              {.name = "poly", .out_dir = dir.file("out")});
  CHECK(lib.library == dir.file("out/libpoly.so"));
  CHECK(lib.header == dir.file("out/poly.h"));
  CHECK(lib.weights.empty());
  // Only the library and its header are left: no temporary files.
  std::set<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir.file("out")))
    files.insert(entry.path().filename().string());
  CHECK(files == std::set<std::string>{"libpoly.so", "poly.h"});

  AotLibrary so(lib.library, "poly");
  void* model = so.create();
  float y[6];
  REQUIRE(so.fn<RunFn>("run")(model, x.host().data<float>(), y) == 0);
  check_close(y, poly(x));
  CHECK(y[4] == Approx(9.f));
  CHECK(so.last_error(model).empty());
  so.destroy(model);
}

TEST_CASE("aot: the library needs only libc, libm and libpthread and exports only its API",
          "[aot]") {
  TempDir dir;
  const k::aot::Library lib =
      k::aot::compile(poly_function(), {k::TensorSpec({6})}, {.name = "poly", .out_dir = dir.path});
  k::testing::check_needs_only_libc(lib.library);
  k::testing::Outcome symbols = k::testing::run({"nm", "-D", "--defined-only", lib.library});
  REQUIRE(symbols.status == 0);
  std::istringstream lines(symbols.out);
  int exported = 0;
  for (std::string line; std::getline(lines, line);) {
    const std::string symbol = line.substr(line.rfind(' ') + 1);
    INFO(symbol);
    CHECK(symbol.rfind("poly_", 0) == 0);
    ++exported;
  }
  CHECK(exported == 7);  // create, create_from, run, last_error, save_weights, destroy, threads
}

TEST_CASE("aot: a C program includes the header and links the library", "[aot]") {
  if (!k::testing::have("cc")) {
    WARN("skipped: no C compiler (cc)");
    return;
  }
  TempDir dir;
  auto poly = poly_function();
  k::aot::compile(poly, {k::TensorSpec({6})}, {.name = "poly", .out_dir = dir.path});
  k::testing::write_bytes(dir.file("main.c"), R"(#include <stdio.h>
#include "poly.h"

int main(void) {
  const float x[POLY_INPUT0_SIZE] = {-2.f, -0.5f, 0.f, 0.25f, 1.f, 3.f};
  float y[POLY_OUTPUT0_SIZE];
  const long long shape[POLY_INPUT0_RANK] = POLY_INPUT0_SHAPE;
  poly_model* model;
  int i;
  if (poly_set_num_threads(1) != 0) return 2;
  model = poly_create();
  if (model == NULL) {
    fprintf(stderr, "%s\n", poly_last_error(NULL));
    return 1;
  }
  if (poly_run(model, x, y) != 0) {
    fprintf(stderr, "%s\n", poly_last_error(model));
    return 1;
  }
  printf("%s %s %lld:", POLY_INPUT0_DTYPE, POLY_OUTPUT0_NAME, shape[0]);
  for (i = 0; i < POLY_OUTPUT0_SIZE; ++i) printf(" %.4f", y[i]);
  printf("\n");
  poly_destroy(model);
  return 0;
}
)");
  const std::string out =
      build_and_run(dir, "cc -std=c99 -Wall -Wextra -Werror -pedantic", "main.c");
  CHECK(out == "f32 output0 6: 54.0000 9.0000 4.0000 3.3750 9.0000 79.0000\n");
  // The program itself needs no libstdc++ either.
  CHECK(k::testing::needed(dir.file("main")).count("libstdc++.so.6") == 0);
}

TEST_CASE("aot: the header's C++ wrapper owns the model and throws on errors", "[aot]") {
  if (!k::testing::have("c++")) {
    WARN("skipped: no C++ compiler (c++)");
    return;
  }
  TempDir dir;
  k::aot::compile(poly_function(), {k::TensorSpec({6})}, {.name = "poly", .out_dir = dir.path});
  k::testing::write_bytes(dir.file("main.cpp"), R"(#include <cstdio>
#include <stdexcept>
#include "poly.h"

int main() {
  poly::Model model;
  const float x[6] = {-2.f, -0.5f, 0.f, 0.25f, 1.f, 3.f};
  float y[6];
  model.run(x, y);
  std::printf("%.4f %.4f\n", y[0], y[5]);
  try {
    model.run(nullptr, y);
  } catch (const std::runtime_error& e) {
    std::printf("caught: %s\n", e.what());
  }
  try {
    poly::Model missing("/nonexistent/poly.safetensors");
  } catch (const std::runtime_error& e) {
    std::printf("caught: %s\n", e.what());
  }
  return 0;
}
)");
  const std::string out = build_and_run(dir, "c++ -std=c++17 -Wall -Wextra -Werror", "main.cpp");
  CHECK(out.rfind("54.0000 79.0000\ncaught: ", 0) == 0);
  CHECK(out.find("NULL") != std::string::npos);
  CHECK(out.find("/nonexistent/poly.safetensors") != std::string::npos);
}

TEST_CASE("aot: the Fashion-MNIST MLP from its saved model matches the JIT", "[aot]") {
  TempDir dir;
  k::Sequential mlp = built(main_job::mlp());
  mlp.save(dir.file("saved"), /*batch_size=*/4);
  k::SavedModel saved = k::load_model(dir.file("saved"));
  const k::aot::Library lib = k::aot::compile(saved, {.name = "fashion", .out_dir = dir.path});

  const k::Tensor x = images(4, 21);
  const k::Tensor expected = saved(x);
  AotLibrary so(lib.library, "fashion");
  void* model = so.create();
  check_close(so.run(model, x, 40).data(), expected);
  // Unaligned buffers take a copy, with the same results.
  std::vector<float> in(4 * 784 + 1), out(41);
  std::copy_n(x.host().data<float>(), 4 * 784, in.begin() + 1);
  REQUIRE(so.fn<RunFn>("run")(model, in.data() + 1, out.data() + 1) == 0);
  check_close(out.data() + 1, expected);
  so.destroy(model);
}

TEST_CASE("aot: the convnet with external weights matches the JIT", "[aot][heavy]") {
  TempDir dir;
  k::Sequential convnet = built(main_job::convnet());
  convnet.save(dir.file("saved"), /*batch_size=*/2);
  k::SavedModel saved = k::load_model(dir.file("saved"));
  const k::aot::Library lib = k::aot::compile(
      saved, {.name = "convnet", .out_dir = dir.path, .weights = k::aot::Weights::external});
  REQUIRE(lib.weights == dir.file("convnet.safetensors"));
  CHECK(std::filesystem::file_size(lib.library) < 2'000'000);  // no weights inside

  const k::Tensor x = images(2, 8);
  const k::Tensor expected = saved(x);
  AotLibrary so(lib.library, "convnet");
  // No embedded weights: create() says where to get them.
  CHECK(so.fn<void*()>("create")() == nullptr);
  CHECK(so.last_error(nullptr).find("not embedded") != std::string::npos);
  void* model = so.create(lib.weights.c_str());
  check_close(so.run(model, x, 20).data(), expected);
  so.destroy(model);
}

TEST_CASE("aot: --target-cpu x86-64-v3 gives a library without AVX-512 that runs", "[aot]") {
  TempDir dir;
  k::Sequential mlp = built(main_job::mlp());
  mlp.save(dir.file("saved"), /*batch_size=*/3);
  k::SavedModel saved = k::load_model(dir.file("saved"));
  const k::aot::Library v3 =
      k::aot::compile(saved, {.name = "mlp_v3", .out_dir = dir.path, .target_cpu = "x86-64-v3"});
  // AVX-512 code uses zmm registers (and the mask registers); AVX2 code never does.
  auto count = [](const std::string& library, const std::string& what) {
    k::testing::Outcome o =
        k::testing::run({"objdump", "-d", "--no-show-raw-insn", library}, /*with_stderr=*/false);
    REQUIRE(o.status == 0);
    int lines = 0;
    std::istringstream in(o.out);
    for (std::string line; std::getline(in, line);)
      lines += line.find(what) != std::string::npos;
    return lines;
  };
  CHECK(count(v3.library, "%zmm") == 0);
  CHECK(count(v3.library, "%ymm") > 100);  // the AVX2 GEMM
  const k::aot::Library native =
      k::aot::compile(saved, {.name = "mlp_native", .out_dir = dir.path});
  if (k::testing::read_bytes("/proc/cpuinfo").find("avx512f") != std::string::npos)
    CHECK(count(native.library, "%zmm") > 100);

  const k::Tensor x = images(3, 2);
  const k::Tensor expected = saved(x);
  AotLibrary so(v3.library, "mlp_v3");
  void* model = so.create();
  check_close(so.run(model, x, 30).data(), expected,
              1e-5);  // other blocking, other summation order
  so.destroy(model);
}

TEST_CASE("aot: a compiled training step trains the MLP like the JIT", "[aot]") {
  TempDir dir;
  k::Sequential mlp = built(main_job::mlp());
  k::optimizers::Adam adam(0.001);
  k::losses::SparseCategoricalCrossentropy loss_fn;
  auto step = k::function(
      [&](const k::Tensor& x, const k::Tensor& y) {
        k::GradientTape tape;
        k::Tensor loss = loss_fn(y, mlp(x, /*training=*/true));
        std::vector<k::Variable> vars = mlp.trainable_weights();
        adam.apply_gradients(tape.gradient(loss, std::span<const k::Variable>(vars)), vars);
        return loss;
      },
      "train_step");
  constexpr int64_t kBatch = 16;
  // The library holds the variables (and Adam's slots) at their values now.
  const k::aot::Library lib =
      k::aot::compile(step, {k::TensorSpec({kBatch, 28, 28}), k::TensorSpec({kBatch}, k::i32)},
                      {.name = "mlp_train", .out_dir = dir.path});

  AotLibrary so(lib.library, "mlp_train");
  void* model = so.create();
  auto run = so.fn<int(void*, const float*, const int32_t*, float*)>("run");
  for (int s = 0; s < 4; ++s) {
    const k::Tensor x = images(kBatch, 100 + s);
    const k::Tensor y = k::cast(k::floor(k::random_uniform({kBatch}, 0.0, 10.0, 200 + s)), k::i32);
    const k::Tensor jit_loss = step(x, y);
    float aot_loss = 0;
    REQUIRE(run(model, x.host().data<float>(), y.host().data<int32_t>(), &aot_loss) == 0);
    INFO("step " << s);
    check_close(&aot_loss, jit_loss);
  }
  // The trained weights, written by the library, are the JIT's.
  REQUIRE(so.fn<int(void*, const char*)>("save_weights")(
              model, dir.file("trained.safetensors").c_str()) == 0);
  std::map<std::string, k::Tensor> trained;
  for (auto& [name, t] : k::safetensors::load(dir.file("trained.safetensors")))
    trained.emplace(name, t);
  for (const k::Variable& v : mlp.weights()) {
    INFO(v.name());
    REQUIRE(trained.count(v.name()) == 1);
    check_close(trained.at(v.name()).host().data<float>(), v.value(), 1e-5);
  }
  // A new instance from the trained weights goes on from there.
  void* resumed = so.create(dir.file("trained.safetensors").c_str());
  const k::Tensor x = images(kBatch, 300);
  const k::Tensor y = k::cast(k::floor(k::random_uniform({kBatch}, 0.0, 10.0, 301)), k::i32);
  float a = 0, b = 0;
  REQUIRE(run(model, x.host().data<float>(), y.host().data<int32_t>(), &a) == 0);
  REQUIRE(run(resumed, x.host().data<float>(), y.host().data<int32_t>(), &b) == 0);
  CHECK(a == b);
  so.destroy(resumed);
  so.destroy(model);
}

TEST_CASE("aot: bad options and inputs are errors that leave no library behind", "[aot]") {
  TempDir dir;
  auto poly = poly_function();
  const std::vector<k::TensorSpec> spec{k::TensorSpec({6})};
  auto nothing_written = [&](const std::string& folder) {
    std::error_code ec;
    if (!std::filesystem::exists(folder, ec)) return true;
    return std::filesystem::is_empty(folder, ec);
  };
  SECTION("a name that is not a C identifier") {
    for (const char* name : {"", "2fast", "my-model", "class", "kiln_x"}) {
      INFO(name);
      CHECK_THAT(k::testing::error_of<k::ValueError>([&] {
                   k::aot::compile(poly, spec, {.name = name, .out_dir = dir.file("a")});
                 }),
                 Catch::Contains("C identifier"));
    }
    CHECK(nothing_written(dir.file("a")));
  }
  SECTION("an unknown target CPU") {
    CHECK_THAT(k::testing::error_of<k::CompileError>([&] {
                 k::aot::compile(poly, spec,
                                 {.name = "p", .out_dir = dir.file("b"), .target_cpu = "pentium9"});
               }),
               Catch::Contains("unknown target CPU 'pentium9'"));
    CHECK(nothing_written(dir.file("b")));
  }
  SECTION("the wrong number of specs") {
    CHECK_THAT(k::testing::error_of<k::ValueError>(
                   [&] { k::aot::compile(poly, {}, {.name = "p", .out_dir = dir.path}); }),
               Catch::Contains("takes 1 tensor arguments, but 0"));
  }
  SECTION("an unwritable output folder") {
    k::testing::write_bytes(dir.file("file"), "x");
    CHECK_THROWS_AS(k::aot::compile(poly, spec, {.name = "p", .out_dir = dir.file("file/sub")}),
                    k::IOError);
    CHECK_THROWS_AS(k::aot::compile(poly, spec, {.name = "p", .out_dir = dir.file("file")}),
                    k::IOError);
  }
  SECTION("a linker that fails") {
    setenv("KILN_AOT_CXX", "false", 1);
    CHECK_THAT(k::testing::error_of<k::CompileError>(
                   [&] { k::aot::compile(poly, spec, {.name = "p", .out_dir = dir.file("c")}); }),
               Catch::Contains("linking libp.so failed"));
    setenv("KILN_AOT_CXX", "/nonexistent/c++", 1);
    CHECK_THAT(k::testing::error_of<k::CompileError>(
                   [&] { k::aot::compile(poly, spec, {.name = "p", .out_dir = dir.file("c")}); }),
               Catch::Contains("cannot run the C++ compiler driver"));
    unsetenv("KILN_AOT_CXX");
    CHECK(nothing_written(dir.file("c")));
  }
  SECTION("an existing library is replaced whole or not at all") {
    k::aot::compile(poly, spec, {.name = "p", .out_dir = dir.file("d")});
    const std::string before = k::testing::read_bytes(dir.file("d/libp.so"));
    setenv("KILN_AOT_CXX", "false", 1);
    CHECK_THROWS_AS(k::aot::compile(poly, spec, {.name = "p", .out_dir = dir.file("d")}),
                    k::CompileError);
    unsetenv("KILN_AOT_CXX");
    CHECK(k::testing::read_bytes(dir.file("d/libp.so")) == before);
    size_t files = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.file("d")))
      ++files;
    CHECK(files == 2);
  }
}

TEST_CASE("aot: create_from rejects a weights file that does not fit", "[aot]") {
  TempDir dir;
  k::testing::saved_mlp(dir);  // Dense 5 "hidden", Dense 2 "out" on [2, 3, 4]
  k::SavedModel saved = k::load_model(dir.file("mlp"));
  const k::aot::Library lib = k::aot::compile(
      saved, {.name = "small", .out_dir = dir.path, .weights = k::aot::Weights::external});
  AotLibrary so(lib.library, "small");
  auto create_from = so.fn<void*(const char*)>("create_from");
  auto rejects = [&](const std::string& path, const std::string& why) {
    void* model = create_from(path.c_str());
    CHECK(model == nullptr);
    const std::string error = so.last_error(nullptr);
    INFO(error);
    CHECK(error.find(why) != std::string::npos);
  };
  rejects(dir.file("missing.safetensors"), "missing.safetensors");
  k::testing::write_bytes(dir.file("garbage.safetensors"), "not a safetensors file at all");
  rejects(dir.file("garbage.safetensors"), "garbage.safetensors");
  // Another model's weights: the shapes differ.
  k::Sequential other({k::layers::Flatten({3, 4}),
                       k::layers::Dense(7, "relu", {}, true, "glorot_uniform", "zeros", "hidden"),
                       k::layers::Dense(2, "softmax", {}, true, "glorot_uniform", "zeros", "out")},
                      "mlp");
  other.save(dir.file("other"), 2);
  rejects(dir.file("other/weights.safetensors"), "hidden/kernel");
  // The right weights work, and give what the JIT gives.
  void* model = so.create(lib.weights.c_str());
  const k::Tensor x = k::random_normal({2, 3, 4}, 0.0, 1.0, 4);
  float y[4];
  REQUIRE(so.fn<RunFn>("run")(model, x.host().data<float>(), y) == 0);
  check_close(y, saved(x));
  so.destroy(model);
}

TEST_CASE("kiln aot compiles the Fashion-MNIST MLP's saved model", "[aot][tool]") {
  TempDir dir;
  built(main_job::mlp()).save(dir.file("saved"), /*batch_size=*/2);
  k::testing::Outcome o = k::testing::kiln_cli(
      fmt::format("aot {} -o {}", dir.file("saved"), dir.file("build/libfashion.so")));
  INFO(o.out);
  REQUIRE(o.status == 0);
  CHECK_THAT(o.out, Catch::Contains("wrote " + dir.file("build/libfashion.so")) &&
                        Catch::Contains(dir.file("build/fashion.h")));
  CHECK_THAT(k::testing::read_bytes(dir.file("build/fashion.h")),
             Catch::Contains(
                 "int fashion_run(fashion_model* model, const float* input0, float* output0);") &&
                 Catch::Contains("#define FASHION_INPUT0_SHAPE {2, 28, 28}") &&
                 Catch::Contains("#define FASHION_OUTPUT0_SIZE 20"));

  const k::Tensor x = images(2, 5);
  AotLibrary so(dir.file("build/libfashion.so"), "fashion");
  void* model = so.create();
  check_close(so.run(model, x, 20).data(), k::load_model(dir.file("saved"))(x));
  so.destroy(model);

  // --name, --weights external and another file name; an existing libmnist.so is left alone.
  std::filesystem::create_directories(dir.file("other"));
  k::testing::write_bytes(dir.file("other/libmnist.so"), "not touched");
  o = k::testing::kiln_cli(
      fmt::format("aot {} -o {} --name mnist --weights external --target-cpu x86-64-v3",
                  dir.file("saved"), dir.file("other/mnist-v3.so")));
  INFO(o.out);
  REQUIRE(o.status == 0);
  for (const char* file : {"other/mnist-v3.so", "other/mnist.h", "other/mnist.safetensors"}) {
    INFO(file);
    CHECK(std::filesystem::is_regular_file(dir.file(file)));
  }
  CHECK(k::testing::read_bytes(dir.file("other/libmnist.so")) == "not touched");
}

TEST_CASE("kiln aot says what is wrong and writes no library", "[aot][tool]") {
  TempDir dir;
  k::testing::saved_mlp(dir);
  auto fails = [&](const std::string& args, int status, const std::string& message) {
    k::testing::Outcome o = k::testing::kiln_cli("aot " + args);
    INFO(args << "\n" << o.out);
    CHECK(o.status == status);
    CHECK_THAT(o.out, Catch::Contains(message));
    CHECK(!std::filesystem::exists(dir.file("out/libm.so")));
  };
  const std::string out = " -o " + dir.file("out/libm.so");
  fails(dir.file("mlp"), 2, "--output is required");
  fails(dir.file("mlp") + out + " --weights cloud", 2, "--weights: cloud not in");
  fails(dir.file("mlp") + out + " --opt-level 9", 2, "--opt-level: Value 9 not in range 0 to 3");
  fails(dir.file("mlp") + out + " --opt-level two", 2, "--opt-level");
  fails(dir.file("mlp") + " -o " + dir.file("out/model.bin"), 2, "give --name NAME");
  fails(dir.file("mlp") + out + " --name 9lives", 1, "C identifier");
  fails(dir.file("mlp") + out + " --target-cpu pentium9", 1, "unknown target CPU 'pentium9'");
  // A corrupt model directory: no weights, then IR that does not parse.
  std::filesystem::create_directories(dir.file("broken"));
  std::filesystem::copy_file(dir.file("mlp/model.kiln"), dir.file("broken/model.kiln"));
  fails(dir.file("broken") + out, 1, "weights.safetensors is missing");
  k::testing::write_bytes(dir.file("broken/weights.safetensors"),
                          k::testing::read_bytes(dir.file("mlp/weights.safetensors")));
  k::testing::write_bytes(dir.file("broken/model.kiln"), "func @f(%x: f32[2]) -> f32[2] {\n");
  fails(dir.file("broken") + out, 1, "model.kiln");
  // An op the compiler does not know.
  k::testing::write_bytes(
      dir.file("odd.kiln"),
      "func @odd(%x: f32[2]) -> (f32[2]) {\n  %y = frobnicate(%x)\n  return %y\n}\n");
  fails(dir.file("odd.kiln") + out, 1, "frobnicate");
  // An output folder that cannot be made.
  k::testing::write_bytes(dir.file("file"), "x");
  fails(dir.file("mlp") + " -o " + dir.file("file/libm.so"), 1, "cannot create the output folder");
}

TEST_CASE("aot: the C example classifies the Fashion-MNIST test set as the JIT does",
          "[aot][example]") {
  const std::string data = k::datasets::fashion_mnist::kDirectory;
  if (!std::filesystem::exists(data + "/t10k-images-idx3-ubyte.gz") || !k::testing::have("cc")) {
    WARN("skipped: needs the dataset-fashion-mnist package and a C compiler");
    return;
  }
  TempDir dir;
  constexpr int64_t kBatch = 500;
  built(main_job::mlp()).save(dir.file("saved"), kBatch);
  k::aot::compile(k::load_model(dir.file("saved")), {.name = "fashion", .out_dir = dir.path});
  k::testing::Outcome build = k::testing::run_words(fmt::format(
      "cc -std=c99 -O2 -Wall -Wextra -Werror {}/examples/aot_classify.c -I{} -L{} -lfashion -lz "
      "-Wl,-rpath,{} -o {}",
      KILN_SOURCE_DIR, dir.path.string(), dir.path.string(), dir.path.string(),
      dir.file("classify")));
  INFO(build.out);
  REQUIRE(build.status == 0);
  k::testing::Outcome run = k::testing::run({dir.file("classify"), data});
  INFO(run.out);
  REQUIRE(run.status == 0);

  // The same count from the JIT-compiled saved model, batch by batch.
  auto [train, test] = k::datasets::fashion_mnist::load_data();
  k::SavedModel saved = k::load_model(dir.file("saved"));
  const k::Tensor x = k::cast(test.images, k::f32) / 255.f;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < 10000; begin += kBatch) {
    const k::Tensor scores = saved(x.index({k::Slice(begin, begin + kBatch)}));
    const k::Tensor labels = test.labels.index({k::Slice(begin, begin + kBatch)});
    correct += k::reduce_sum(k::cast(k::equal(k::argmax(scores, 1, k::i32), labels), k::i32))
                   .item<int32_t>();
  }
  CHECK_THAT(run.out, Catch::StartsWith(fmt::format("test accuracy {:.4f} ({} of 10000 images)",
                                                    double(correct) / 10000, correct)));
}

TEST_CASE("aot: check_numerics in a compiled step fails the run and keeps the state", "[aot]") {
  TempDir dir;
  k::Variable w(k::constant({1.f, 2.f}), "w");
  auto step = k::function(
      [&](const k::Tensor& x) {
        k::Tensor loss = k::check_numerics(k::reduce_sum(k::log(x) * w.value()), "loss");
        w.assign_sub(0.5f * x);
        return loss;
      },
      "step");
  const k::aot::Library lib =
      k::aot::compile(step, {k::TensorSpec({2})}, {.name = "checked", .out_dir = dir.path});
  // The check is not an output: NAME_run takes the input and the loss only.
  CHECK_THAT(k::testing::read_bytes(lib.header),
             Catch::Contains("int checked_run(checked_model* model, const float* input0, "
                             "float* output0);"));
  AotLibrary so(lib.library, "checked");
  void* model = so.create();
  auto run = so.fn<RunFn>("run");
  const float good[2] = {1.f, 1.f}, bad[2] = {-1.f, 1.f};
  float loss = -1;
  REQUIRE(run(model, good, &loss) == 0);
  CHECK(loss == 0.f);
  CHECK(run(model, bad, &loss) != 0);
  CHECK_THAT(so.last_error(model), Catch::Contains("check_numerics: loss") &&
                                       Catch::Contains("found NaN") &&
                                       Catch::Contains("the state was not updated"));
  // w went 1, 2 → 0.5, 1.5 after the good step and stayed there.
  REQUIRE(so.fn<int(void*, const char*)>("save_weights")(model,
                                                         dir.file("w.safetensors").c_str()) == 0);
  const k::Tensor saved = k::safetensors::load(dir.file("w.safetensors")).at(0).second;
  CHECK(saved.host().data<float>()[0] == 0.5f);
  CHECK(saved.host().data<float>()[1] == 1.5f);
  so.destroy(model);
}

TEST_CASE("aot: a function with no inputs and no outputs compiles and updates its state", "[aot]") {
  TempDir dir;
  k::Variable count(k::constant(0.f), "count");
  auto tick = k::function([&]() { count.assign_add(k::constant(1.f)); }, "tick");
  const k::aot::Library lib = k::aot::compile(tick, {}, {.name = "tick", .out_dir = dir.path});
  CHECK_THAT(k::testing::read_bytes(lib.header),
             Catch::Contains("int tick_run(tick_model* model);"));
  AotLibrary so(lib.library, "tick");
  void* model = so.create();
  for (int i = 0; i < 3; ++i)
    REQUIRE(so.fn<int(void*)>("run")(model) == 0);
  REQUIRE(so.fn<int(void*, const char*)>("save_weights")(model,
                                                         dir.file("t.safetensors").c_str()) == 0);
  CHECK(k::safetensors::load(dir.file("t.safetensors")).at(0).second.item<float>() == 3.f);
  so.destroy(model);
}

TEST_CASE("aot: names that would break a C or C++ user are refused", "[aot]") {
  TempDir dir;
  auto poly = poly_function();
  for (const char* name :
       {"continue", "and", "virtual", "_Unwind", "linux", "int64_t", "math", "stdint", "std"}) {
    INFO(name);
    CHECK_THAT(k::testing::error_of<k::ValueError>([&] {
                 k::aot::compile(poly, {k::TensorSpec({6})}, {.name = name, .out_dir = dir.path});
               }),
               Catch::Contains("C identifier"));
  }
  k::Variable surrogate(k::constant(1.f), "w\xed\xa0\x80");  // not UTF-8: a surrogate
  auto odd = k::function([&](const k::Tensor& x) { return x * surrogate.value(); }, "odd");
  CHECK_THAT(k::testing::error_of<k::ValueError>([&] {
               k::aot::compile(odd, {k::TensorSpec({2})}, {.name = "odd", .out_dir = dir.path});
             }),
             Catch::Contains("cannot name a tensor"));
  k::Variable meta(k::constant(1.f), "__metadata__");
  auto reads = k::function([&](const k::Tensor& x) { return x * meta.value(); }, "reads");
  CHECK_THAT(k::testing::error_of<k::ValueError>([&] {
               k::aot::compile(reads, {k::TensorSpec({2})}, {.name = "reads", .out_dir = dir.path});
             }),
             Catch::Contains("%__metadata__ cannot name a tensor"));
  CHECK(std::filesystem::is_empty(dir.path));
}

TEST_CASE("aot: a plain C program trains the MLP on Fashion-MNIST (examples/aot_train.c)",
          "[aot][example]") {
#ifndef KILN_AOT_TRAIN_STEP
  WARN("skipped: the examples are not built");
#else
  const std::string data = k::datasets::fashion_mnist::kDirectory;
  if (!std::filesystem::exists(data + "/train-images-idx3-ubyte.gz") || !k::testing::have("cc")) {
    WARN("skipped: needs the dataset-fashion-mnist package and a C compiler");
    return;
  }
  TempDir dir;
  k::testing::Outcome step = k::testing::run({KILN_AOT_TRAIN_STEP, dir.path.string()});
  INFO(step.out);
  REQUIRE(step.status == 0);
  k::testing::Outcome build = k::testing::run_words(fmt::format(
      "cc -std=c99 -O2 -Wall -Wextra -Werror {}/examples/aot_train.c -I{} -L{} -lmnist_train -lz "
      "-Wl,-rpath,{} -o {}",
      KILN_SOURCE_DIR, dir.path.string(), dir.path.string(), dir.path.string(), dir.file("train")));
  INFO(build.out);
  REQUIRE(build.status == 0);
  k::testing::Outcome run =
      k::testing::run({dir.file("train"), data, "1", dir.file("w.safetensors")});
  INFO(run.out);
  REQUIRE(run.status == 0);
  // One epoch of RMSprop from seeded Glorot weights, in order: 0.5592 and 0.8002 on this
  // machine; the margin leaves room for another summation order, not for a broken step.
  float loss = 0, accuracy = 0;
  REQUIRE(std::sscanf(run.out.c_str(), "epoch 1: loss %f, accuracy %f", &loss, &accuracy) == 2);
  CHECK(loss == Approx(0.5592).margin(0.005));
  CHECK(accuracy == Approx(0.8002).margin(0.005));
  // The saved state is every state tensor the header declares, none of them NaN.
  const std::string header = k::testing::read_bytes(dir.file("mnist_train.h"));
  const size_t at = header.find("#define MNIST_TRAIN_NUM_STATE ");
  REQUIRE(at != std::string::npos);
  const size_t num_state = std::stoul(header.substr(at + 30));
  auto saved = k::safetensors::load(dir.file("w.safetensors"));
  CHECK(saved.size() == num_state);
  CHECK(num_state >= 8);  // two Dense layers' kernels and biases, and RMSprop's slots
  for (const auto& [name, t] : saved) {
    if (t.dtype() != k::f32) continue;
    INFO(name);
    const float* values = t.host().data<float>();
    CHECK(std::all_of(values, values + t.size(), [](float v) { return std::isfinite(v); }));
  }
#endif
}

TEST_CASE("aot: separate instances run concurrently on several threads", "[aot]") {
  TempDir dir;
  k::Sequential mlp = built(main_job::mlp());
  mlp.save(dir.file("saved"), /*batch_size=*/2);
  k::SavedModel saved = k::load_model(dir.file("saved"));
  const k::aot::Library lib = k::aot::compile(saved, {.name = "shared", .out_dir = dir.path});
  AotLibrary so(lib.library, "shared");
  // Looked up here: Catch's assertions (in fn) are not for other threads.
  auto run = so.fn<RunFn>("run");
  auto create = so.fn<void*()>("create");
  auto destroy = so.fn<void(void*)>("destroy");
  const k::Tensor x = images(2, 77);
  const k::Tensor expected = saved(x);
  constexpr int kThreads = 4, kRuns = 50;
  std::vector<std::vector<float>> results(kThreads, std::vector<float>(20));
  std::vector<int> failures(kThreads, 0);
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        void* model = create();
        for (int r = 0; r < kRuns && model != nullptr; ++r)
          failures[t] += run(model, x.host().data<float>(), results[t].data()) != 0;
        if (model == nullptr) failures[t] = -1;
        destroy(model);
      });
    }
    for (std::thread& th : threads)
      th.join();
  }
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t);
    CHECK(failures[t] == 0);
    check_close(results[t].data(), expected);
  }
}

// ---- scans (issue 15): a recurrence is one loop in the library's code ------------------------

namespace {

// An LSTM model over sequences [batch, 6, 3], built with weights from a fixed seed.
k::Sequential lstm_model() {
  namespace L = k::layers;
  k::set_random_seed(11);
  k::Sequential model(
      {L::LSTM(5, {.return_sequences = true, .input_shape = {6, 3}}), L::LSTM(4), L::Dense(2)});
  model(k::zeros({1, 6, 3}));
  return model;
}

}  // namespace

TEST_CASE("aot: a saved LSTM model compiles and matches the JIT", "[aot][scan]") {
  TempDir dir;
  lstm_model().save(dir.file("saved"), /*batch_size=*/3);
  k::SavedModel saved = k::load_model(dir.file("saved"));
  const k::aot::Library lib = k::aot::compile(saved, {.name = "lstm", .out_dir = dir.path});
  const k::Tensor x = k::random_uniform({3, 6, 3}, -1.0, 1.0, 12);
  AotLibrary so(lib.library, "lstm");
  void* model = so.create();
  check_close(so.run(model, x, 6).data(), saved(x), 1e-5);
  so.destroy(model);

  // The kiln command's path, with the weights in a file of their own.
  k::testing::Outcome o = k::testing::kiln_cli(fmt::format(
      "aot {} -o {} --weights external", dir.file("saved"), dir.file("cli/liblstm.so")));
  INFO(o.out);
  REQUIRE(o.status == 0);
  AotLibrary cli(dir.file("cli/liblstm.so"), "lstm");
  model = cli.create(dir.file("cli/lstm.safetensors").c_str());
  check_close(cli.run(model, x, 6).data(), saved(x), 1e-5);
  cli.destroy(model);
}

TEST_CASE("aot: a GRU and a hand-written reverse scan compile and match the JIT", "[aot][scan]") {
  namespace L = k::layers;
  TempDir dir;
  k::set_random_seed(13);
  L::GRU gru(4, {.go_backwards = true});
  gru(k::zeros({2, 5, 3}));
  // Output [2, 4 + 3 + 3]: the GRU's last h, then the suffix sums of x over time (a reverse scan
  // with two carries) at t = 0 and their sum of squares.
  auto f = k::function(
      [&](const k::Tensor& x) {
        k::Tensor h = gru(x);
        k::Tensor time_major = k::transpose(x, {1, 0, 2});
        k::ScanOptions backwards;
        backwards.reverse = true;
        k::ScanResult r = k::scan(
            [](std::span<const k::Tensor> c, std::span<const k::Tensor> xs) {
              k::Tensor sum = c[0] + xs[0];
              return std::pair{std::vector{sum, c[1] + sum * sum}, std::vector{sum}};
            },
            {k::zeros({2, 3}), k::zeros({2, 3})}, {time_major}, backwards);
        k::Tensor first = k::reshape(k::split(r.ys[0], 5, 0)[0], {2, 3});
        return k::concat({h, first, r.carries[1]}, 1);
      },
      "gru_scan");
  const k::aot::Library lib =
      k::aot::compile(f, {k::TensorSpec({2, 5, 3})}, {.name = "gru_scan", .out_dir = dir.path});
  AotLibrary so(lib.library, "gru_scan");
  void* model = so.create();
  for (uint64_t seed : {1, 2}) {
    const k::Tensor x = k::random_uniform({2, 5, 3}, -1.0, 1.0, seed);
    check_close(so.run(model, x, 20).data(), f(x), 1e-5);
  }
  so.destroy(model);
}

TEST_CASE("aot: an LSTM's input gradient (a reverse scan) matches the JIT", "[aot][scan]") {
  namespace L = k::layers;
  TempDir dir;
  k::set_random_seed(17);
  L::LSTM lstm(4, {.return_sequences = true});
  lstm(k::zeros({2, 5, 3}));
  auto f = k::function(
      [&](const k::Tensor& x) {
        k::GradientTape tape;
        tape.watch(x);
        k::Tensor y = lstm(x);
        return tape.gradient(k::reduce_sum(y * y), x);
      },
      "lstm_grad");
  const k::aot::Library lib =
      k::aot::compile(f, {k::TensorSpec({2, 5, 3})}, {.name = "lstm_grad", .out_dir = dir.path});
  AotLibrary so(lib.library, "lstm_grad");
  void* model = so.create();
  const k::Tensor x = k::random_uniform({2, 5, 3}, -1.0, 1.0, 3);
  check_close(so.run(model, x, 30).data(), f(x), 1e-5);
  so.destroy(model);
}
