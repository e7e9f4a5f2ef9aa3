#include "kiln/runtime/kiln_rt.h"

#include <cstdint>
#include <cstdlib>

#include "kiln/runtime/thread_pool.h"

extern "C" {

int32_t kiln_rt_abi_version(void) {
  return KILN_RT_ABI_VERSION;
}

void* kiln_rt_alloc(size_t bytes) {
  if (bytes > SIZE_MAX - 63) return nullptr;  // rounding up would wrap around
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
