// Ahead-of-time libraries for NVIDIA GPUs (kiln aot --device cuda): what the library holds (a
// fatbin with a cubin per architecture plus PTX, the launch plan; NEEDED still libc only), clean
// failures where there is no driver or only the toolkit's stub, and runs end to end on the mock
// driver: the library's own copy of the runtime is handed the MockDriver's and MockCublasLt's
// tables through its testing hook, the kernels run as their host shim, and the results are the
// CPU JIT's. Building GPU libraries needs the CUDA toolkit at build time; without one these tests
// WARN and check only what needs none.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <kiln/kiln.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "aot_test_util.h"
#include "cli_test_util.h"
#include "env_test_util.h"
#include "error_test_util.h"
#include "file_test_util.h"
#include "kiln/ir/parser.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/launch_plan_blob.h"
#include "kiln/runtime/cuda/mock_cublaslt.h"
#include "kiln/runtime/cuda/mock_driver.h"
#include "mock_gpu_test_util.h"

namespace k = kiln;
namespace cu = kiln::runtime::cuda;
using Catch::Contains;
using k::testing::AotLibrary;
using k::testing::TempDir;

namespace {

#ifdef KILN_CUDA_STUB
constexpr const char* kStubPath = KILN_CUDA_STUB;
#else
constexpr const char* kStubPath = "/usr/local/cuda/lib64/stubs/libcuda.so";
#endif

k::aot::Options gpu_options(const std::string& name, const std::string& out_dir) {
  k::aot::Options options;
  options.name = name;
  options.out_dir = out_dir;
  options.device = "cuda";
  return options;
}

// The images of a fatbin: (kind, sm) pairs, kind 2 an ELF (cubin), 1 PTX. The fatbin is the one
// starting at the first 0xBA55ED50 in `bytes`: a 16-byte header (magic, version, header size,
// size of what follows), then entries of (kind u16, version u16, header size u32, payload size
// u64, ..., sm u32 at byte 28).
std::multiset<std::pair<int, int>> fatbin_images(const std::string& bytes) {
  const char magic[4] = {'\x50', '\xed', '\x55', '\xba'};
  const size_t start = bytes.find(std::string(magic, 4));
  REQUIRE(start != std::string::npos);
  auto read = [&](size_t at, size_t n) {
    REQUIRE(at + n <= bytes.size());
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
      v |= uint64_t(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
    return v;
  };
  const uint64_t header = read(start + 6, 2), size = read(start + 8, 8);
  std::multiset<std::pair<int, int>> images;
  for (size_t p = start + header; p < start + header + size;) {
    const auto kind = static_cast<int>(read(p, 2));
    const uint64_t entry_header = read(p + 4, 4), payload = read(p + 8, 8);
    images.insert({kind, static_cast<int>(read(p + 28, 4))});
    REQUIRE(entry_header >= 32);
    p += entry_header + payload;
  }
  return images;
}

// A step with state: y = x · w (a GEMM when big enough), and w ← w · 0.5 + 1.
const char* const kStepText = R"(func @step(%x: f32[32,64], %w: f32[64,16]) -> f32[32,16] {
  %0 = matmul(%x, %w) : f32[32,16]
  %1 = constant() {value = dense<f32[]: 0.5>} : f32[]
  %2 = mul(%w, %1) : f32[64,16]
  %3 = constant() {value = dense<f32[]: 1.0>} : f32[]
  %4 = add(%2, %3) : f32[64,16]
  return %0
  update %w = %4
}
)";

// The mock driver and cuBLASLt, handed to a GPU library's copy of the runtime, with the host
// shims of `graph`'s kernels registered under the library's fatbin.
// How MockedLibrary sets the library up.
struct MockSetup {
  cu::MockOptions driver;
  bool kernels = true;   // register the host shims under the fatbin
  bool cublaslt = true;  // hand it the mock cuBLASLt (else it looks for the real one)
};

