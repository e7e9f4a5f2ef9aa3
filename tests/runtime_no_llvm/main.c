/* Links against libkiln_runtime_static.a alone (plus libstdc++ and threads) and runs a parallel
   loop through the C ABI: proof that the runtime needs no LLVM, no IR and no fmt. */
#include <stdint.h>
#include <stdio.h>

#include "kiln/runtime/kiln_rt.h"

static void add_range(void* context, int64_t begin, int64_t end) {
  int64_t* partial = (int64_t*)context;
  for (int64_t i = begin; i < end; ++i)
    __atomic_fetch_add(partial, i, __ATOMIC_RELAXED);
}

int main(void) {
  int64_t total = 0;
  const int64_t n = 100000;
  kiln_rt_parallel_for(n, 1000, add_range, &total);
  if (total != n * (n - 1) / 2) {
    fprintf(stderr, "runtime_no_llvm: wrong sum %lld\n", (long long)total);
    return 1;
  }
  if (kiln_rt_abi_version() != KILN_RT_ABI_VERSION || kiln_rt_num_threads() < 1) return 1;
  {
    /* The frame as a C caller builds it: the status words start at zero. */
    int64_t status[KILN_RT_STATUS_WORDS] = {0};
    kiln_frame frame = {NULL, NULL, NULL, status};
    if (frame.status[0] != 0) return 1;
  }
  printf("runtime_no_llvm: %d threads, sum ok\n", (int)kiln_rt_num_threads());
  return 0;
}
