#include "random_shapes.h"

#include <algorithm>

namespace kiln::testing::detail {

int64_t size_of(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= std::max<int64_t>(d, 1);
  return n;
}

std::optional<std::vector<int64_t>> broadcast(const std::vector<int64_t>& a,
                                              const std::vector<int64_t>& b) {
  size_t rank = std::max(a.size(), b.size());
  std::vector<int64_t> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t x = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t y = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (x != y && x != 1 && y != 1) return std::nullopt;
    out[i] = x == 1 ? y : x;
  }
  return out;
}

int64_t random_dim(Rng& rng, const RandomProgramOptions& options) {
  static const std::vector<int64_t> kDims = {1, 1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 33};
  if (rng.chance(options.zero_size_probability)) return 0;
  return rng.pick(kDims);
}

void cap(std::vector<int64_t>& dims, const RandomProgramOptions& options) {
  while (size_of(dims) > options.max_elements) {
    auto largest = std::max_element(dims.begin(), dims.end());
    *largest = std::max<int64_t>(1, *largest / 2);
  }
}

std::vector<int64_t> random_dims(Rng& rng, const RandomProgramOptions& options) {
  std::vector<int64_t> dims(static_cast<size_t>(rng.uniform(0, options.max_rank)));
  for (int64_t& d : dims)
    d = random_dim(rng, options);
  cap(dims, options);
  return dims;
}

std::vector<int64_t> partner_dims(Rng& rng, const RandomProgramOptions& options,
                                  const std::vector<int64_t>& dims) {
  std::vector<int64_t> out = dims;
  if (!out.empty() && rng.chance(0.3))
    out.erase(out.begin(), out.begin() + rng.uniform(1, static_cast<int64_t>(out.size())));
  for (int64_t& d : out) {
    if (rng.chance(0.3))
      d = 1;
    else if (d == 1 && rng.chance(0.4))
      d = random_dim(rng, options);
  }
  // A new leading dimension only where it cannot land on one of dims.
  if (out.size() >= dims.size() && static_cast<int64_t>(out.size()) < options.max_rank &&
      rng.chance(0.2))
    out.insert(out.begin(), random_dim(rng, options));
  while (size_of(*broadcast(dims, out)) > options.max_elements) {
    auto largest = std::max_element(out.begin(), out.end());
    if (largest == out.end() || *largest <= 1) break;
    *largest = 1;
  }
  return out;
}

std::vector<int64_t> reshape_target(Rng& rng, const RandomProgramOptions& options, int64_t count) {
  std::vector<int64_t> dims(static_cast<size_t>(rng.uniform(1, options.max_rank)), 1);
  auto random_position = [&] {
    return static_cast<size_t>(rng.uniform(0, static_cast<int64_t>(dims.size()) - 1));
  };
  if (count == 0) {
    for (int64_t& d : dims)
      d = rng.uniform(1, 5);
    dims[random_position()] = 0;
    return dims;
  }
  if (count == 1 && rng.chance(0.3)) return {};
  // Deal the prime factors of count out to the dimensions.
  int64_t rest = count;
  for (int64_t p = 2; rest > 1; ++p) {
    while (rest % p == 0) {
      dims[random_position()] *= p;
      rest /= p;
    }
  }
  if (rng.chance(0.3)) dims[random_position()] = -1;
  return dims;
}

ir::Attrs random_slice(Rng& rng, const std::vector<int64_t>& dims) {
  static const std::vector<int64_t> kStrides = {1, 1, 2, 3, -1, -2};
  std::vector<int64_t> begin, end, strides;
  for (int64_t d : dims) {
    int64_t s = d == 0 ? 1 : rng.pick(kStrides);
    int64_t b = d == 0 ? 0 : rng.uniform(0, d - 1);
    int64_t e = b;  // an empty selection, for d == 0 and now and then otherwise
    if (d > 0 && !rng.chance(0.05)) e = s > 0 ? rng.uniform(b + 1, d) : rng.uniform(-1, b - 1);
    begin.push_back(b);
    end.push_back(e);
    strides.push_back(s);
  }
  return ir::Attrs().set_ints("begin", begin).set_ints("end", end).set_ints("strides", strides);
}

}  // namespace kiln::testing::detail
