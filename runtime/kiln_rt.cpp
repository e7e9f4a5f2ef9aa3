#include "kiln/runtime/kiln_rt.h"

#include <cstdint>
#include <cstdlib>

#ifdef __linux__
#include <sys/sysinfo.h>
#endif

#include "kiln/runtime/thread_pool.h"

extern "C" {

int32_t kiln_rt_abi_version(void) {
  return KILN_RT_ABI_VERSION;
}

namespace {
// Whether `bytes` may be had at all: more than the machine's memory and swap together cannot,
// and asking anyway where the kernel always overcommits ends with the OOM killer, not NULL.
// ir/host_tensor.cpp has a copy for HostTensor: the layering (ir/ and runtime/ may not include
// each other) forbids sharing one.
bool within_machine_memory(size_t bytes) {
#ifdef __linux__
  if (bytes < (size_t{1} << 30)) return true;
  struct sysinfo info;
  if (::sysinfo(&info) != 0) return true;
  unsigned __int128 total =
      static_cast<unsigned __int128>(info.totalram + info.totalswap) * info.mem_unit;
  return bytes <= total;
#else
  return true;
#endif
}
}  // namespace

void* kiln_rt_alloc(size_t bytes) {
  if (bytes > SIZE_MAX - 63) return nullptr;  // rounding up would wrap around
  if (!within_machine_memory(bytes)) return nullptr;
  size_t rounded = (bytes + 63) / 64 * 64;
  return std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
}

void kiln_rt_free(void* ptr) {
  std::free(ptr);
}

void kiln_rt_parallel_for(int64_t n, int64_t grain, kiln_rt_loop_body body, void* context) {
  kiln::runtime::ThreadPool::global().parallel_for(n, grain, body, context);
}

int32_t kiln_rt_num_threads(void) {
  return kiln::runtime::ThreadPool::global().num_threads();
}

}  // extern "C"
