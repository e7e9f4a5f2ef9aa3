// gpu_check's phase 2 without a GPU: a tiny bundle built by the bundle builder
// (tools/gpu_check/bundle_builder.h: an op library, a GEMM, the elementwise chain and a training
// step) runs through phase 2's runner (tools/gpu_check/phase2.h) on the mock driver, each
// library's copy of the runtime handed the mock through its testing hook and its kernels run as
// their host shims. Every result equals the CPU's; a wrong expected value, a missing library and
// a malformed manifest are failures that name what is wrong. (gpu_check itself links no LLVM, so
// under --mock it runs only the GEMM libraries, which launch no kernels; the full bundle is built
// by scripts/gpu_check.sh, not here.)
#include <catch2/catch.hpp>

#include <dlfcn.h>
#include <kiln/kiln.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../tools/gpu_check/bundle_builder.h"
#include "../tools/gpu_check/bundle_format.h"
#include "../tools/gpu_check/phase2.h"
#include "aot_test_util.h"
#include "file_test_util.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/mock_cublaslt.h"
#include "kiln/runtime/cuda/mock_driver.h"
#include "mock_gpu_test_util.h"

namespace k = kiln;
namespace cu = kiln::runtime::cuda;
namespace gc = kiln::gpu_check;
using Catch::Contains;
using k::testing::TempDir;

namespace {

// The mock driver and cuBLASLt as this process's, handed to each library phase 2 loads, with the
// host shims of its graph's kernels registered under its fatbin.
struct MockedPhase2 {
  explicit MockedPhase2(const std::vector<gc::BuiltLibrary>& built) {
    for (const gc::BuiltLibrary& b : built)
      graphs[b.name] = b.graph;
  }

  gc::Phase2Result run(const std::string& dir, bool timings = true,
                       std::function<bool(const gc::LibraryRecord&)> filter = {}) {
    gc::Phase2Options options;
    options.dir = dir;
    options.timings = timings;
    options.run_filter = std::move(filter);
    options.samples = 1;
    options.on_load = [this](void* handle, const std::string& name) {
      using Use = const void* (*)(const void*, const void*);
      auto use = reinterpret_cast<Use>(dlsym(handle, (name + "_kiln_testing_use_cuda").c_str()));
      REQUIRE(use != nullptr);
      const void* fatbin = use(&driver.api(), &lt.api());
      const auto compiled = k::passes::run_pipeline(graphs.at(name)->clone());
      driver.register_image(fatbin, k::testing::host_shim_kernels(k::testing::host_shim(compiled)));
    };
    options.on_unload = [](void* handle, const std::string& name) {
      using Use = const void* (*)(const void*, const void*);
      reinterpret_cast<Use>(dlsym(handle, (name + "_kiln_testing_use_cuda").c_str()))(nullptr,
                                                                                      nullptr);
    };
    return gc::run_phase2(cu::Context::retain(0), options, baselines);
  }

  std::map<std::string, std::shared_ptr<const k::ir::Function>> graphs;
  cu::MockDriver driver;
  cu::MockCublasLt lt{driver.api()};
  cu::ScopedDriverOverride use{driver.api(), "mock"};
  gc::Baselines baselines;
};

// One tiny bundle for the whole file (building it takes seconds), copied into `dir`.
const std::vector<gc::BuiltLibrary>& tiny_bundle(const std::filesystem::path& dir) {
  static TempDir folder;
  static const std::vector<gc::BuiltLibrary> built =
      gc::build_bundle({.out_dir = folder.path.string(), .tiny = true, .verbose = false});
  std::filesystem::copy(
      folder.path, dir,
      std::filesystem::copy_options::overwrite_existing | std::filesystem::copy_options::recursive);
  return built;
}

// Adds `delta` to the first value (a T) of a file.
template <class T>
void bump_first(const std::string& path, T delta) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  T v{};
  f.read(reinterpret_cast<char*>(&v), sizeof v);
  v += delta;
  f.seekp(0);
  f.write(reinterpret_cast<const char*>(&v), sizeof v);
  REQUIRE(f.good());
}

}  // namespace

