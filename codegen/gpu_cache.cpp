#include "kiln/codegen/gpu_cache.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "kiln/codegen/cache_key.h"
#include "kiln/ir/error.h"
#include "kiln/ir/printer.h"

namespace kiln::codegen {

namespace {

using nlohmann::json;

// The structs as this file knows them. A new field must reach the key (GpuOptions) or the
// payload (the others), else the cache would hand back modules that lack it or mix up options:
// when one of these fails, add the field below, bump kGpuCacheFormat and update the size.
#if defined(__x86_64__) && defined(__GLIBCXX__)
static_assert(sizeof(GpuOptions) == 96, "GpuOptions changed: add the field to gpu_cache_key");
static_assert(sizeof(GpuBufferRef) == 32, "GpuBufferRef changed: serialise the new field");
static_assert(sizeof(GpuGemm) == 248, "GpuGemm changed: serialise the new field");
static_assert(sizeof(GpuLaunch) == 440, "GpuLaunch changed: serialise the new field");
static_assert(sizeof(GpuModule) == 56, "GpuModule changed: serialise the new field");
static_assert(sizeof(GpuModule::Ptx) == 64, "GpuModule::Ptx changed: serialise the new field");
#endif

constexpr std::string_view kTag = "gpu-module";

// options.gpu_arch as compile_gpu reads it ("sm_80, sm_90,sm_80" → "sm_80,sm_90"): trimmed, no
// empty or repeated names (compile_gpu checks the names themselves).
std::string normalized_archs(const std::string& list) {
  return fmt::format("{}", fmt::join(split_gpu_archs(list), ","));
}

// --- GpuModule as JSON -------------------------------------------------------------------------

constexpr std::pair<GpuBufferRef::Kind, std::string_view> kRefKinds[] = {
    {GpuBufferRef::Kind::input, "input"},         {GpuBufferRef::Kind::output, "output"},
    {GpuBufferRef::Kind::workspace, "workspace"}, {GpuBufferRef::Kind::status, "status"},
    {GpuBufferRef::Kind::constant, "constant"},
};
constexpr std::pair<GpuGemm::Epilogue, std::string_view> kEpilogues[] = {
    {GpuGemm::Epilogue::none, "none"},
    {GpuGemm::Epilogue::bias, "bias"},
    {GpuGemm::Epilogue::relu, "relu"},
    {GpuGemm::Epilogue::bias_relu, "bias_relu"},
};

template <class Enum, size_t N>
std::string_view enum_name(const std::pair<Enum, std::string_view> (&names)[N], Enum value) {
  for (const auto& [e, name] : names)
    if (e == value) return name;
  throw InternalError(fmt::format("gpu cache: enum value {} has no name", static_cast<int>(value)));
}

template <class Enum, size_t N>
Enum enum_value(const std::pair<Enum, std::string_view> (&names)[N], const json& j,
                std::string_view what) {
  const std::string name = j.get<std::string>();
  for (const auto& [e, n] : names)
    if (n == name) return e;
  throw CompileError(fmt::format("unknown {} \"{}\"", what, name));
}

json ref_to_json(const GpuBufferRef& ref) {
  return {{"kind", enum_name(kRefKinds, ref.kind)},
          {"index", ref.index},
          {"offset", ref.offset},
          {"step_bytes", ref.step_bytes}};
}

GpuBufferRef ref_from_json(const json& j) {
  GpuBufferRef ref;
  ref.kind = enum_value(kRefKinds, j.at("kind"), "buffer kind");
  ref.index = j.at("index").get<int64_t>();
  ref.offset = j.at("offset").get<int64_t>();
  ref.step_bytes = j.at("step_bytes").get<int64_t>();
  return ref;
}

json refs_to_json(const std::vector<GpuBufferRef>& refs) {
  json out = json::array();
  for (const GpuBufferRef& ref : refs)
    out.push_back(ref_to_json(ref));
  return out;
}

std::vector<GpuBufferRef> refs_from_json(const json& j) {
  std::vector<GpuBufferRef> refs;
  for (const json& r : j)
    refs.push_back(ref_from_json(r));
  return refs;
}

json gemm_to_json(const GpuGemm& g) {
  return {
      {"dtype", std::string(ir::dtype_name(g.dtype))},
      {"m", g.m},
      {"n", g.n},
      {"k", g.k},
      {"transpose_a", g.transpose_a},
      {"transpose_b", g.transpose_b},
      {"epilogue", enum_name(kEpilogues, g.epilogue)},
      {"a", ref_to_json(g.a)},
      {"b", ref_to_json(g.b)},
      {"d", ref_to_json(g.d)},
      {"bias", ref_to_json(g.bias)},
      {"batch_shape", g.batch_shape},
      {"a_batch_strides", g.a_batch_strides},
      {"b_batch_strides", g.b_batch_strides},
      {"alignment", g.alignment},
  };
}

GpuGemm gemm_from_json(const json& j) {
  GpuGemm g;
  const std::string dtype = j.at("dtype").get<std::string>();
  std::optional<ir::DType> parsed = ir::parse_dtype(dtype);
  if (!parsed) throw CompileError(fmt::format("unknown dtype \"{}\"", dtype));
  g.dtype = *parsed;
  g.m = j.at("m").get<int64_t>();
  g.n = j.at("n").get<int64_t>();
  g.k = j.at("k").get<int64_t>();
  g.transpose_a = j.at("transpose_a").get<bool>();
  g.transpose_b = j.at("transpose_b").get<bool>();
  g.epilogue = enum_value(kEpilogues, j.at("epilogue"), "GEMM epilogue");
  g.a = ref_from_json(j.at("a"));
  g.b = ref_from_json(j.at("b"));
  g.d = ref_from_json(j.at("d"));
  g.bias = ref_from_json(j.at("bias"));
  g.batch_shape = j.at("batch_shape").get<std::vector<int64_t>>();
  g.a_batch_strides = j.at("a_batch_strides").get<std::vector<int64_t>>();
  g.b_batch_strides = j.at("b_batch_strides").get<std::vector<int64_t>>();
  g.alignment = j.at("alignment").get<int>();
  return g;
}

json launch_to_json(const GpuLaunch& l) {
  return {
      {"plan_kernel", l.plan_kernel},
      {"label", l.label},
      {"supported", l.supported},
      {"reason", l.reason},
      {"symbol", l.symbol},
      {"args", refs_to_json(l.args)},
      {"items", l.items},
      {"block_size", l.block_size},
      {"grid_size", l.grid_size},
      {"gemm", l.gemm ? gemm_to_json(*l.gemm) : json(nullptr)},
      {"loop", l.loop ? json{{"trips", l.loop->trips}, {"count", l.loop->count}} : json(nullptr)},
  };
}

GpuLaunch launch_from_json(const json& j) {
  GpuLaunch l;
  l.plan_kernel = j.at("plan_kernel").get<int64_t>();
  l.label = j.at("label").get<std::string>();
  l.supported = j.at("supported").get<bool>();
  l.reason = j.at("reason").get<std::string>();
  l.symbol = j.at("symbol").get<std::string>();
  l.args = refs_from_json(j.at("args"));
  l.items = j.at("items").get<int64_t>();
  l.block_size = j.at("block_size").get<int>();
  l.grid_size = j.at("grid_size").get<int64_t>();
  if (const json& gemm = j.at("gemm"); !gemm.is_null()) l.gemm = gemm_from_json(gemm);
  if (const json& loop = j.at("loop"); !loop.is_null())
    l.loop = GpuLoop{loop.at("trips").get<int64_t>(), loop.at("count").get<int64_t>()};
  return l;
}

}  // namespace

std::string gpu_cache_key(const ir::Function& function, const passes::KernelPlan& plan,
                          const passes::MemoryPlan& memory, const GpuOptions& options) {
  CacheKey key(fmt::format("{}/{}", kTag, kGpuCacheFormat));
  key.add("gpu_arch", normalized_archs(options.gpu_arch))
      .add_file("libdevice", options.libdevice)
      .add("opt_level", options.opt_level)
      .add("block_size", options.block_size)
      .add("max_blocks", options.max_blocks)
      .add("warp_reduce_elements", options.warp_reduce_elements)
      .add("block_reduce_elements", options.block_reduce_elements)
      .add_plans(function, plan, memory);
  return key.str();
}

std::optional<std::string> serialize_gpu_module(const GpuModule& module) {
  json ptx = json::array();
  for (const GpuModule::Ptx& p : module.ptx)
    ptx.push_back({{"arch", p.arch}, {"text", p.text}});
  json launches = json::array();
  for (const GpuLaunch& l : module.launches)
    launches.push_back(launch_to_json(l));
  const json j = {{"format", kGpuCacheFormat},
                  {"ptx", std::move(ptx)},
                  {"launches", std::move(launches)},
                  {"workspace_bytes", module.workspace_bytes}};
  try {
    return j.dump();
  } catch (const json::exception&) {
    return std::nullopt;  // text that is not UTF-8: such a module is not cached
  }
}

GpuModule deserialize_gpu_module(std::string_view text) {
  try {
    const json j = json::parse(text);
    if (j.at("format").get<int>() != kGpuCacheFormat)
      throw CompileError(fmt::format("format {}, want {}", j.at("format").dump(), kGpuCacheFormat));
    GpuModule module;
    for (const json& p : j.at("ptx"))
      module.ptx.push_back({p.at("arch").get<std::string>(), p.at("text").get<std::string>()});
    for (const json& l : j.at("launches"))
      module.launches.push_back(launch_from_json(l));
    module.workspace_bytes = j.at("workspace_bytes").get<int64_t>();
    return module;
  } catch (const json::exception& e) {
    throw CompileError(e.what());
  }
}

GpuModule compile_gpu_cached(const ir::Function& function, const passes::KernelPlan& plan,
                             const passes::MemoryPlan& memory, const GpuOptions& options,
                             runtime::DiskCache* cache) {
  if (cache == nullptr || !cache->enabled()) return compile_gpu(function, plan, memory, options);
  const std::string key = gpu_cache_key(function, plan, memory, options);
  if (std::optional<std::string> payload = cache->get(key)) {
    try {
      GpuModule module = deserialize_gpu_module(*payload);
      // The key names the architectures; a module without exactly those is not this one.
      std::string archs;
      for (const GpuModule::Ptx& p : module.ptx)
        archs += (archs.empty() ? "" : ",") + p.arch;
      if (const std::string want = normalized_archs(options.gpu_arch); archs != want)
        throw CompileError(fmt::format("PTX for \"{}\", want \"{}\"", archs, want));
      return module;
    } catch (const CompileError& e) {
      cache->discard(key, fmt::format("its GPU module does not parse ({})", e.what()));
    }
  }
  GpuModule module = compile_gpu(function, plan, memory, options);
  if (std::optional<std::string> payload = serialize_gpu_module(module)) cache->put(key, *payload);
  return module;
}

}  // namespace kiln::codegen