// The mock driver and cuBLASLt, handed to a GPU library's copy of the runtime, with the host
// shims of `graph`'s kernels registered under the library's fatbin.
struct MockedLibrary {
  MockedLibrary(const std::string& path, const std::string& name, const k::ir::Function& graph,
                const MockSetup& setup = {})
      : driver(setup.driver), so(path, name) {
    use = so.fn<const void*(const void*, const void*)>("kiln_testing_use_cuda");
    const void* fatbin = use(&driver.api(), setup.cublaslt ? &lt.api() : nullptr);
    REQUIRE(fatbin != nullptr);
    if (!setup.kernels) return;
    const k::passes::PipelineResult compiled = k::passes::run_pipeline(graph.clone());
    driver.register_image(fatbin, k::testing::host_shim_kernels(k::testing::host_shim(compiled)));
  }
  ~MockedLibrary() { use(nullptr, nullptr); }

  cu::MockDriver driver;
  cu::MockCublasLt lt{driver.api()};
  AotLibrary so;
  const void* (*use)(const void*, const void*) = nullptr;
};

void check_tensor(const std::vector<float>& got, const k::Tensor& want, double tolerance = 1e-5) {
  const std::vector<float> w = want.to_vector<float>();
  REQUIRE(got.size() == w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(w[i]).epsilon(tolerance).margin(tolerance));
  }
}

}  // namespace

TEST_CASE("aot cuda: a launch plan survives its bytes, every field of every step", "[aot][cuda]") {
  cu::LaunchPlan plan;
  plan.workspace_bytes = 4096;
  cu::KernelLaunch kernel;
  kernel.symbol = "kiln_k0_0";
  kernel.label = "kernel 0 (loop: mul)";
  kernel.items = 1000;
  kernel.grid = 4;
  kernel.block = 256;
  kernel.args = {{cu::LaunchArg::Kind::input, 1, 0},
                 {cu::LaunchArg::Kind::workspace, 0, 128},
                 {cu::LaunchArg::Kind::status, 0, 0}};
  cu::KernelLaunch gemm;
  gemm.label = "kernel 1 (gemm)";
  cu::GemmCall call;
  call.desc = {.type = cu::GemmType::f64,
               .m = 3,
               .n = 5,
               .k = 7,
               .transpose_a = true,
               .transpose_b = false,
               .epilogue = cu::GemmEpilogue::bias_relu,
               .tf32 = true,
               .lda = 9,
               .ldb = 11,
               .ldc = 13,
               .alignment = 8};
  call.a = {cu::LaunchArg::Kind::input, 0, 0};
  call.b = {cu::LaunchArg::Kind::workspace, 0, 256};
  call.d = {cu::LaunchArg::Kind::output, 2, 0};
  call.bias = {cu::LaunchArg::Kind::input, 3, 0};
  call.batch_shape = {2, 3};
  call.a_batch_strides = {21, 0};
  call.b_batch_strides = {0, 77};
  gemm.gemm = call;
  plan.launches = {kernel, gemm};

  const std::string bytes = cu::serialize_launch_plan(plan);
  const cu::LaunchPlan back = cu::parse_launch_plan(bytes.data(), bytes.size());
  CHECK(back.workspace_bytes == 4096);
  REQUIRE(back.launches.size() == 2);
  const cu::KernelLaunch& k0 = back.launches[0];
  CHECK(k0.symbol == kernel.symbol);
  CHECK(k0.label == kernel.label);
  CHECK(k0.items == 1000);
  CHECK(k0.grid == 4);
  CHECK(k0.block == 256);
  CHECK_FALSE(k0.gemm);
  REQUIRE(k0.args.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(k0.args[i].kind == kernel.args[i].kind);
    CHECK(k0.args[i].index == kernel.args[i].index);
    CHECK(k0.args[i].offset == kernel.args[i].offset);
  }
  REQUIRE(back.launches[1].gemm);
  const cu::GemmCall& g = *back.launches[1].gemm;
  CHECK(g.desc == call.desc);
  auto same = [](const cu::LaunchArg& a, const cu::LaunchArg& b) {
    return a.kind == b.kind && a.index == b.index && a.offset == b.offset;
  };
  CHECK(same(g.a, call.a));
  CHECK(same(g.b, call.b));
  CHECK(same(g.d, call.d));
  CHECK(same(g.bias, call.bias));
  CHECK(g.batch_shape == call.batch_shape);
  CHECK(g.a_batch_strides == call.a_batch_strides);
  CHECK(g.b_batch_strides == call.b_batch_strides);
  CHECK(back.launches[1].label == gemm.label);
  CHECK(cu::serialize_launch_plan(back) == bytes);
}

