#include "kiln/frontend/core/variable.h"

#include <catch2/catch.hpp>

#include <sstream>
#include <string>

#include "kiln/frontend/core/ops.h"

namespace k = kiln;
using Catch::Contains;

namespace {
template <class T>
std::vector<T> values(const k::Tensor& t) {
  return t.to_vector<T>();
}
// "variable_test.cpp:LINE", as errors name the user's line.
std::string here(int line) {
  return "variable_test.cpp:" + std::to_string(line);
}
}  // namespace

TEST_CASE("Variable holds a value with a name, shape and dtype", "[variable]") {
  k::Variable w(k::constant({{1.f, 2.f}, {3.f, 4.f}}));
  CHECK(w.defined());
  CHECK(w.name() == "Variable");
  CHECK(w.trainable());
  CHECK(w.shape() == k::Shape{2, 2});
  CHECK(w.dtype() == k::f32);
  CHECK(values<float>(w.value()) == std::vector<float>{1, 2, 3, 4});
  CHECK(values<float>(w.read_value()) == std::vector<float>{1, 2, 3, 4});

  k::Variable step(k::constant(int64_t{7}), "step", /*trainable=*/false);
  CHECK(step.name() == "step");
  CHECK_FALSE(step.trainable());
  CHECK(step.shape() == k::Shape{});
  CHECK(step.dtype() == k::i64);
  CHECK(step.value().item<int64_t>() == 7);

  k::Variable empty(k::zeros({0, 3}, k::f64), "empty");
  CHECK(empty.shape() == k::Shape{0, 3});
  empty.assign_add(k::zeros({0, 3}, k::f64));
  CHECK(empty.value().size() == 0);
}

TEST_CASE("Variable copies share one state", "[variable]") {
  k::Variable a(k::constant({1, 2, 3}), "a");
  k::Variable b = a;
  k::Variable c(k::constant({1, 2, 3}), "a");
  CHECK(a.is(b));
  CHECK_FALSE(a.is(c));
  b.assign(k::constant({7, 8, 9}));
  CHECK(values<int32_t>(a.value()) == std::vector<int32_t>{7, 8, 9});
  CHECK(values<int32_t>(c.value()) == std::vector<int32_t>{1, 2, 3});
}

TEST_CASE("assign, assign_add and assign_sub follow the TensorFlow tutorial", "[variable]") {
  // t = tf.Variable([[1, 2], [3, 4]], dtype=tf.float32); t.assign(...); t.assign_add(...); ...
  k::Variable t(k::constant({{1, 2}, {3, 4}}, k::f32));
  t.assign(k::constant({{-2, -1}, {-3, -7}}, k::f32));
  CHECK(values<float>(t.value()) == std::vector<float>{-2, -1, -3, -7});
  t.assign_add(k::constant({{1, 1}, {1, 1}}, k::f32));
  CHECK(values<float>(t.value()) == std::vector<float>{-1, 0, -2, -6});
  t.assign_sub(k::constant({{2, 2}, {2, 2}}, k::f32));
  CHECK(values<float>(t.value()) == std::vector<float>{-3, -2, -4, -8});
  // Updates return the variable, so they chain.
  t.assign_add(k::ones({2, 2})).assign_add(k::ones({2, 2}));
  CHECK(values<float>(t.value()) == std::vector<float>{-1, 0, -2, -6});
}

TEST_CASE("assign_add and assign_sub work for every numeric dtype", "[variable]") {
  k::Variable f64(k::constant({0.5, 1.5}));
  f64.assign_add(k::constant({0.25, -1.5}));
  CHECK(values<double>(f64.value()) == std::vector<double>{0.75, 0.0});
  k::Variable i32(k::constant({1, -2}));
  i32.assign_sub(k::constant({5, 5}));
  CHECK(values<int32_t>(i32.value()) == std::vector<int32_t>{-4, -7});
  k::Variable i64(k::constant(int64_t{1} << 40));
  i64.assign_add(k::constant(int64_t{1}));
  CHECK(i64.value().item<int64_t>() == (int64_t{1} << 40) + 1);
  k::Variable flags(k::constant({true, false}));
  flags.assign(k::constant({false, false}));
  CHECK(values<bool>(flags.value()) == std::vector<bool>{false, false});
  CHECK_THROWS_AS(flags.assign_add(k::constant({true, true})), k::TypeError);
}

