// Compiled code in the persistent cache. GPU modules (codegen/gpu_cache.h): a second compile of the
// same function is a hit that equals the first, anything that changes the code changes the key, a
// bad entry or payload recompiles with a warning, and the payload keeps every field of every
// launch. CPU machine code (compile_jit with a cache, codegen/compiler.h): a hit runs like the
// code it stands for, the key names the host CPU, options and plans, and an entry that does not
// load is discarded and compiled again; a second process reuses the first one's code. Every cache
// here lives in a temporary directory, never the user's.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <kiln/kiln.h>

#include "cli_test_util.h"
#include "codegen_test_util.h"
#include "file_test_util.h"
#include "kiln/codegen/cache_key.h"
#include "kiln/codegen/compiler.h"
#include "kiln/codegen/gpu_cache.h"
#include "kiln/ir/error.h"
#include "kiln/ir/parser.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/log_level.h"

using namespace kiln;
using Catch::Contains;
using codegen::GpuBufferRef;
using codegen::GpuGemm;
using codegen::GpuLaunch;
using codegen::GpuModule;
using runtime::DiskCache;
using testing::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr const char* kDense =
    R"(func @dense(%x: f32[32,64], %w: f32[64,16], %b: f32[16]) -> f32[32,16] {
  %0 = matmul(%x, %w) : f32[32,16]
  %1 = add(%0, %b) : f32[32,16]
  %2 = relu(%1) : f32[32,16]
  %3 = exp(%2) : f32[32,16]
  return %3
})";

constexpr const char* kPoly = R"(func @poly(%x: f32[100]) -> f32[100] {
  %0 = mul(%x, %x) : f32[100]
  %1 = tanh(%0) : f32[100]
  return %1
})";

passes::PipelineResult planned(const std::string& text) {
  return passes::run_pipeline(ir::parse(text));
}

// One architecture keeps the compiles short.
codegen::GpuOptions sm90() {
  codegen::GpuOptions options;
  options.gpu_arch = "sm_90";
  return options;
}

GpuModule compile(DiskCache& cache, const passes::PipelineResult& r,
                  const codegen::GpuOptions& options = sm90()) {
  return codegen::compile_gpu_cached(r.function, r.kernels, r.memory, options, &cache);
}

// Field by field, GEMM steps included (to_string shows only some of a GEMM's fields).
void check_same_module(const GpuModule& got, const GpuModule& want) {
  REQUIRE(got.ptx.size() == want.ptx.size());
  for (size_t i = 0; i < want.ptx.size(); ++i) {
    CHECK(got.ptx[i].arch == want.ptx[i].arch);
    CHECK(got.ptx[i].text == want.ptx[i].text);
  }
  CHECK(got.workspace_bytes == want.workspace_bytes);
  CHECK(got.print_launch_plan() == want.print_launch_plan());
  REQUIRE(got.launches.size() == want.launches.size());
  auto same_ref = [](const GpuBufferRef& a, const GpuBufferRef& b) {
    return a.kind == b.kind && a.index == b.index && a.offset == b.offset;
  };
  for (size_t i = 0; i < want.launches.size(); ++i) {
    CAPTURE(i);
    const GpuLaunch& a = got.launches[i];
    const GpuLaunch& b = want.launches[i];
    CHECK(a.to_string() == b.to_string());
    CHECK(a.plan_kernel == b.plan_kernel);
    CHECK(a.label == b.label);
    CHECK(a.supported == b.supported);
    CHECK(a.reason == b.reason);
    CHECK(a.symbol == b.symbol);
    CHECK(a.items == b.items);
    CHECK(a.block_size == b.block_size);
    CHECK(a.grid_size == b.grid_size);
    REQUIRE(a.args.size() == b.args.size());
    for (size_t j = 0; j < a.args.size(); ++j)
      CHECK(same_ref(a.args[j], b.args[j]));
    REQUIRE(a.gemm.has_value() == b.gemm.has_value());
    if (!a.gemm) continue;
    const GpuGemm& g = *a.gemm;
    const GpuGemm& h = *b.gemm;
    CHECK(g.dtype == h.dtype);
    CHECK((g.m == h.m && g.n == h.n && g.k == h.k));
    CHECK(g.transpose_a == h.transpose_a);
    CHECK(g.transpose_b == h.transpose_b);
    CHECK(g.epilogue == h.epilogue);
    CHECK((same_ref(g.a, h.a) && same_ref(g.b, h.b) && same_ref(g.d, h.d)));
    CHECK(same_ref(g.bias, h.bias));
    CHECK(g.batch_shape == h.batch_shape);
    CHECK(g.a_batch_strides == h.a_batch_strides);
    CHECK(g.b_batch_strides == h.b_batch_strides);
    CHECK(g.alignment == h.alignment);
  }
}

