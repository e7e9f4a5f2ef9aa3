// Links the installed static runtime (kiln::runtime_static) alone and runs a parallel loop
// through its C ABI.
#include <kiln/runtime/kiln_rt.h>

#include <atomic>
#include <cstdint>
#include <iostream>

int main() {
  std::atomic<int64_t> total{0};
  kiln_rt_parallel_for(
      1000, 10,
      [](void* context, int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i)
          static_cast<std::atomic<int64_t>*>(context)->fetch_add(i);
      },
      &total);
  if (total != 1000 * 999 / 2) {
    std::cerr << "runtime_user: wrong sum " << total << "\n";
    return 1;
  }
  std::cout << "runtime_user: sum ok\n";
  return 0;
}
