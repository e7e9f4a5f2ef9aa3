#include "kiln/runtime/kiln_rt.h"

#include <cstdlib>

extern "C" {

int32_t kiln_rt_abi_version(void) {
  return KILN_RT_ABI_VERSION;
}

void* kiln_rt_alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  return std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
}

void kiln_rt_free(void* ptr) {
  std::free(ptr);
}

}  // extern "C"