struct QuietLog {
  QuietLog() { runtime::set_min_log_level(2); }
  ~QuietLog() { runtime::set_min_log_level(0); }
};

}  // namespace

TEST_CASE("gpu cache: a second compile of the same function is a hit and equals the first") {
  TempDir dir;
  DiskCache cache(dir.path.string());
  const passes::PipelineResult r = planned(kDense);
  const GpuModule first = compile(cache, r);
  CHECK(cache.stats().hits == 0);
  CHECK(cache.stats().puts == 1);
  // The module really has a GEMM step and a loop kernel, so both kinds of launch round-trip.
  REQUIRE(first.launches.size() >= 2);
  CHECK(first.launches[0].gemm.has_value());
  CHECK_FALSE(first.launches.back().symbol.empty());

  const GpuModule second = compile(cache, r);
  CHECK(cache.stats().hits == 1);
  check_same_module(second, first);
  // Another process: a fresh cache on the same directory, and the same function parsed anew.
  DiskCache other(dir.path.string());
  const GpuModule third = compile(other, planned(kDense));
  CHECK(other.stats().hits == 1);
  check_same_module(third, first);
  // And what compile_gpu itself gives.
  check_same_module(first, codegen::compile_gpu(r.function, r.kernels, r.memory, sm90()));
  CHECK(cache.warnings().empty());
}

TEST_CASE("gpu cache: another function, architecture or option is a miss") {
  TempDir dir;
  DiskCache cache(dir.path.string());
  const passes::PipelineResult poly = planned(kPoly);
  compile(cache, poly);
  CHECK(cache.stats().misses == 1);

  // Another function: another op, and the same ops on another shape.
  compile(cache, planned(kDense));
  std::string other = kPoly;
  other.replace(other.find("tanh"), 4, "sigmoid");
  compile(cache, planned(other));
  CHECK(cache.stats().misses == 3);

  // Another architecture.
  codegen::GpuOptions options = sm90();
  options.gpu_arch = "sm_80";
  const GpuModule sm80 = compile(cache, poly, options);
  CHECK(sm80.ptx.at(0).arch == "sm_80");
  CHECK(cache.stats().misses == 4);
  // The same list written otherwise is the same key.
  options.gpu_arch = " sm_80 ,sm_80";
  compile(cache, poly, options);
  CHECK(cache.stats().hits == 1);

  // Other options.
  options = sm90();
  options.block_size = 128;
  CHECK(compile(cache, poly, options).launches.at(0).block_size == 128);
  options = sm90();
  options.max_blocks = 3;
  compile(cache, poly, options);
  options = sm90();
  options.opt_level = 1;
  compile(cache, poly, options);
  CHECK(cache.stats().misses == 7);
  CHECK(cache.stats().hits == 1);

  // Nothing above changed what the first compile stored.
  compile(cache, poly);
  CHECK(cache.stats().hits == 2);
  CHECK(cache.warnings().empty());
}

