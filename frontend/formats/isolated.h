// Running code that may crash or hang on a user's file in a child process: libhdf5 does both on
// some malformed files, and nothing a user feeds Kiln may take the process down. The child is
// forked (it inherits the caller's memory, so it can read straight into the caller's plans),
// does the work, and sends back a bounded reply through a pipe; a crash, a hang past the time
// limit or a reply over the limit becomes an IOError in the caller.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <source_location>
#include <string>
#include <string_view>

namespace kiln::detail {

// How much a child may send back and for how long it may run before it is killed.
struct IsolationLimits {
  size_t max_reply_bytes = 0;
  std::chrono::milliseconds timeout{60'000};
};

// Runs `work` in a forked child and returns the bytes it returned. A kiln::Error thrown by
// `work` is thrown again here with its class (IOError, ValueError, ShapeError, TypeError,
// ResourceError; other classes as Error) and message. A child that dies by a signal, exits
// without a reply, runs past limits.timeout (it is killed) or replies with more than
// limits.max_reply_bytes is an IOError raised as `op` at `loc` that says it happened while
// `what` ("reading 'x.h5'"). The child must not use threads, GPUs or the thread pool; only the
// calling thread runs in it. With KILN_HDF5_IN_PROCESS=1 in the environment `work` runs in this
// process instead (for debuggers).
std::string run_isolated(const std::function<std::string()>& work, const IsolationLimits& limits,
                         std::string_view what, std::string_view op,
                         const std::source_location& loc);

// Test hook: a function every isolated child runs before its work (to make one crash or hang);
// an empty function removes it.
void set_isolated_child_hook(std::function<void()> hook);

}  // namespace kiln::detail
