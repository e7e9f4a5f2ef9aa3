// The reference interpreter's `scan` (issue 15), against values computed by hand.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <vector>

#include "kiln/ir/error.h"
#include "kiln/ir/interpreter.h"
#include "kiln/ir/parser.h"

#include "error_test_util.h"
#include "scan_test_programs.h"

using namespace kiln;
using namespace kiln::ir;
using kiln::testing::scan_cumsum;

namespace {

HostTensor f64s(Shape shape, std::vector<double> values) {
  return HostTensor::from_values<double>(std::move(shape), values);
}

std::vector<double> values_of(const HostTensor& t) {
  auto v = t.values<double>();
  return {v.begin(), v.end()};
}

}  // namespace

TEST_CASE("scan: cumulative sum", "[ir][scan][interp]") {
  Function f = parse(scan_cumsum(3, false, false));
  HostTensor xs = f64s({3, 2}, {1, 2, 3, 4, 5, 6});
  EvalResult r = evaluate(f, std::vector<HostTensor>{f64s({2}, {0, 10}), xs});
  CHECK(values_of(r.outputs[0]) == std::vector<double>{9, 22});
  CHECK(values_of(r.outputs[1]) == std::vector<double>{1, 12, 4, 16, 9, 22});
}

TEST_CASE("scan: reverse runs t = T-1 ... 0 and stacks row t at index t", "[ir][scan][interp]") {
  Function f = parse(scan_cumsum(3, true, false));
  HostTensor xs = f64s({3, 2}, {1, 2, 3, 4, 5, 6});
  EvalResult r = evaluate(f, std::vector<HostTensor>{f64s({2}, {0, 10}), xs});
  CHECK(values_of(r.outputs[0]) == std::vector<double>{9, 22});
  // suffix sums: row 2 = x2, row 1 = x1 + x2, row 0 = all
  CHECK(values_of(r.outputs[1]) == std::vector<double>{9, 22, 8, 20, 5, 16});
}

TEST_CASE("scan: save_carries stacks the carry each step read", "[ir][scan][interp]") {
  HostTensor xs = f64s({3, 2}, {1, 2, 3, 4, 5, 6});
  HostTensor init = f64s({2}, {0, 10});
  EvalResult fwd = evaluate(parse(scan_cumsum(3, false, true)), std::vector<HostTensor>{init, xs});
  CHECK(values_of(fwd.outputs[2]) == std::vector<double>{0, 10, 1, 12, 4, 16});
  EvalResult rev = evaluate(parse(scan_cumsum(3, true, true)), std::vector<HostTensor>{init, xs});
  // step 2 reads init, step 1 reads x2, step 0 reads x1 + x2
  CHECK(values_of(rev.outputs[2]) == std::vector<double>{8, 20, 5, 16, 0, 10});
}

TEST_CASE("scan: length 0 returns the initial carries and empty stacks", "[ir][scan][interp]") {
  for (bool reverse : {false, true}) {
    Function f = parse(scan_cumsum(0, reverse, true));
    EvalResult r = evaluate(
        f, std::vector<HostTensor>{f64s({2}, {3, 4}), HostTensor(DType::f64, Shape{0, 2})});
    CHECK(values_of(r.outputs[0]) == std::vector<double>{3, 4});
    CHECK(r.outputs[1].shape() == Shape{0, 2});
    CHECK(r.outputs[2].shape() == Shape{0, 2});
  }
}

TEST_CASE("scan: cumulative product over scalar steps", "[ir][scan][interp]") {
  Function f = parse(R"(func @cumprod(%init: f64[], %xs: f64[4]) -> (f64[], f64[4]) {
  %0, %1 = scan(%init, %xs) {carries = 1, length = 4, reverse = false, save_carries = false, xs = 1} : f64[], f64[4]
    body func @step(%p: f64[], %x: f64[]) -> (f64[], f64[]) {
      %0 = mul(%p, %x) : f64[]
      return %0, %0
    }
  return %0, %1
}
)");
  EvalResult r = evaluate(f, std::vector<HostTensor>{f64s({}, {1}), f64s({4}, {2, 3, 4, 0.5})});
  CHECK(values_of(r.outputs[0]) == std::vector<double>{12});
  CHECK(values_of(r.outputs[1]) == std::vector<double>{2, 6, 24, 12});
}