TEST_CASE("aot cuda: malformed launch plan bytes are errors, never crashes", "[aot][cuda]") {
  cu::LaunchPlan plan;
  cu::KernelLaunch launch;
  launch.symbol = "kiln_k0_0";
  launch.args = {{cu::LaunchArg::Kind::output, 0, 0}};
  launch.gemm = cu::GemmCall{};
  plan.launches = {launch};
  const std::string bytes = cu::serialize_launch_plan(plan);
  // Every truncation.
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO(n << " bytes");
    CHECK_THROWS_AS(cu::parse_launch_plan(bytes.data(), n), std::invalid_argument);
  }
  CHECK_THROWS_WITH(cu::parse_launch_plan((bytes + "x").data(), bytes.size() + 1),
                    Contains("1 bytes after the last launch"));
  std::string magic = bytes;
  magic[0] = 'X';
  CHECK_THROWS_WITH(cu::parse_launch_plan(magic.data(), magic.size()), Contains("KILNPLAN"));
  std::string version = bytes;
  version[8] = 9;
  CHECK_THROWS_WITH(cu::parse_launch_plan(version.data(), version.size()), Contains("version 9"));
  // The argument's kind (after magic, version, workspace, count, symbol, label, items, grid,
  // block and the argument count).
  std::string kind = bytes;
  const size_t kind_at = 8 + 4 + 8 + 4 + 4 + launch.symbol.size() + 4 + 8 + 8 + 4 + 4;
  kind[kind_at] = 7;
  CHECK_THROWS_WITH(cu::parse_launch_plan(kind.data(), kind.size()),
                    Contains("is not a known value"));
  CHECK_THROWS_AS(cu::parse_launch_plan(nullptr, 10), std::invalid_argument);
}

TEST_CASE("aot cuda: bad devices, architectures and missing tools are clear errors",
          "[aot][cuda]") {
  TempDir dir;
  auto poly = k::function([](const k::Tensor& x) { return 10.f * x * x + 4.f; }, "poly");
  auto compile = [&](k::aot::Options options) {
    return k::testing::error_of<k::Error>(
        [&] { k::aot::compile(poly, {k::TensorSpec({6})}, options); });
  };
  k::aot::Options options = gpu_options("poly", dir.path);
  options.device = "tpu";
  CHECK_THAT(compile(options), Contains("device 'tpu'") && Contains("cpu or cuda"));
  options.device = "cuda";
  options.gpu_arch = "sm80";
  CHECK_THAT(compile(options), Contains("'sm80' is not a GPU architecture"));
  options.gpu_arch = "";
  CHECK_THAT(compile(options), Contains("names no GPU architecture"));
  options.gpu_arch = "sm_80";
  {
    k::testing::ScopedEnv no_tools("KILN_AOT_CUDA_BIN", dir.path.c_str());
    CHECK_THAT(compile(options), Contains("needs a CUDA toolkit") && Contains("ptxas") &&
                                     Contains("KILN_AOT_CUDA_BIN"));
  }
  {
    // Tools that fail: their message comes back, and nothing is left behind.
    TempDir bin;
    for (const char* tool : {"ptxas", "fatbinary"}) {
      k::testing::write_bytes(bin.file(tool),
                              "#!/bin/sh\necho \"$0: fatal: no luck with $2\" >&2\nexit 3\n");
      std::filesystem::permissions(bin.file(tool), std::filesystem::perms::owner_all);
    }
    k::testing::ScopedEnv failing("KILN_AOT_CUDA_BIN", bin.path.c_str());
    CHECK_THAT(compile(options), Contains("ptxas failed building libpoly.so (exit status 3)") &&
                                     Contains("fatal: no luck with -o"));
  }
  // Nothing was written.
  CHECK(std::filesystem::is_empty(dir.path));
}