TEST_CASE("gpu cache: the key names every option, the libdevice file and the plans") {
  const passes::PipelineResult r = planned(kPoly);
  const codegen::GpuOptions base = sm90();
  const std::string key = codegen::gpu_cache_key(r.function, r.kernels, r.memory, base);
  CHECK_THAT(key, Contains("llvm="));
  CHECK_THAT(key, Contains("kiln="));
  CHECK_THAT(key, Contains("func @poly"));
  auto changed = [&](auto edit) {
    codegen::GpuOptions o = base;
    edit(o);
    return codegen::gpu_cache_key(r.function, r.kernels, r.memory, o) != key;
  };
  CHECK(changed([](auto& o) { o.gpu_arch = "sm_80"; }));
  CHECK(changed([](auto& o) { o.opt_level = 2; }));
  CHECK(changed([](auto& o) { o.block_size = 512; }));
  CHECK(changed([](auto& o) { o.max_blocks = 1; }));
  CHECK(changed([](auto& o) { o.warp_reduce_elements = 0; }));
  CHECK(changed([](auto& o) { o.block_reduce_elements = 0; }));
  CHECK(changed([](auto& o) { o.libdevice = ""; }));

  // The same libdevice path rewritten in place (another toolkit installed there) is another key.
  TempDir dir;
  const std::string libdevice = dir.file("libdevice.10.bc");
  testing::write_bytes(libdevice, "version 1");
  codegen::GpuOptions o = base;
  o.libdevice = libdevice;
  const std::string k1 = codegen::gpu_cache_key(r.function, r.kernels, r.memory, o);
  testing::write_bytes(libdevice, "version two");
  CHECK(codegen::gpu_cache_key(r.function, r.kernels, r.memory, o) != k1);

  // Another memory plan (another offset) is another key.
  passes::MemoryPlan memory = r.memory;
  memory.workspace_bytes += 64;
  CHECK(codegen::gpu_cache_key(r.function, r.kernels, memory, base) != key);
}

TEST_CASE("gpu cache: a corrupt entry recompiles with a warning and gives the same module") {
  QuietLog quiet;
  TempDir dir;
  DiskCache cache(dir.path.string());
  const passes::PipelineResult r = planned(kDense);
  const GpuModule first = compile(cache, r);
  const std::string key = codegen::gpu_cache_key(r.function, r.kernels, r.memory, sm90());
  const std::string path = cache.entry_path(key);
  REQUIRE(fs::exists(path));
  std::string bytes = testing::read_bytes(path);
  bytes[bytes.size() / 2 + 123] ^= 1;
  testing::write_bytes(path, bytes);

  const GpuModule second = compile(cache, r);
  check_same_module(second, first);
  REQUIRE(cache.warnings().size() == 1);
  CHECK_THAT(cache.warnings()[0], Contains("corrupt"));
  // Written again: the next compile is a hit.
  check_same_module(compile(cache, r), first);
  CHECK(cache.stats().hits == 1);
  CHECK(cache.stats().puts == 2);
}

TEST_CASE("gpu cache: a payload that does not parse recompiles with a warning and is rewritten") {
  QuietLog quiet;
  TempDir dir;
  DiskCache cache(dir.path.string());
  const passes::PipelineResult r = planned(kPoly);
  const GpuModule want = codegen::compile_gpu(r.function, r.kernels, r.memory, sm90());
  const std::string key = codegen::gpu_cache_key(r.function, r.kernels, r.memory, sm90());
  const std::string good = *codegen::serialize_gpu_module(want);
  std::string other_arch = good;
  other_arch.replace(other_arch.find("\"sm_90\""), 7, "\"sm_75\"");
  const std::string bad_payloads[] = {
      "not json",
      "{}",
      R"({"format": 99, "ptx": [], "launches": [], "workspace_bytes": 0})",
      good.substr(0, good.size() / 2),
      other_arch,
  };
  int round = 0;
  for (const std::string& payload : bad_payloads) {
    CAPTURE(payload.substr(0, 80));
    cache.put(key, payload);
    check_same_module(compile(cache, r), want);
    CHECK(cache.warnings().size() == static_cast<size_t>(++round));
    CHECK_THAT(cache.warnings().back(), Contains("does not parse"));
    // The recompiled module replaced the bad payload.
    CHECK(cache.get(key) == good);
  }
}

