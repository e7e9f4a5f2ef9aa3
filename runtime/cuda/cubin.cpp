#include "kiln/runtime/cuda/cubin.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>

namespace kiln::runtime::cuda {

namespace {

constexpr std::size_t kLogBytes = 16 * 1024;
// Seeds of the PTX hash's two halves: any fixed, distinct values.
constexpr uint64_t kPtxSeedLow = 0x7074782d6c6f7721ull;
constexpr uint64_t kPtxSeedHigh = 0x7074782d68696768ull;

// "name=<length>:value\n", as codegen/cache_key.h writes fields.
void add_field(std::string& key, std::string_view name, std::string_view value) {
  key.append(name).append("=").append(std::to_string(value.size())).append(":");
  key.append(value).append("\n");
}

// Destroys a link state however link_ptx leaves.
struct LinkGuard {
  const DriverApi& api;
  CUlinkState state = nullptr;
  ~LinkGuard() {
    if (state != nullptr) api.cuLinkDestroy(state);
  }
};

}  // namespace

std::string link_ptx(const Context& context, std::string_view ptx) {
  const DriverApi& api = context.api();
  if (api.cuLinkCreate_v2 == nullptr || api.cuLinkAddData_v2 == nullptr ||
      api.cuLinkComplete == nullptr || api.cuLinkDestroy == nullptr)
    throw_cuda_error(api, CUDA_ERROR_NOT_SUPPORTED, "cuLinkCreate",
                     "this driver table has no JIT linker");
  context.make_current();
  std::string log(kLogBytes, '\0');
  CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void* values[] = {log.data(), reinterpret_cast<void*>(static_cast<std::uintptr_t>(log.size()))};
  LinkGuard link{api};
  check(api, api.cuLinkCreate_v2(2, options, values, &link.state), "cuLinkCreate");
  auto log_text = [&] { return std::string(log.c_str()); };
  // The driver reads PTX as a C string: a copy with its terminating NUL.
  std::string text(ptx);
  CUresult result = api.cuLinkAddData_v2(link.state, CU_JIT_INPUT_PTX, text.data(), text.size() + 1,
                                         "kiln.ptx", 0, nullptr, nullptr);
  if (result != CUDA_SUCCESS) throw_cuda_error(api, result, "cuLinkAddData", log_text());
  void* cubin = nullptr;
  std::size_t size = 0;
  result = api.cuLinkComplete(link.state, &cubin, &size);
  if (result != CUDA_SUCCESS) throw_cuda_error(api, result, "cuLinkComplete", log_text());
  // The image belongs to the link state: copied before the guard destroys it.
  return std::string(static_cast<const char*>(cubin), size);
}

std::string cubin_cache_key(const Context& context, std::string_view ptx) {
  const DriverApi& api = context.api();
  int version = 0;
  if (api.cuDriverGetVersion == nullptr || api.cuDriverGetVersion(&version) != CUDA_SUCCESS ||
      version <= 0)
    return "";
  char hash[33];
  std::snprintf(hash, sizeof hash, "%016llx%016llx",
                static_cast<unsigned long long>(DiskCache::hash64(ptx, kPtxSeedHigh)),
                static_cast<unsigned long long>(DiskCache::hash64(ptx, kPtxSeedLow)));
  std::string key;
  add_field(key, "tag", "cubin/" + std::to_string(kCubinCacheFormat));
  add_field(key, "ptx_bytes", std::to_string(ptx.size()));
  add_field(key, "ptx_hash", hash);
  add_field(key, "arch", context.info().arch());
  add_field(key, "driver", std::to_string(version));
  return key;
}

std::string cached_cubin(const Context& context, std::string_view ptx, DiskCache* cache) {
  if (cache == nullptr || !cache->enabled()) return link_ptx(context, ptx);
  const std::string key = cubin_cache_key(context, ptx);
  if (key.empty()) return link_ptx(context, ptx);
  if (std::optional<std::string> cubin = cache->get(key)) {
    if (!cubin->empty()) return *cubin;
    cache->discard(key, "an empty cubin");
  }
  std::string cubin = link_ptx(context, ptx);
  cache->put(key, cubin);
  return cubin;
}

}  // namespace kiln::runtime::cuda