TEST_CASE(
    "aot cuda: kiln aot --device cuda embeds a cubin per architecture plus PTX and "
    "needs only libc",
    "[aot][cuda]") {
  if (!kiln::testing::have_cuda_toolkit()) return;
  TempDir dir;
  k::testing::saved_mlp(dir);
  const std::string library = dir.file("out/libmlp.so");
  k::testing::Outcome o = k::testing::kiln_cli(std::vector<std::string>{
      "aot", dir.file("mlp"), "-o", library, "--device", "cuda", "--gpu-arch", "sm_80,sm_90"});
  INFO(o.out);
  REQUIRE(o.status == 0);
  k::testing::check_needs_only_libc(library);
  const std::multiset<std::pair<int, int>> images = fatbin_images(k::testing::read_bytes(library));
  CHECK(images == std::multiset<std::pair<int, int>>{{2, 80}, {2, 90}, {1, 90}});

  // The API: the CPU library's, plus the device choice, device-memory runs and the tests' hook.
  k::testing::Outcome symbols = k::testing::run({"nm", "-D", "--defined-only", library});
  REQUIRE(symbols.status == 0);
  for (const char* fn :
       {"create", "create_from", "create_on_device", "run", "run_device", "last_error",
        "save_weights", "destroy", "set_num_threads", "kiln_testing_use_cuda"})
    CHECK_THAT(symbols.out, Contains(fmt::format(" mlp_{}\n", fn)));
  const std::string header = k::testing::read_bytes(dir.file("out/mlp.h"));
  CHECK_THAT(header, Contains("#define MLP_DEVICE \"cuda\"") &&
                         Contains("#define MLP_GPU_ARCH \"sm_80,sm_90\"") &&
                         Contains("int mlp_run_device(mlp_model* model, uint64_t input0, "
                                  "uint64_t output0);") &&
                         Contains("HOST pointers"));
  CHECK_THAT(header, !Contains("kiln_testing"));

  // A C program compiles against the header.
  if (k::testing::have("cc")) {
    k::testing::write_bytes(dir.file("out/main.c"),
                            "#include \"mlp.h\"\nint main(void) { return mlp_create() != 0; }\n");
    k::testing::Outcome cc =
        k::testing::run({"cc", "-std=c99", "-Wall", "-Werror", "-c", dir.file("out/main.c"), "-o",
                         dir.file("out/main.o")});
    INFO(cc.out);
    CHECK(cc.status == 0);
  }

  // One architecture: one cubin, and its PTX.
  o = k::testing::kiln_cli(std::vector<std::string>{"aot", dir.file("mlp"), "-o",
                                                    dir.file("one/libmlp.so"), "--device", "cuda",
                                                    "--gpu-arch", "sm_80"});
  REQUIRE(o.status == 0);
  CHECK(fatbin_images(k::testing::read_bytes(dir.file("one/libmlp.so"))) ==
        std::multiset<std::pair<int, int>>{{2, 80}, {1, 80}});
}

TEST_CASE(
    "aot cuda: without a driver NAME_create fails with the reason, and with the stub "
    "says stub",
    "[aot][cuda]") {
  if (!kiln::testing::have_cuda_toolkit()) return;
  TempDir dir;
  auto poly = k::function([](const k::Tensor& x) { return 10.f * x * x + 4.f; }, "poly");
  const k::aot::Library lib =
      k::aot::compile(poly, {k::TensorSpec({6})}, gpu_options("polygpu", dir.file("a")));
  k::testing::check_needs_only_libc(lib.library);
  // A second copy: each loaded library has its own runtime, which looks for the driver once.
  std::filesystem::create_directories(dir.file("b"));
  std::filesystem::copy_file(lib.library, dir.file("b/libpolygpu.so"));
  {
    k::testing::ScopedEnv none("KILN_CUDA_DRIVER", dir.file("no/libcuda.so.1").c_str());
    AotLibrary so(lib.library, "polygpu");
    CHECK(so.fn<void*()>("create")() == nullptr);
    CHECK_THAT(so.last_error(nullptr), Contains("polygpu: cannot run on a GPU: no CUDA driver"));
    CHECK(so.fn<void*(int, const char*)>("create_on_device")(1, nullptr) == nullptr);
    CHECK_THAT(so.last_error(nullptr), Contains("no CUDA driver"));
    // Runs on no model are errors too.
    const uint64_t in = 0, out = 0;
    CHECK(so.fn<int(void*, uint64_t, uint64_t)>("run_device")(nullptr, in, out) != 0);
  }
  if (!std::filesystem::exists(kStubPath)) {
    WARN("the stub case is skipped: no CUDA stub library at " << kStubPath);
    return;
  }
  k::testing::ScopedEnv stub("KILN_CUDA_DRIVER", kStubPath);
  AotLibrary so(dir.file("b/libpolygpu.so"), "polygpu");
  CHECK(so.fn<void*()>("create")() == nullptr);
  CHECK_THAT(so.last_error(nullptr), Contains("stub"));
}