TEST_CASE("gpu cache: the payload keeps every field of every launch") {
  GpuModule module;
  module.ptx = {{"sm_80", "// ptx for sm_80\n.version 8.0\n"}, {"sm_90", "// \"quoted\" \\ text"}};
  module.workspace_bytes = 4096;
  GpuLaunch loop;
  loop.plan_kernel = 3;
  loop.label = "kernel 3 (loop: mul, add)";
  loop.symbol = "kiln_k3_0";
  loop.args = {{GpuBufferRef::Kind::input, 1, 0},
               {GpuBufferRef::Kind::workspace, 0, 128},
               {GpuBufferRef::Kind::output, 2, 0},
               {GpuBufferRef::Kind::status, 0, 0}};
  loop.items = 1000;
  loop.block_size = 128;
  loop.grid_size = 8;
  GpuLaunch unsupported;
  unsupported.plan_kernel = 4;
  unsupported.label = "kernel 4 (op: fancy)";
  unsupported.supported = false;
  unsupported.reason = "not lowered yet";
  unsupported.args = {{GpuBufferRef::Kind::constant, 0, 0}};
  GpuLaunch gemm;
  gemm.plan_kernel = 5;
  gemm.label = "kernel 5 (matmul: matmul, add, relu)";
  GpuGemm g;
  g.dtype = ir::DType::f64;
  g.m = 7, g.n = 9, g.k = 11;
  g.transpose_a = true;
  g.transpose_b = true;
  g.epilogue = GpuGemm::Epilogue::bias_relu;
  g.a = {GpuBufferRef::Kind::input, 0, 0};
  g.b = {GpuBufferRef::Kind::workspace, 0, 64};
  g.d = {GpuBufferRef::Kind::output, 1, 0};
  g.bias = {GpuBufferRef::Kind::input, 2, 0};
  g.batch_shape = {2, 3};
  g.a_batch_strides = {77, 0};
  g.b_batch_strides = {0, 99};
  g.alignment = 8;
  gemm.gemm = g;
  module.launches = {loop, unsupported, gemm};

  const std::optional<std::string> text = codegen::serialize_gpu_module(module);
  REQUIRE(text);
  const GpuModule back = codegen::deserialize_gpu_module(*text);
  check_same_module(back, module);
  CHECK(*codegen::serialize_gpu_module(back) == *text);
  // Each epilogue and dtype by name.
  for (auto e : {GpuGemm::Epilogue::none, GpuGemm::Epilogue::bias, GpuGemm::Epilogue::relu}) {
    module.launches[2].gemm->epilogue = e;
    module.launches[2].gemm->dtype = ir::DType::f32;
    CHECK(codegen::deserialize_gpu_module(*codegen::serialize_gpu_module(module))
              .launches[2]
              .gemm->epilogue == e);
  }

  // Text that is not such a module is a CompileError naming the problem.
  std::string bad_kind = *text;
  bad_kind.replace(bad_kind.find("\"workspace\""), 11, "\"elsewhere\"");
  CHECK_THROWS_WITH(codegen::deserialize_gpu_module(bad_kind), Contains("elsewhere"));
  std::string bad_dtype = *text;
  bad_dtype.replace(bad_dtype.find("\"f64\""), 5, "\"f99\"");
  CHECK_THROWS_WITH(codegen::deserialize_gpu_module(bad_dtype), Contains("f99"));
  CHECK_THROWS_AS(codegen::deserialize_gpu_module("[1, 2]"), CompileError);
  CHECK_THROWS_AS(codegen::deserialize_gpu_module(""), CompileError);
  // A label that is not UTF-8 cannot be JSON: such a module is not cached (and nothing throws).
  module.launches[0].label = "bad \xff byte";
  CHECK_FALSE(codegen::serialize_gpu_module(module).has_value());
}

TEST_CASE("gpu cache: a failed compile stores nothing; no cache or a disabled one compiles") {
  TempDir dir;
  DiskCache cache(dir.path.string());
  const passes::PipelineResult r = planned(kPoly);
  codegen::GpuOptions options;
  options.gpu_arch = "sm_1000";
  CHECK_THROWS_AS(compile(cache, r, options), CompileError);
  CHECK(fs::is_empty(dir.path));

  DiskCache off;
  CHECK(compile(off, r).ptx.size() == 1);
  CHECK(codegen::compile_gpu_cached(r.function, r.kernels, r.memory, sm90(), nullptr).ptx.size() ==
        1);
  CHECK(fs::is_empty(dir.path));
}

// --- CPU machine code
// -----------------------------------------------------------------------------