TEST_CASE("scan: several carries, xs, ys and consts, an integer carry", "[ir][scan][interp]") {
  // a' = a + sum(u * w) + v * b;  n' = n + 1;  ys: a', u * v, n (the count before the step)
  Function f = parse(
      R"(func @many(%a: f64[], %n: i64[], %u: f64[2,2], %v: f64[2], %w: f64[2], %b: f64[]) -> (f64[], i64[], f64[2], f64[2,2], i64[2]) {
  %0, %1, %2, %3, %4 = scan(%a, %n, %u, %v, %w, %b) {carries = 2, length = 2, reverse = false, save_carries = false, xs = 2} : f64[], i64[], f64[2], f64[2,2], i64[2]
    body func @step(%a: f64[], %n: i64[], %u: f64[2], %v: f64[], %w: f64[2], %b: f64[]) -> (f64[], i64[], f64[], f64[2], i64[]) {
      %0 = mul(%u, %w) : f64[2]
      %1 = reduce_sum(%0) {axes = [0], keepdims = false} : f64[]
      %2 = mul(%v, %b) : f64[]
      %3 = add(%a, %1) : f64[]
      %4 = add(%3, %2) : f64[]
      %5 = constant() {value = dense<i64[]: 1>} : i64[]
      %6 = add(%n, %5) : i64[]
      %7 = mul(%u, %v) : f64[2]
      return %4, %6, %4, %7, %n
    }
  return %0, %1, %2, %3, %4
}
)");
  std::vector<HostTensor> args = {f64s({}, {0.5}),
                                  HostTensor::scalar<int64_t>(7),
                                  f64s({2, 2}, {1, 2, 3, 4}),
                                  f64s({2}, {10, -1}),
                                  f64s({2}, {0.5, 2}),
                                  f64s({}, {3})};
  EvalResult r = evaluate(f, args);
  // step 0: sum([1,2]*[.5,2]) = 4.5, v*b = 30 → a = 35;  step 1: sum([3,4]*[.5,2]) = 9.5,
  // v*b = -3 → a = 41.5
  CHECK(values_of(r.outputs[0]) == std::vector<double>{41.5});
  CHECK(r.outputs[1].values<int64_t>()[0] == 9);
  CHECK(values_of(r.outputs[2]) == std::vector<double>{35, 41.5});
  CHECK(values_of(r.outputs[3]) == std::vector<double>{10, 20, -3, -4});
  CHECK(r.outputs[4].values<int64_t>()[0] == 7);
  CHECK(r.outputs[4].values<int64_t>()[1] == 8);
  // The operands are left as they were (an output never shares a carry's storage).
  CHECK(values_of(args[0]) == std::vector<double>{0.5});
}

TEST_CASE("scan: a body that returns its parameter unchanged", "[ir][scan][interp]") {
  Function f = parse(R"(func @keep(%c: f64[2], %k: f64[2]) -> (f64[2], f64[3,2]) {
  %0, %1 = scan(%c, %k) {carries = 1, length = 3, reverse = false, save_carries = false, xs = 0} : f64[2], f64[3,2]
    body func @step(%c: f64[2], %k: f64[2]) -> (f64[2], f64[2]) {
      return %c, %k
    }
  return %0, %1
}
)");
  EvalResult r = evaluate(f, std::vector<HostTensor>{f64s({2}, {1, 2}), f64s({2}, {3, 4})});
  CHECK(values_of(r.outputs[0]) == std::vector<double>{1, 2});
  CHECK(values_of(r.outputs[1]) == std::vector<double>{3, 4, 3, 4, 3, 4});
}

TEST_CASE("scan: an error inside the body names the step", "[ir][scan][interp]") {
  Function f = parse(R"(func @bad(%c: i64[], %xs: i64[3]) -> (i64[], i64[3]) {
  %0, %1 = scan(%c, %xs) {carries = 1, length = 3, reverse = false, save_carries = false, xs = 1} : i64[], i64[3]
    body func @step(%c: i64[], %x: i64[]) -> (i64[], i64[]) {
      %0 = check_index(%x) {limit = 3, what = "label"} : i64[]
      %1 = add(%c, %0) : i64[]
      return %1, %0
    }
  return %0, %1
}
)");
  std::vector<HostTensor> args = {
      HostTensor::scalar<int64_t>(0),
      HostTensor::from_values<int64_t>(Shape{3}, std::vector<int64_t>{0, 5, 1})};
  std::string msg = kiln::testing::error_of<IndexError>([&] { evaluate(f, args); });
  CHECK_THAT(msg, Catch::Contains("label 5"));
  CHECK_THAT(msg, Catch::Contains("in scan step 1 (of 3), body @step"));
}

TEST_CASE("scan: nested scans", "[ir][scan][interp]") {
  // outer over 2 steps of a [2,3] block; inner sums each block's rows into the carry.
  Function f = parse(R"(func @nested(%init: f64[], %xs: f64[2,2,3]) -> (f64[], f64[2]) {
  %0, %1 = scan(%init, %xs) {carries = 1, length = 2, reverse = false, save_carries = false, xs = 1} : f64[], f64[2]
    body func @outer(%c: f64[], %x: f64[2,3]) -> (f64[], f64[]) {
      %0, %1 = scan(%c, %x) {carries = 1, length = 2, reverse = false, save_carries = false, xs = 1} : f64[], f64[2,3]
        body func @inner(%d: f64[], %row: f64[3]) -> (f64[], f64[3]) {
          %0 = reduce_sum(%row) {axes = [0], keepdims = false} : f64[]
          %1 = add(%d, %0) : f64[]
          return %1, %row
        }
      return %0, %0
    }
  return %0, %1
}
)");
  std::vector<double> xs(12);
  for (int i = 0; i < 12; ++i)
    xs[static_cast<size_t>(i)] = i + 1;
  EvalResult r = evaluate(f, std::vector<HostTensor>{f64s({}, {100}), f64s({2, 2, 3}, xs)});
  CHECK(values_of(r.outputs[0]) == std::vector<double>{100 + 78});
  CHECK(values_of(r.outputs[1]) == std::vector<double>{100 + 21, 178});
}