TEST_CASE("values read before an update keep their values", "[variable]") {
  k::Tensor x = k::constant({1.f, 2.f});
  k::Variable v(x);
  k::Tensor before = v.value();
  v.assign_add(k::constant({10.f, 10.f}));
  k::Tensor middle = v;
  v.assign_sub(k::constant({1.f, 1.f}));
  v.assign(k::constant({0.f, 0.f}));
  CHECK(values<float>(before) == std::vector<float>{1, 2});
  CHECK(values<float>(middle) == std::vector<float>{11, 12});
  CHECK(values<float>(x) == std::vector<float>{1, 2});
  CHECK(values<float>(v.value()) == std::vector<float>{0, 0});
}

TEST_CASE("a Variable converts to a Tensor for ops and operators", "[variable]") {
  k::Variable w(k::constant({{1.f, 2.f}, {3.f, 4.f}}), "w");
  k::Tensor x = k::constant({{1.f}, {1.f}});
  CHECK(values<float>(k::matmul(w, x)) == std::vector<float>{3, 7});
  CHECK(values<float>(w + 1.f) == std::vector<float>{2, 3, 4, 5});
  CHECK(values<float>(2.f * w - w) == std::vector<float>{1, 2, 3, 4});
  CHECK(k::reduce_sum(w).item<float>() == 10.f);
  // The tutorial's gradient-descent step: x.assign(x - 0.01 * dy_dx).
  k::Variable s(k::constant(5.f), "s");
  s.assign(s - 0.5f * k::constant(2.f));
  CHECK(s.value().item<float>() == 4.f);
}

TEST_CASE("updates with the wrong shape or dtype throw and name the variable", "[variable]") {
  k::Variable w(k::constant({{1.f, 2.f}, {3.f, 4.f}}), "weights");
  // The calls whose line the error names stand outside the multi-line CHECK macros: inside
  // one, gcc reports the macro's first line and clang its last.
  int line = __LINE__ + 1;
  auto wrong_shape = [&] { w.assign(k::ones({3})); };
  CHECK_THROWS_WITH(wrong_shape(), Contains("assign") && Contains("'weights'") &&
                                       Contains("(2, 2)") && Contains("(3,)") &&
                                       Contains(here(line)));
  CHECK_THROWS_AS(w.assign(k::ones({3})), k::ShapeError);
  CHECK_THROWS_AS(w.assign_add(k::ones({2, 1})), k::ShapeError);  // no broadcasting
  CHECK_THROWS_AS(w.assign_sub(k::ones({1, 2, 2})), k::ShapeError);
  line = __LINE__ + 1;
  auto wrong_dtype = [&] { w.assign_add(k::ones({2, 2}, k::f64)); };
  CHECK_THROWS_WITH(wrong_dtype(), Contains("assign_add") && Contains("'weights'") &&
                                       Contains("float32") && Contains("float64") &&
                                       Contains(here(line)));
  CHECK_THROWS_AS(w.assign_sub(k::ones({2, 2}, k::i32)), k::TypeError);
  CHECK_THROWS_AS(w.assign(k::Tensor()), k::ValueError);
  // A failed update leaves the value alone.
  CHECK(values<float>(w.value()) == std::vector<float>{1, 2, 3, 4});
}

TEST_CASE("an undefined Variable throws ValueError", "[variable]") {
  k::Variable none;
  CHECK_FALSE(none.defined());
  CHECK_THROWS_AS(none.value(), k::ValueError);
  CHECK_THROWS_AS(none.assign(k::ones({1})), k::ValueError);
  CHECK_THROWS_AS(none.name(), k::ValueError);
  CHECK_THROWS_AS(k::Variable(k::Tensor(), "v"), k::ValueError);
  CHECK(none.to_string() == "<kiln.Variable (undefined)>");
}

TEST_CASE("Variable prints like tf.Variable", "[variable]") {
  k::Variable w(k::constant({{1.f, 2.f}, {3.f, 4.f}}), "w");
  std::ostringstream os;
  os << w;
  CHECK(os.str() == "<kiln.Variable 'w' shape=(2, 2) dtype=float32, numpy=\n" +
                        k::format_values(w.value().host()) + ">");
  CHECK(os.str().find("[[1. 2.]") != std::string::npos);
  k::Variable s(k::constant(5), "s");
  CHECK(s.to_string() == "<kiln.Variable 's' shape=() dtype=int32, numpy=5>");
}