namespace {

std::unique_ptr<codegen::CompiledModule> compile_cpu(DiskCache* cache,
                                                     const passes::PipelineResult& r,
                                                     const codegen::CodegenOptions& options = {}) {
  return codegen::compile_jit(r.function, r.kernels, r.memory, options, cache);
}

// The dense function's result for fixed inputs, run through `module`.
std::vector<float> run_dense(const codegen::CompiledModule& module,
                             const passes::PipelineResult& r) {
  std::vector<ir::HostTensor> args;
  for (size_t i = 0; i < r.function.params().size(); ++i)
    args.push_back(testing::sample(r.function.param(i)->type(), uint64_t(i) + 1, false));
  std::vector<ir::HostTensor> out = testing::run_compiled(module, r.function, args);
  return std::vector<float>(out.at(0).values<float>().begin(), out.at(0).values<float>().end());
}

}  // namespace

TEST_CASE("cpu cache: a second compile of the same function is a hit that computes the same") {
  TempDir dir;
  DiskCache cache(dir.path.string());
  const passes::PipelineResult r = planned(kDense);
  auto first = compile_cpu(&cache, r);
  CHECK(cache.stats().misses == 1);
  CHECK(cache.stats().puts == 1);
  CHECK_FALSE(first->llvm_ir().empty());  // compiled: the module's text is there
  auto second = compile_cpu(&cache, r);
  CHECK(cache.stats().hits == 1);
  CHECK(second->llvm_ir().empty());  // loaded: no LLVM ran
  CHECK(second->workspace_bytes() == first->workspace_bytes());
  CHECK(run_dense(*second, r) == run_dense(*first, r));
  CHECK(run_dense(*first, r) == run_dense(*compile_cpu(nullptr, r), r));  // and as without a cache
  // A parsed copy of the same text is the same function: a hit too.
  auto again = compile_cpu(&cache, planned(kDense));
  CHECK(cache.stats().hits == 2);
  CHECK(run_dense(*again, r) == run_dense(*first, r));
}

TEST_CASE("cpu cache: the key names the host CPU, its features, the options and the plans") {
  const passes::PipelineResult dense = planned(kDense), poly = planned(kPoly);
  const std::string key = codegen::cpu_cache_key(dense.function, dense.kernels, dense.memory, {});
  CHECK_THAT(key, Contains("cpu-module/") && Contains("cpu=") && Contains("features=") &&
                      Contains("opt_level=") && Contains("build=") && Contains("llvm=") &&
                      Contains("kernel_plan=") && Contains("memory_plan=") && Contains("@dense"));
  CHECK(key == codegen::cpu_cache_key(dense.function, dense.kernels, dense.memory, {}));
  CHECK(key != codegen::cpu_cache_key(poly.function, poly.kernels, poly.memory, {}));
  codegen::CodegenOptions o1;
  o1.opt_level = 1;
  CHECK(key != codegen::cpu_cache_key(dense.function, dense.kernels, dense.memory, o1));
  // A constant's value is part of the IR text, so two functions that differ only there differ.
  const passes::PipelineResult c1 = planned(R"(func @c(%x: f32[4]) -> f32[4] {
  %0 = constant() {value = dense<f32[4]: 1, 2, 3, 4>} : f32[4]
  %1 = mul(%x, %0) : f32[4]
  return %1
})"),
                               c2 = planned(R"(func @c(%x: f32[4]) -> f32[4] {
  %0 = constant() {value = dense<f32[4]: 1, 2, 3, 5>} : f32[4]
  %1 = mul(%x, %0) : f32[4]
  return %1
})");
  CHECK(codegen::cpu_cache_key(c1.function, c1.kernels, c1.memory, {}) !=
        codegen::cpu_cache_key(c2.function, c2.kernels, c2.memory, {}));
}

TEST_CASE("cpu cache: a corrupt entry recompiles with a warning and computes the same") {
  QuietLog quiet;
  TempDir dir;
  DiskCache cache(dir.path.string());
  const passes::PipelineResult r = planned(kDense);
  const std::vector<float> want = run_dense(*compile_cpu(&cache, r), r);
  const std::string key = codegen::cpu_cache_key(r.function, r.kernels, r.memory, {});
  std::string bytes = testing::read_bytes(cache.entry_path(key));
  bytes[bytes.size() / 2] ^= 0x5a;  // inside the object code
  testing::write_bytes(cache.entry_path(key), bytes);
  auto recompiled = compile_cpu(&cache, r);
  CHECK(cache.stats().bad_entries == 1);
  CHECK_FALSE(recompiled->llvm_ir().empty());
  CHECK(run_dense(*recompiled, r) == want);
  CHECK(cache.stats().puts == 2);  // rewritten
  CHECK(run_dense(*compile_cpu(&cache, r), r) == want);
  CHECK(cache.stats().hits == 1);
}

