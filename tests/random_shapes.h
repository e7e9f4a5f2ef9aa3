// Shape and attribute sampling for the random-program generator (random_program.cpp): a
// portable RNG, broadcasting on plain dims, and random shapes that respect the options' caps.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "kiln/ir/attrs.h"
#include "random_program.h"

namespace kiln::testing::detail {

// splitmix64: tiny, and the same sequence on every platform and standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi]; lo <= hi.
  int64_t uniform(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1p-53 < p; }
  template <class T>
  const T& pick(const std::vector<T>& items) {
    return items[static_cast<size_t>(uniform(0, static_cast<int64_t>(items.size()) - 1))];
  }
  template <class T>
  void shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i)
      std::swap(items[i - 1], items[static_cast<size_t>(uniform(0, static_cast<int64_t>(i) - 1))]);
  }

 private:
  uint64_t state_;
};

// Elements counting a zero dimension as 1: what the caps limit.
int64_t size_of(const std::vector<int64_t>& dims);
// NumPy broadcast of two shapes; nullopt if they do not broadcast.
std::optional<std::vector<int64_t>> broadcast(const std::vector<int64_t>& a,
                                              const std::vector<int64_t>& b);

// A dimension size: often 1, odd sizes and sizes around 16 and 32, now and then 0.
int64_t random_dim(Rng& rng, const RandomProgramOptions& options);
// Halves the largest dimension until size_of(dims) fits options.max_elements.
void cap(std::vector<int64_t>& dims, const RandomProgramOptions& options);
// A random shape of rank 0..max_rank under the cap.
std::vector<int64_t> random_dims(Rng& rng, const RandomProgramOptions& options);
// A shape that broadcasts with `dims`: some leading dims dropped, some set to 1, some 1s
// expanded, perhaps a new leading dim; the broadcast result stays under the cap.
std::vector<int64_t> partner_dims(Rng& rng, const RandomProgramOptions& options,
                                  const std::vector<int64_t>& dims);
// A `shape` attribute for reshaping `count` elements (perhaps with a -1).
std::vector<int64_t> reshape_target(Rng& rng, const RandomProgramOptions& options, int64_t count);
// begin/end/strides for a slice of `dims`: strides of ±1..3, sometimes empty selections.
ir::Attrs random_slice(Rng& rng, const std::vector<int64_t>& dims);

}  // namespace kiln::testing::detail
