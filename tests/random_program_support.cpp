// Inputs, cases and result comparison for the random-program tests (random_program.h).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstdlib>

#include "kiln/ir/philox.h"
#include "kiln/ir/printer.h"
#include "random_program.h"

namespace kiln::testing {

namespace {

void fill_random(ir::HostTensor& t, uint64_t seed) {
  uint64_t state = seed;
  auto next = [&state] { return state = ir::splitmix64(state); };
  ir::visit_dtype(t.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* data = t.data<T>();
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      if constexpr (std::is_same_v<T, bool>) {
        data[i] = (next() & 1) != 0;
      } else if constexpr (std::is_floating_point_v<T>) {
        data[i] = static_cast<T>(static_cast<int64_t>(next() % 1025) - 512) / T(256);
      } else {
        data[i] = static_cast<T>(static_cast<int64_t>(next() % 11) - 5);
      }
    }
  });
}

// "[1, 0, 3]": the row-major multi-index of flat index i.
std::string multi_index(const ir::Shape& shape, int64_t i) {
  std::vector<int64_t> index(static_cast<size_t>(shape.rank()));
  for (int64_t d = shape.rank() - 1; d >= 0; --d) {
    int64_t size = shape[d];
    index[static_cast<size_t>(d)] = size == 0 ? 0 : i % size;
    i = size == 0 ? 0 : i / size;
  }
  return fmt::format("[{}]", fmt::join(index, ", "));
}

bool close(double got, double want, bool floating, double rtol, double atol) {
  if (!floating) return got == want;
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (std::isinf(want) || std::isinf(got)) return got == want;
  return std::abs(got - want) <= atol + rtol * std::abs(want);
}

// "" if the two tensors match, else what differs.
std::string compare_tensor(size_t output, const ir::HostTensor& got, const ir::HostTensor& want,
                           double rtol, double atol) {
  if (got.type() != want.type()) {
    return fmt::format("output {}: got type {}, want {}", output, got.type().to_string(),
                       want.type().to_string());
  }
  bool floating = ir::is_floating(want.dtype());
  int64_t first = -1, count = 0;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    if (close(got.element_as_double(i), want.element_as_double(i), floating, rtol, atol)) continue;
    if (first < 0) first = i;
    ++count;
  }
  if (first < 0) return "";
  double g = got.element_as_double(first), w = want.element_as_double(first);
  return fmt::format(
      "output {} ({}): element {} at {}: got {:.9g}, want {:.9g} (|diff| {:.3g} > atol {:g} + "
      "rtol {:g} * |want|); {} of {} elements differ",
      output, want.type().to_string(), first, multi_index(want.shape(), first), g, w,
      std::abs(g - w), atol, rtol, count, want.num_elements());
}

}  // namespace

std::vector<ir::HostTensor> random_inputs(const ir::Function& function, uint64_t seed) {
  std::vector<ir::HostTensor> inputs;
  for (const auto& p : function.params()) {
    ir::HostTensor t(p->type());
    fill_random(t, ir::splitmix64(seed) ^ ir::splitmix64(static_cast<uint64_t>(p->index()) + 1));
    inputs.push_back(std::move(t));
  }
  return inputs;
}

std::string RandomCase::describe() const {
  return fmt::format("random program seed {} (rerun only it with KILN_RANDOM_SEED={}):\n{}", seed,
                     seed, ir::print(function));
}

RandomCase random_case(uint64_t seed, const RandomProgramOptions& options) {
  RandomCase c;
  c.seed = seed;
  c.function = random_program(seed, options);
  c.inputs = random_inputs(c.function, seed);
  return c;
}

void for_each_random_program(int count, const std::function<void(const RandomCase&)>& fn,
                             const RandomProgramOptions& options, uint64_t first_seed) {
  if (const char* only = std::getenv("KILN_RANDOM_SEED"); only != nullptr && *only != '\0') {
    fn(random_case(std::strtoull(only, nullptr, 10), options));
    return;
  }
  for (int i = 0; i < count; ++i)
    fn(random_case(first_seed + static_cast<uint64_t>(i), options));
}

std::string compare_results(std::span<const ir::HostTensor> got,
                            std::span<const ir::HostTensor> want, double rtol, double atol) {
  if (got.size() != want.size())
    return fmt::format("got {} results, want {}", got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    std::string diff = compare_tensor(i, got[i], want[i], rtol, atol);
    if (!diff.empty()) return diff;
  }
  return "";
}

}  // namespace kiln::testing
