// Eager ops on compiled kernels. An op applied outside a trace runs the same pipeline and
// codegen as traced code, one op per kernel, from a cache of kernels keyed by what they are
// specialised for (op, attributes, dtypes, shapes). The cache is bounded (least recently used
// kernels go first), and an elementwise op seen at many sizes switches to kernels generic in
// size (fixed-size pieces) instead of compiling one per size. The reference interpreter stays
// the oracle: KILN_EAGER=interpret (or set_eager_mode) runs eager ops there instead.
//
// Ops made from attributes alone (constant, fill, range, linspace, random_uniform,
// random_normal) are materialized by their reference kernels: a compiled kernel would be
// specialised for the very values (fill value, seed) that change from call to call.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kiln/ir/attrs.h"
#include "kiln/ir/host_tensor.h"
#include "kiln/ir/op.h"

namespace kiln {

// How eager ops run.
enum class EagerMode {
  compiled,   // compiled kernels (the default)
  interpret,  // the reference interpreter, for debugging (KILN_EAGER=interpret)
};

// The mode in force: set_eager_mode's, else KILN_EAGER's (`compiled` or `interpret`, read once;
// any other value is a ValueError at the first eager op), else compiled.
EagerMode eager_mode();
// Overrides KILN_EAGER for the whole process.
void set_eager_mode(EagerMode mode);

// What the kernel cache has done since the process started (or clear_eager_cache).
struct EagerCacheInfo {
  int64_t hits = 0;       // eager ops that found their kernel compiled
  int64_t compiles = 0;   // kernels compiled
  int64_t evictions = 0;  // kernels dropped to stay within the capacity
  int64_t kernels = 0;    // kernels held now
  int64_t capacity = 0;   // the most kernels held at once
  // Elementwise op signatures that went generic in size (see the top of this file); one
  // forgotten (below) and seen at many sizes again counts again.
  int64_t generic = 0;
  // Elementwise op signatures whose sizes are remembered now, at most `capacity`: the least
  // recently used are forgotten first (and may compile a few exact sizes again).
  int64_t families = 0;
  double compile_seconds = 0;  // time spent compiling kernels
};

EagerCacheInfo eager_cache_info();
// Drops every cached kernel and zeroes the counters (capacity and mode stay).
void clear_eager_cache();
// Keeps at most `kernels` compiled kernels (at least 1; ValueError otherwise). The default is
// 1024, or KILN_EAGER_CACHE_SIZE.
void set_eager_cache_capacity(int64_t kernels);

namespace detail {

// What KILN_EAGER and KILN_EAGER_CACHE_SIZE say now (ValueError for a value that means nothing);
// eager_mode() and the cache read them once, at the first eager op.
EagerMode eager_mode_from_env();
int64_t eager_capacity_from_env();
// Forgets set_eager_mode and set_eager_cache_capacity, so that the next eager op reads the
// environment again (for tests).
void reread_eager_environment();

// While one of these lives, an elementwise eager op on this thread may write its result into
// the buffer of a donated operand instead of a new one: `x / 255.f` where x is a temporary
// divides in place, so an eager chain holds one buffer instead of one per step. The caller
// (ops_math.cpp) donates only a host value that no other Tensor handle, view, variable or tape
// refers to, and gives that handle up. run_eager takes the donation only when the operand has
// the result's dtype and shape, its buffer has no other owner, and no other operand shares it:
// each element is then read before the same element of the result is written, which an
// elementwise kernel does whatever its vectorization or threading.
class DonatedOperands {
 public:
  // Up to two operands (either side of a binary op); null entries donate nothing.
  DonatedOperands(const ir::HostTensor* first, const ir::HostTensor* second);
  ~DonatedOperands();
  DonatedOperands(const DonatedOperands&) = delete;
  DonatedOperands& operator=(const DonatedOperands&) = delete;

 private:
  const ir::HostTensor* previous_[2];
};

// Runs `op` on concrete operands the way eager code does (see above); `output_types` are the
// inferred result types. Throws kiln::Error for data-dependent failures (a gather index out of
// range) as ir::run_op does, with the same messages.
std::vector<ir::HostTensor> run_eager(ir::Op op, std::span<const ir::HostTensor* const> inputs,
                                      const ir::Attrs& attrs,
                                      std::span<const ir::TensorType> output_types);

}  // namespace detail
}  // namespace kiln
