#include "kiln/frontend/core/threading.h"

#include <fmt/format.h>

#include "kiln/frontend/core/op_error.h"
#include "kiln/runtime/thread_pool.h"

namespace kiln {

void set_num_threads(int num_threads, std::source_location loc) {
  if (num_threads < 1) {
    detail::raise<ValueError>(
        "set_num_threads", {},
        fmt::format("the thread count must be at least 1, got {}", num_threads), loc);
  }
  if (!runtime::ThreadPool::set_global_threads(num_threads)) {
    detail::raise<ValueError>("set_num_threads", {},
                              "cannot change the thread count from inside a parallel loop", loc);
  }
}

int get_num_threads() {
  return runtime::ThreadPool::global().num_threads();
}

}  // namespace kiln
