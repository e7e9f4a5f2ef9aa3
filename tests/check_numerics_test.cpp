// check_numerics and enable_check_numerics, eager and traced: the error names the op that made
// the NaN/Inf and the user's line.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <string>

namespace k = kiln;
using Catch::Contains;

namespace {
std::string here(int line) {
  return "check_numerics_test.cpp:" + std::to_string(line);
}
// Turns the global mode off again however a test ends.
struct CheckAll {
  CheckAll() { k::enable_check_numerics(); }
  ~CheckAll() { k::disable_check_numerics(); }
};
}  // namespace

TEST_CASE("check_numerics passes finite tensors and raises on NaN/Inf", "[check_numerics]") {
  k::Tensor ok = k::constant({1.f, 2.f});
  CHECK(k::check_numerics(ok, "ok").to_vector<float>() == std::vector<float>{1, 2});
  k::Tensor bad = k::log(k::constant({1.f, -1.f}));
  int line = __LINE__ + 1;
  CHECK_THROWS_WITH(k::check_numerics(bad, "loss"), Contains("loss: NaN") && Contains(here(line)));
  CHECK_THROWS_AS(k::check_numerics(k::constant(1), "int"), k::TypeError);
}

TEST_CASE("enable_check_numerics names the op that made a NaN", "[check_numerics]") {
  CheckAll on;
  k::Tensor x = k::constant({1.0, 0.0});
  k::Tensor y = x * 2.0;  // finite
  int line = __LINE__ + 1;
  CHECK_THROWS_WITH(k::log(y) - 1.0, Contains("log") && Contains("Inf") && Contains(here(line)));
}

TEST_CASE("a traced check_numerics raises before the updates apply", "[check_numerics]") {
  k::Variable v(1.0f, "v");
  int line = __LINE__ + 3;
  auto step = k::function([&](const k::Tensor& x) {
    v.assign_add(x);
    return k::check_numerics(k::sqrt(x), "root");
  });
  CHECK(step(k::constant(4.f)).item<float>() == 2.f);
  CHECK(v.value().item<float>() == 5.f);
  CHECK_THROWS_WITH(step(k::constant(-4.f)), Contains("root: NaN") && Contains(here(line)));
  CHECK(v.value().item<float>() == 5.f);
}

TEST_CASE("enable_check_numerics finds the op inside a compiled function", "[check_numerics]") {
  int line = __LINE__ + 3;
  auto f = k::function([](const k::Tensor& x) {
    k::Tensor h = x * x;
    return k::reduce_sum(k::log(h - 1.f));  // NaN for |x| < 1
  });
  CHECK(f(k::constant({2.f, 3.f})).item<float>() == Approx(std::log(3.f) + std::log(8.f)));
  CheckAll on;
  CHECK_THROWS_WITH(f(k::constant({2.f, 0.5f})),
                    Contains("log") && Contains("NaN") && Contains(here(line)));
}