TEST_CASE("aot cuda: the MLP library runs on the mock driver and equals the CPU JIT",
          "[aot][cuda]") {
  if (!kiln::testing::have_cuda_toolkit()) return;
  TempDir dir;
  k::testing::saved_mlp(dir);
  const k::SavedModel saved = k::load_model(dir.file("mlp"));
  const k::aot::Library lib = k::aot::compile(saved, gpu_options("mlpgpu", dir.file("out")));
  MockedLibrary mocked(lib.library, "mlpgpu", saved.graph());
  const AotLibrary& so = mocked.so;

  void* model = so.create();
  const k::Tensor x = k::random_uniform({2, 3, 4}, -1.0, 1.0, 3);
  const k::Tensor want = saved(x);
  check_tensor(so.run(model, x, 4), want);
  CHECK(mocked.driver.counters().launches > 0);
  std::vector<float> y(4);
  CHECK(so.fn<int(void*, const float*, float*)>("run")(model, nullptr, y.data()) != 0);
  CHECK_THAT(so.last_error(model), Contains("mlpgpu: input 0 (arg0) is NULL"));

  // From device memory: buffers of the same (mock) device, made in this process.
  {
    cu::ScopedDriverOverride here(mocked.driver.api(), "mock");
    const cu::ContextPtr context = cu::Context::retain(0);
    cu::DeviceBuffer in(context, 24 * sizeof(float)), out(context, 4 * sizeof(float));
    in.copy_from_host(x.host().data<float>(), 24 * sizeof(float));
    auto run_device = so.fn<int(void*, uint64_t, uint64_t)>("run_device");
    REQUIRE(run_device(model, in.get(), out.get()) == 0);
    std::vector<float> got(4);
    out.copy_to_host(got.data(), got.size() * sizeof(float));
    check_tensor(got, want);
    CHECK(run_device(model, in.get() + 4, out.get()) != 0);
    CHECK_THAT(so.last_error(model), Contains("input 0 (arg0) is not aligned to 16 bytes"));
    CHECK(run_device(model, 0, out.get()) != 0);
    CHECK_THAT(so.last_error(model), Contains("null device pointer"));
  }
  // The state comes back from the device as it went in.
  REQUIRE(so.fn<int(void*, const char*)>("save_weights")(model,
                                                         dir.file("w.safetensors").c_str()) == 0);
  const auto saved_weights = k::safetensors::load(dir.file("w.safetensors"));
  // (by value: the file lists its tensors by name)
  std::multiset<std::vector<float>> got, expected;
  for (const auto& [name, tensor] : saved_weights)
    got.insert(tensor.to_vector<float>());
  for (const k::ir::HostTensor& w : saved.weights())
    expected.insert(k::Tensor(w).to_vector<float>());
  CHECK(got == expected);
  so.destroy(model);
}

TEST_CASE(
    "aot cuda: a step with state runs its GEMM on cuBLASLt and keeps its updates on the "
    "device",
    "[aot][cuda]") {
  if (!kiln::testing::have_cuda_toolkit()) return;
  TempDir dir;
  const k::ir::Function graph = k::ir::parse(kStepText);
  const k::Tensor w0 = k::random_uniform({64, 16}, -1.0, 1.0, 7);
  const std::vector<k::ir::HostTensor> state{w0.host()};
  const k::aot::Library lib = k::aot::compile(graph, 1, state, gpu_options("step", dir.path));
  MockedLibrary mocked(lib.library, "step", graph);
  void* model = mocked.so.create();
  const k::Tensor x = k::random_uniform({32, 64}, -1.0, 1.0, 8);
  std::vector<float> y(32 * 16);
  auto run = mocked.so.fn<int(void*, const float*, float*)>("run");
  k::Tensor w = w0;
  for (int step = 0; step < 3; ++step) {
    INFO("step " << step);
    REQUIRE(run(model, x.host().data<float>(), y.data()) == 0);
    check_tensor(y, k::matmul(x, w), 1e-4);
    w = w * 0.5f + 1.f;
  }
  CHECK(mocked.lt.counters().matmuls == 3);  // the matmul is a cuBLASLt step
  // The state after three updates, copied back from the device.
  REQUIRE(mocked.so.fn<int(void*, const char*)>("save_weights")(
              model, dir.file("w.safetensors").c_str()) == 0);
  const auto saved = k::safetensors::load(dir.file("w.safetensors"));
  REQUIRE(saved.size() == 1);
  check_tensor(saved[0].second.to_vector<float>(), w);
  mocked.so.destroy(model);
}

