// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
// counter-based generator, a pure function of (counter, key). Header-only and free of state so
// the interpreter, generated CPU code and GPU kernels can all compute the same bits.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <type_traits>

namespace kiln::ir {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

inline constexpr uint32_t kPhiloxM0 = 0xD2511F53u;  // round multipliers
inline constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // key schedule (Weyl) increments
inline constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

// One Philox round: two 32x32→64 multiplies, the high halves mixed with the key.
constexpr PhiloxCounter philox_round(const PhiloxCounter& c, const PhiloxKey& k) {
  uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c[0];
  uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c[2];
  auto hi = [](uint64_t p) { return static_cast<uint32_t>(p >> 32); };
  auto lo = [](uint64_t p) { return static_cast<uint32_t>(p); };
  return {hi(p1) ^ c[1] ^ k[0], lo(p1), hi(p0) ^ c[3] ^ k[1], lo(p0)};
}

// SplitMix64's finalizer (Steele et al. 2014): a bijective 64-bit mix, for deriving seeds from
// seeds where a full generator is not needed.
constexpr uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Philox-4x32-10: ten rounds, the key bumped by the Weyl constants between rounds.
constexpr PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += kPhiloxW0;
      key[1] += kPhiloxW1;
    }
    counter = philox_round(counter, key);
  }
  return counter;
}

// Kiln's use: element `index` of a random op with `seed` draws counter (index low word, index
// high word, 0, 0) under key (seed low word, seed high word).
// random_uniform_at puts its run-time step in counter words 2 and 3 (0 for the other ops).
constexpr PhiloxCounter philox_for_element(uint64_t seed, uint64_t index, uint64_t step = 0) {
  PhiloxCounter counter{static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                        static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32)};
  PhiloxKey key{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  return philox4x32_10(counter, key);
}

// Top 24 bits of `w` as a float in [0, 1): exact in f32.
constexpr double uniform01_24(uint32_t w) {
  return static_cast<double>(w >> 8) * 0x1p-24;
}
// Top 53 bits of (hi, lo) as a double in [0, 1): exact in f64.
constexpr double uniform01_53(uint32_t hi, uint32_t lo) {
  uint64_t bits = (static_cast<uint64_t>(hi) << 32 | lo) >> 11;
  return static_cast<double>(bits) * 0x1p-53;
}

// random_uniform element: minval + u * (maxval - minval) in double (a separate multiply and add,
// no fused multiply-add), rounded once to T; a result that rounds up to maxval is replaced by the
// largest T below it, so the range stays [minval, maxval).
template <class T>
T random_uniform_value(uint64_t seed, uint64_t index, double minval, double maxval,
                       uint64_t step = 0) {
  PhiloxCounter w = philox_for_element(seed, index, step);
  double u = std::is_same_v<T, float> ? uniform01_24(w[0]) : uniform01_53(w[0], w[1]);
  double scaled = u * (maxval - minval);
  T value = static_cast<T>(minval + scaled);
  T hi = static_cast<T>(maxval);
  if (value >= hi && static_cast<T>(minval) < hi) {
    value = std::nextafter(hi, -std::numeric_limits<T>::infinity());
  }
  return value;
}

// random_normal element: Box–Muller, cosine branch, in double, rounded once to T.
// u1 is in (0, 1] (so the log is finite), u2 in [0, 1): f32 takes u1 from word 0 and u2 from
// word 1 (24 bits each), f64 takes u1 from words 0,1 and u2 from words 2,3 (53 bits each).
template <class T>
T random_normal_value(uint64_t seed, uint64_t index, double mean, double stddev) {
  PhiloxCounter w = philox_for_element(seed, index);
  double u1, u2;
  if constexpr (std::is_same_v<T, float>) {
    u1 = 1.0 - uniform01_24(w[0]);
    u2 = uniform01_24(w[1]);
  } else {
    u1 = 1.0 - uniform01_53(w[0], w[1]);
    u2 = uniform01_53(w[2], w[3]);
  }
  double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  double scaled = stddev * z;
  return static_cast<T>(mean + scaled);
}

}  // namespace kiln::ir
