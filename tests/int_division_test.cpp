// Integer division by zero, and MIN / −1, follow NumPy (docs/ops.md, "Integer division"):
// x / 0 = 0, MIN / −1 = MIN (wrapping), never a trap; the same values eagerly, traced, compiled,
// and constant-folded, for i32, i64 and u8. An integer mean over no elements is 0.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "kiln/frontend/core/compile.h"
#include "kiln/ir/interpreter.h"

namespace k = kiln;
using k::ir::HostTensor;

namespace {

template <class T>
k::Tensor tensor(std::vector<T> values) {
  return k::constant(
      HostTensor::from_values<T>(k::Shape{int64_t(values.size())}, std::span<const T>(values)));
}

template <class T>
std::vector<T> values_of(const k::Tensor& t) {
  auto v = t.host().values<T>();
  return std::vector<T>(v.begin(), v.end());
}

// a / b eagerly, in a kiln::function (compiled), and with both operands constants inside the
// function (folded at compile time by the interpreter): all must equal `want`.
template <class T>
void check_division(std::vector<T> a, std::vector<T> b, std::vector<T> want) {
  const k::Tensor ta = tensor(a), tb = tensor(b);
  CHECK(values_of<T>(k::divide(ta, tb)) == want);
  CHECK(values_of<T>(ta / tb) == want);
  auto traced = k::function([](const k::Tensor& x, const k::Tensor& y) { return x / y; });
  CHECK(values_of<T>(traced(ta, tb)) == want);
  auto folded = k::function([&](const k::Tensor& unused) {
    return k::add(k::divide(tensor(a), tensor(b)), k::multiply(unused, 0));
  });
  CHECK(values_of<T>(folded(ta)) == want);
  // The IR compiled directly against the interpreter, operands as parameters.
  k::ir::Function f("div");
  const k::ir::TensorType type = ta.type();
  k::ir::Value* x = f.add_param(type, "a");
  k::ir::Value* y = f.add_param(type, "b");
  f.set_outputs({f.append(k::ir::Op::div, {x, y})->output()});
  std::vector<HostTensor> args{ta.host(), tb.host()};
  const HostTensor interpreted = k::ir::evaluate(f, args).outputs.at(0);
  const HostTensor compiled = k::compile(std::move(f))->run(args).outputs.at(0);
  CHECK(compiled.bitwise_equal(interpreted));
  CHECK(std::vector<T>(interpreted.values<T>().begin(), interpreted.values<T>().end()) == want);
}

}  // namespace

TEST_CASE("i32 division by zero gives 0 and MIN / -1 gives MIN", "[ops][division]") {
  constexpr int32_t kMin = std::numeric_limits<int32_t>::min();
  constexpr int32_t kMax = std::numeric_limits<int32_t>::max();
  check_division<int32_t>({7, -7, 0, kMin, kMin, 5, -9, kMax, 9}, {0, 0, 0, -1, 0, -1, 2, -1, -2},
                          {0, 0, 0, kMin, 0, -5, -4, -kMax, -4});
}

TEST_CASE("i64 division by zero gives 0 and MIN / -1 gives MIN", "[ops][division]") {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  check_division<int64_t>({7, -7, 0, kMin, kMin, 5, -9, kMax, int64_t{1} << 40},
                          {0, 0, 0, -1, 0, -1, 2, -1, 3},
                          {0, 0, 0, kMin, 0, -5, -4, -kMax, 366503875925});
}

TEST_CASE("u8 division by zero gives 0", "[ops][division]") {
  check_division<uint8_t>({7, 255, 0, 200, 255, 1}, {0, 0, 0, 3, 255, 2}, {0, 0, 0, 66, 1, 0});
}

TEST_CASE("integer division by a zero scalar broadcasts to zeros, compiled too",
          "[ops][division]") {
  const k::Tensor a = tensor<int32_t>({1, -2, 3, std::numeric_limits<int32_t>::min()});
  CHECK(values_of<int32_t>(a / 0) == std::vector<int32_t>{0, 0, 0, 0});
  auto by = k::function([](const k::Tensor& x, const k::Tensor& d) { return x / d; });
  CHECK(values_of<int32_t>(by(a, tensor<int32_t>({0}))) == std::vector<int32_t>{0, 0, 0, 0});
  CHECK(values_of<int32_t>(by(a, tensor<int32_t>({-1}))) ==
        std::vector<int32_t>{-1, 2, -3, std::numeric_limits<int32_t>::min()});
}

TEST_CASE("an integer mean over no elements is 0, compiled too", "[ops][division]") {
  const k::Tensor empty = k::zeros({0, 3}, k::DType::i32);
  CHECK(values_of<int32_t>(k::reduce_mean(empty, {0})) == std::vector<int32_t>{0, 0, 0});
  auto mean = k::function([](const k::Tensor& x) { return k::reduce_mean(x, {0}); });
  CHECK(values_of<int32_t>(mean(empty)) == std::vector<int32_t>{0, 0, 0});
}