TEST_CASE("aot cuda: out of device memory at create is NULL with the reason", "[aot][cuda]") {
  if (!kiln::testing::have_cuda_toolkit()) return;
  TempDir dir;
  const k::ir::Function graph = k::ir::parse(kStepText);
  const k::Tensor w0 = k::random_uniform({64, 16}, -1.0, 1.0, 7);
  const std::vector<k::ir::HostTensor> state{w0.host()};
  const k::aot::Library lib = k::aot::compile(graph, 1, state, gpu_options("step", dir.path));
  MockSetup tiny;
  tiny.driver.total_memory = 4096;
  MockedLibrary mocked(lib.library, "step", graph, tiny);
  CHECK(mocked.so.fn<void*()>("create")() == nullptr);
  CHECK_THAT(mocked.so.last_error(nullptr),
             Contains("step: cannot allocate device memory for") && Contains("OUT_OF_MEMORY"));
  // A device the driver does not have.
  CHECK(mocked.so.fn<void*(int, const char*)>("create_on_device")(3, nullptr) == nullptr);
  CHECK_THAT(mocked.so.last_error(nullptr), Contains("step: GPU 3 does not exist"));
}

TEST_CASE("aot cuda: a GPU without the library's kernels, or no cuBLASLt, is NULL with the reason",
          "[aot][cuda]") {
  if (!kiln::testing::have_cuda_toolkit()) return;
  TempDir dir;
  const k::ir::Function graph = k::ir::parse(kStepText);
  const k::Tensor w0 = k::random_uniform({64, 16}, -1.0, 1.0, 7);
  const std::vector<k::ir::HostTensor> state{w0.host()};
  const k::aot::Library lib = k::aot::compile(graph, 1, state, gpu_options("step", dir.file("a")));
  {
    // The mock driver knows no kernels for the fatbin, as a GPU it has no code for.
    MockedLibrary mocked(lib.library, "step", graph, {.driver = {}, .kernels = false});
    CHECK(mocked.so.fn<void*()>("create")() == nullptr);
    CHECK_THAT(mocked.so.last_error(nullptr),
               Contains("step: GPU 0 (Kiln mock GPU, sm_90) cannot load the library's kernels, "
                        "built for sm_80,sm_90: cuModuleLoadData"));
  }
  // A fresh copy of the runtime, which looks for cuBLASLt where KILN_CUBLASLT says.
  std::filesystem::create_directories(dir.file("b"));
  std::filesystem::copy_file(lib.library, dir.file("b/libstep.so"));
  k::testing::ScopedEnv no_cublaslt("KILN_CUBLASLT", dir.file("none/libcublasLt.so.13").c_str());
  MockedLibrary mocked(dir.file("b/libstep.so"), "step", graph,
                       {.driver = {}, .kernels = true, .cublaslt = false});
  CHECK(mocked.so.fn<void*()>("create")() == nullptr);
  CHECK_THAT(mocked.so.last_error(nullptr), Contains("step: ") && Contains("cuBLASLt"));
}

TEST_CASE("aot cuda: a saved LSTM model's library loops over its steps on the mock driver",
          "[aot][cuda][scan]") {
  if (!kiln::testing::have_cuda_toolkit()) return;
  namespace L = k::layers;
  TempDir dir;
  k::set_random_seed(9);
  k::Sequential model({L::LSTM(4, {.input_shape = {6, 3}}), L::Dense(2)});
  model.save(dir.file("lstm"), /*batch_size=*/2);
  const k::SavedModel saved = k::load_model(dir.file("lstm"));
  const k::aot::Library lib = k::aot::compile(saved, gpu_options("lstmgpu", dir.file("out")));
  MockedLibrary mocked(lib.library, "lstmgpu", saved.graph());
  void* instance = mocked.so.create();
  const k::Tensor x = k::random_uniform({2, 6, 3}, -1.0, 1.0, 4);
  check_tensor(mocked.so.run(instance, x, 4), saved(x), 1e-4);
  // The scan's body ran once per step: more launches than the plan lists.
  CHECK(mocked.driver.counters().launches > 6 * 4);
  mocked.so.destroy(instance);
}
