// Data for the model tests: a small classification problem fit must solve.
#pragma once

#include <kiln/kiln.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace kiln::testing {

// Three Gaussian blobs in 2-D, `per_class` points each; labels 0, 1, 2 (i32).
inline std::pair<Tensor, Tensor> blobs(int64_t per_class, uint64_t seed) {
  Tensor centers = constant({{0.f, 3.f}, {3.f, -2.f}, {-3.f, -2.f}});
  std::vector<int32_t> labels;
  for (int32_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < per_class; ++i)
      labels.push_back(c);
  Tensor y = constant(labels, Shape{3 * per_class});
  Tensor x = gather(centers, y) + random_normal({3 * per_class, 2}, 0.0, 0.7, seed);
  return {x, y};
}

}  // namespace kiln::testing