TEST_CASE("gpu bundle: a tiny bundle runs on the mock driver and equals the CPU", "[gpu_check]") {
  if (!kiln::testing::have_cuda_toolkit()) return;
  TempDir dir;
  const auto& built = tiny_bundle(dir.path);
  REQUIRE(built.size() == 4);
  const auto records = gc::parse_manifest(k::testing::read_bytes(dir.file(gc::kManifestFile)));
  REQUIRE(records.size() == 4);
  CHECK(records[0].kind == "ops");
  CHECK(records[1].kind == "gemm");
  CHECK(records[1].m == 32);
  CHECK(records[2].kind == "chain");
  CHECK(records[3].kind == "train");
  CHECK(records[3].steps == 2);
  CHECK(records[3].state.size() == 4);  // two kernels and two biases
  for (const auto& r : records)
    CHECK(std::filesystem::exists(dir.file(r.file)));

  MockedPhase2 mock(built);
  mock.baselines.d2d_bytes_per_s = 1e9;
  mock.baselines.gemm_flops_per_s[{32, 48, 64}] = 1e9;
  const gc::Phase2Result result = mock.run(dir.path.string());
  INFO(result.table);
  CHECK(result.failures == 0);
  CHECK(result.libraries == 4);
  CHECK(mock.driver.counters().launches > 0);
  CHECK(mock.lt.counters().matmuls > 0);  // the GEMM library's is a cuBLASLt step
  CHECK_THAT(result.table, Contains("ops_tiny") && Contains("ok (") &&
                               Contains("TFLOP/s; cuBLASLt alone") && Contains("GB/s; D2D copy") &&
                               Contains("ms/step (batch of 8)"));
}

TEST_CASE("gpu bundle: a result unlike the CPU's, or a missing library, is a failure",
          "[gpu_check]") {
  if (!kiln::testing::have_cuda_toolkit()) return;
  TempDir dir;
  const auto& built = tiny_bundle(dir.path);
  // The argmax's first expected index, and the chain's first sampled value.
  const auto records = gc::parse_manifest(k::testing::read_bytes(dir.file(gc::kManifestFile)));
  REQUIRE(records[0].outputs[2].label == "argmax_rows");
  bump_first<int32_t>(dir.file("ops_tiny.out2.bin"), 1);
  bump_first<float>(dir.file("chain.out0.bin"), 0.01f);
  // The training step's state samples, of another length.
  std::filesystem::resize_file(dir.file(records[3].state[0].file), 8);
  MockedPhase2 mock(built);
  gc::Phase2Result result = mock.run(dir.path.string(), /*timings=*/false);
  INFO(result.table);
  CHECK(result.failures == 3);
  CHECK_THAT(
      result.table,
      Contains("ops_tiny               FAIL (1)") && Contains("chain                  FAIL (1)") &&
          Contains("train_tiny             FAIL: train_tiny.state0.bin holds 8 bytes, not 2048") &&
          Contains("gemm_32x48x64          ok"));

  std::filesystem::remove(dir.file("libgemm_32x48x64.so"));
  result = mock.run(dir.path.string(), /*timings=*/false);
  CHECK(result.failures == 4);
  CHECK(result.libraries == 4);  // the others still ran
  CHECK_THAT(result.table, Contains("gemm_32x48x64          FAIL: dlopen: ") &&
                               Contains("libgemm_32x48x64.so: cannot open shared object file"));
}

TEST_CASE("gpu bundle: libraries left out are loaded and their files checked, not run",
          "[gpu_check]") {
  if (!kiln::testing::have_cuda_toolkit()) return;
  TempDir dir;
  const auto& built = tiny_bundle(dir.path);
  // Wrong expected values go unnoticed in libraries that do not run; a short file does not.
  bump_first<float>(dir.file("chain.out0.bin"), 0.01f);
  std::filesystem::resize_file(dir.file("ops_tiny.out1.bin"), 4);
  MockedPhase2 mock(built);
  const gc::Phase2Result result =
      mock.run(dir.path.string(), /*timings=*/false,
               [](const gc::LibraryRecord& r) { return r.kind == "gemm"; });
  INFO(result.table);
  CHECK(result.failures == 1);
  CHECK(mock.driver.counters().launches == 0);
  CHECK(mock.lt.counters().matmuls == 1);
  CHECK_THAT(result.table,
             Contains("ops_tiny               FAIL: ops_tiny.out1.bin holds 4 bytes, not 32") &&
                 Contains("gemm_32x48x64          ok") &&
                 Contains("chain                  not run") &&
                 Contains("train_tiny             not run"));
}