TEST_CASE("cpu cache: a well-formed entry whose code does not load is discarded and recompiled") {
  QuietLog quiet;
  const passes::PipelineResult r = planned(kDense);
  const std::string key = codegen::cpu_cache_key(r.function, r.kernels, r.memory, {});
  // The payload's header for objects of these sizes (codegen/compiler.cpp).
  auto header = [&](const std::string& sizes, int64_t workspace) {
    return fmt::format("kiln-cpu-module {} workspace {} objects {}\n", codegen::kCpuCacheFormat,
                       workspace, sizes);
  };
  const int64_t w = r.memory.workspace_bytes;
  const passes::PipelineResult poly = planned(kPoly);
  TempDir scratch;
  DiskCache poly_cache(scratch.path.string());
  compile_cpu(&poly_cache, poly);
  const std::string poly_payload =
      *poly_cache.get(codegen::cpu_cache_key(poly.function, poly.kernels, poly.memory, {}));
  const std::string poly_object = poly_payload.substr(poly_payload.find('\n') + 1);
  // Not an object file; an empty one; a truncated one; another workspace size; sizes that do
  // not add up; no header. (A well-formed entry of other code under this key is a forgery, which
  // the cache does not defend against: see runtime/disk_cache.h.)
  for (const std::string& payload :
       {header("17", w) + "not an ELF object", header("0", w),
        header("64", w) + poly_object.substr(0, 64),
        header(std::to_string(poly_object.size()), w + 64) + poly_object,
        header("10,x", w) + "0123456789", header("10", w) + "01234", std::string("garbage")}) {
    INFO(payload.substr(0, payload.find('\n')));
    TempDir dir;
    DiskCache cache(dir.path.string());
    cache.put(key, payload);
    auto module = compile_cpu(&cache, r);
    CHECK(cache.stats().bad_entries == 1);
    CHECK_THAT(cache.warnings().back(), Contains("does not load"));
    CHECK(run_dense(*module, r) == run_dense(*compile_cpu(nullptr, r), r));
    CHECK(compile_cpu(&cache, r)->llvm_ir().empty());  // the good code replaced it
  }
}

TEST_CASE("cpu cache: no cache, or a disabled one, compiles; a second process loads the code") {
  const passes::PipelineResult r = planned(kPoly);
  DiskCache disabled;
  auto module = compile_cpu(&disabled, r);
  CHECK_FALSE(module->llvm_ir().empty());
  CHECK(disabled.stats().puts == 0);
  // `kiln run` twice on one cache directory: the first writes one entry, the second hits it
  // (refreshing the entry's use time) and prints the same result.
  TempDir dir;
  const std::string model = (dir.path / "poly.kiln").string(), x = (dir.path / "x.npy").string();
  const std::string cache_dir = (dir.path / "cache").string();
  testing::write_bytes(model, kPoly);
  kiln::save_npy(x, kiln::Tensor(testing::sample(r.function.param(0)->type(), 3, false)));
  auto kiln_run = [&] {
    return testing::run({"env", "-u", "KILN_CACHE", "KILN_CACHE_DIR=" + cache_dir, KILN_TOOL, "run",
                         model, "--input", x});
  };
  const testing::Outcome first = kiln_run();
  INFO(first.out);
  REQUIRE(first.status == 0);
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(cache_dir))
    entries.push_back(e.path());
  REQUIRE(entries.size() == 1);
  const auto old_time = fs::file_time_type::clock::now() - std::chrono::hours(24);
  fs::last_write_time(entries[0], old_time);
  struct stat before {};
  REQUIRE(::stat(entries[0].c_str(), &before) == 0);
  const testing::Outcome second = kiln_run();
  REQUIRE(second.status == 0);
  CHECK(second.out == first.out);
  struct stat after {};
  REQUIRE(::stat(entries[0].c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);               // the same file: read, not rewritten
  CHECK(fs::last_write_time(entries[0]) > old_time);  // and its use time refreshed
  size_t count = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(cache_dir))
    ++count;
  CHECK(count == 1);
}
