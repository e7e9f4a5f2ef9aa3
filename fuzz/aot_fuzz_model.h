// The state tensors the two AOT runtime fuzzers check weights files against, shared with the
// seed corpus writer (corpus_writer.cpp) so that seeds match them.
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/runtime/aot_model.h"
#include "kiln/runtime/aot_weights.h"

namespace kiln::fuzz {

// aot_weights_fuzz: the first input byte picks one of these states.
inline const std::vector<std::vector<runtime::detail::TensorInfo>>& weight_states() {
  static const std::vector<std::vector<runtime::detail::TensorInfo>> all = {
      {{"dense/kernel", KILN_AOT_F32, {2, 3}, 24, 0}, {"dense/bias", KILN_AOT_F32, {3}, 12, 0}},
      {{"step", KILN_AOT_I64, {}, 8, 0},
       {"mask", KILN_AOT_BOOL, {4}, 4, 0},
       {"pixels", KILN_AOT_U8, {2, 2}, 4, 0},
       {"scale", KILN_AOT_F64, {1}, 8, 0},
       {"count", KILN_AOT_I32, {2}, 8, 0}},
      {{"empty", KILN_AOT_F32, {0, 5}, 0, 0}},
      {},
  };
  return all;
}

// aot_create_fuzz: the model's state (kernel [2, 3], bias [3], step, mask [4], seen [4]).
inline constexpr int64_t kShape23[] = {2, 3};
inline constexpr int64_t kShape3[] = {3};
inline constexpr int64_t kShape4[] = {4};
inline constexpr kiln_aot_tensor kCreateState[] = {
    {"dense/kernel", KILN_AOT_F32, 2, kShape23, 24, 0},
    {"dense/bias", KILN_AOT_F32, 1, kShape3, 12, 64},
    {"step", KILN_AOT_I64, 0, nullptr, 8, 128},
    {"mask", KILN_AOT_BOOL, 1, kShape4, 4, 192},
    {"seen", KILN_AOT_U8, 1, kShape4, 4, 256}};
inline constexpr int32_t kNumCreateState = 5;

}  // namespace kiln::fuzz