TEST_CASE("gpu bundle: malformed manifests are errors naming the line", "[gpu_check]") {
  const auto error = [](const std::string& text) {
    try {
      gc::parse_manifest(text);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string head = "kiln-gpu-bundle 1\n";
  CHECK_THAT(error(""), Contains("manifest is empty"));
  CHECK_THAT(error("kiln-gpu-bundle 2\n"), Contains("line 1: version 2"));
  CHECK_THAT(error("something else\n"), Contains("line 1: not a gpu_check bundle manifest"));
  CHECK_THAT(error(head + "library a liba.so ops 1\n"), Contains("ends inside library a"));
  CHECK_THAT(error(head + "library a liba.so tpu 1\nend\n"),
             Contains("line 2: unknown kind 'tpu'"));
  CHECK_THAT(error(head + "library a ../liba.so ops 1\nend\n"), Contains("bundle's folder"));
  CHECK_THAT(error(head + "library a liba.so ops 0\nend\n"), Contains("steps must be positive"));
  CHECK_THAT(error(head + "input f32 4 file:x\n"), Contains("line 2: 'input' outside a library"));
  const std::string lib = head + "library a liba.so ops 1\n";
  CHECK_THAT(error(lib + "input f16 4 file:x\nend\n"), Contains("line 3: unknown dtype 'f16'"));
  CHECK_THAT(error(lib + "input f32 4 url:x\nend\n"), Contains("file:F or random:SEED"));
  CHECK_THAT(error(lib + "input i32 4 random:1\nend\n"), Contains("random inputs are f32"));
  CHECK_THAT(error(lib + "input f32 four file:x\nend\n"), Contains("missing or malformed"));
  CHECK_THAT(error(lib + "output f32 4 y 0 0 file:y extra\nend\n"), Contains("unexpected 'extra'"));
  CHECK_THAT(error(lib + "output f32 4 y 0 0 maybe\nend\n"), Contains("file:F, sample:COUNT:F"));
  CHECK_THAT(error(lib + "state w i32 4 4 0 0 w.bin\nend\n"), Contains("state samples are f32"));
  CHECK_THAT(error(lib + "weights\nend\n"), Contains("unknown record 'weights'"));
  CHECK_THAT(error(lib + "library b libb.so ops 1\n"), Contains("before the previous one's"));
  // A manifest written is read back as it was.
  gc::LibraryRecord r;
  r.name = "g";
  r.file = "libg.so";
  r.kind = "gemm";
  r.m = 2, r.n = 3, r.k = 4;
  r.inputs = {{"f32", 8, "random:5"}};
  r.outputs = {{"f32", 6, "y", 1e-5, 1e-4, "sample:3:g.out0.bin"}};
  r.state = {{"w", "f32", 6, 3, 0.5, 0.25, "g.state0.bin"}};
  const auto back = gc::parse_manifest(gc::write_manifest({r}));
  REQUIRE(back.size() == 1);
  CHECK(back[0].k == 4);
  CHECK(back[0].inputs[0].source == "random:5");
  CHECK(back[0].outputs[0].atol == 1e-5);
  CHECK(back[0].state[0].rtol == 0.25);
}

TEST_CASE("gpu bundle: a folder without a manifest is one failure, never a throw", "[gpu_check]") {
  TempDir dir;
  MockedPhase2 mock({});
  const gc::Phase2Result result = mock.run(dir.path.string());
  CHECK(result.failures == 1);
  CHECK(result.libraries == 0);
}

TEST_CASE("gpu bundle: the generated inputs and samples are the same on both sides",
          "[gpu_check]") {
  std::vector<float> a(5), b(5);
  gc::fill_uniform(a.data(), 5, 42);
  gc::fill_uniform(b.data(), 5, 42);
  CHECK(a == b);
  for (const float v : a)
    CHECK((v >= -1.f && v < 1.f));
  CHECK(gc::sample_index(0, 100) == 0);
  CHECK(gc::sample_index(1, 100) == 99);
  for (int64_t i = 0; i < 1000; ++i)
    CHECK(gc::sample_index(i, 7) < 7);
}

// By hand only (a minute or more: the whole bundle, its convnet step on the host shims):
//   build/tests/gpu_bundle_test '[gpu_check_full]'
// The full bundle's libraries on the mock driver, less those too big for the mock's reference
// GEMM and host memory (the 4096³ GEMM and the 64M-element chain).
TEST_CASE("gpu bundle: the full bundle on the mock driver", "[.][gpu_check_full]") {
  if (!kiln::testing::have_cuda_toolkit()) return;
  TempDir dir;
  const auto built = gc::build_bundle({.out_dir = dir.path.string()});
  auto records = gc::parse_manifest(k::testing::read_bytes(dir.file(gc::kManifestFile)));
  std::erase_if(records, [](const gc::LibraryRecord& r) {
    return r.name == "gemm_4096x4096x4096" || r.name == "chain";
  });
  k::testing::write_bytes(dir.file(gc::kManifestFile), gc::write_manifest(records));
  MockedPhase2 mock(built);
  const gc::Phase2Result result = mock.run(dir.path.string(), /*timings=*/false);
  INFO(result.table);
  CHECK(result.failures == 0);
  CHECK(result.libraries == static_cast<int>(records.size()));
}
