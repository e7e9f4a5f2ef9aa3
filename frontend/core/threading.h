// The number of threads compiled code runs on (tf.config.threading): one process-wide pool,
// sized by KILN_NUM_THREADS (default: every core) when first used, or by set_num_threads.
#pragma once

#include <source_location>

namespace kiln {

// Gives the thread pool `num_threads` threads (the calling thread included; at most 1024). Before
// the pool exists this sets the size it starts with (KILN_NUM_THREADS is then not read); after,
// the pool is resized once the parallel loops running now finish. ValueError for num_threads < 1
// or a call from inside a parallel loop.
void set_num_threads(int num_threads, std::source_location loc = std::source_location::current());

// The pool's thread count (starting the pool if it does not exist yet).
int get_num_threads();

}  // namespace kiln
