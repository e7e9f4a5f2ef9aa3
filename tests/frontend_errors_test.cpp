// User mistakes throw the right kiln::Error subclass, and the message names the op, the operand
// types (shape and dtype), the name scope and the line of THIS file that made the call.
#include <catch2/catch.hpp>

#include <string>

#include "kiln/kiln.h"

#include "error_test_util.h"

namespace k = kiln;

namespace {

using kiln::testing::error_of;

// Checks that `msg` names every part and this file's line `line`.
void check_message(const std::string& msg, std::initializer_list<std::string> parts, int line) {
  kiln::testing::check_message_at(msg, parts, "frontend_errors_test.cpp", line);
}

// Built per test (not at static-initialization time) so a failure is reported, not a crash.
struct Tensors {
  k::Tensor A = k::constant({{1.f, 2.f}, {3.f, 4.f}});
  k::Tensor v3 = k::constant({1.f, 2.f, 3.f});
};

}  // namespace

TEST_CASE_METHOD(Tensors, "shape mismatch in A + B names add, both operands and the user's line",
                 "[errors]") {
  int line = __LINE__ + 1;
  std::string msg = error_of<kiln::ShapeError>([&] { (void)(A + v3); });
  check_message(msg, {"add: ", "f32[2,2], f32[3]", "(2, 2)", "(3,)"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)(2.f * A - v3); });
  check_message(msg, {"sub: ", "f32[2,2], f32[3]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)k::multiply(A, v3); });
  check_message(msg, {"mul: ", "f32[2,2], f32[3]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)k::greater(v3, A); });
  check_message(msg, {"greater: ", "f32[3], f32[2,2]"}, line);

  k::Tensor acc = A;
  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { acc += v3; });
  check_message(msg, {"add: ", "f32[2,2], f32[3]"}, line);
}

TEST_CASE_METHOD(Tensors, "dtype mismatch is a TypeError naming both dtypes", "[errors]") {
  k::Tensor ints = k::constant({1, 2});
  int line = __LINE__ + 1;
  std::string msg = error_of<kiln::TypeError>([&] { (void)(A + ints); });
  check_message(msg, {"add: ", "f32[2,2], i32[2]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::TypeError>([&] { (void)k::matmul(A, k::cast(A, k::f64)); });
  check_message(msg, {"matmul: ", "f32[2,2], f64[2,2]"}, line);

  // A scalar that the tensor's dtype cannot hold exactly.
  line = __LINE__ + 1;
  msg = error_of<kiln::TypeError>([&] { (void)(ints * 0.5f); });
  check_message(msg, {"mul: ", "0.5", "int32", "i32[2]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::TypeError>([&] { (void)k::log(ints); });
  check_message(msg, {"log: ", "i32[2]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::TypeError>([&] { (void)k::reduce_std(ints); });
  check_message(msg, {"i32"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::TypeError>([&] { (void)-k::constant({true}); });
  check_message(msg, {"neg: ", "bool[1]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::TypeError>([&] { (void)k::constant({1.5f, 2.f}, k::i32); });
  check_message(msg, {"constant: ", "1.5", "int32"}, line);
}

TEST_CASE_METHOD(Tensors, "bad axes, reshapes and matmul dims are ShapeErrors", "[errors]") {
  int line = __LINE__ + 1;
  std::string msg = error_of<kiln::ShapeError>([&] { (void)k::reduce_sum(A, 2); });
  check_message(msg, {"reduce_sum: ", "f32[2,2]", "axes = [2]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)k::argmax(A, -3); });
  check_message(msg, {"argmax: ", "f32[2,2]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)k::softmax(A, 5); });
  check_message(msg, {"softmax: ", "f32[2,2]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)k::reshape(A, {3}); });
  check_message(msg, {"reshape: ", "f32[2,2]", "shape = [3]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)k::matmul(A, k::zeros({3, 2})); });
  check_message(msg, {"matmul: ", "f32[2,2], f32[3,2]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)k::concat({A, v3}, 0); });
  check_message(msg, {"concat: ", "f32[2,2], f32[3]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)k::stack({v3, k::ones({2})}); });
  check_message(msg, {"stack: ", "f32[3], f32[2]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)k::squeeze(A, 0); });
  check_message(msg, {"squeeze: ", "f32[2,2]"}, line);
}

TEST_CASE_METHOD(Tensors, "bad slices and index items", "[errors]") {
  int line = __LINE__ + 1;
  std::string msg = error_of<kiln::ValueError>([&] { (void)A.index({k::Slice(0, 2, 0)}); });
  check_message(msg, {"index: ", "step", "f32[2,2]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)A.index({k::Slice(), -3}); });
  check_message(msg, {"index: ", "-3", "f32[2,2]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)v3.index({0, 0}); });
  check_message(msg, {"index: ", "too many indices", "f32[3]"}, line);
}

TEST_CASE_METHOD(Tensors, "split counts and sizes that do not fit", "[errors]") {
  k::Tensor x = k::range(5);
  int line = __LINE__ + 1;
  std::string msg = error_of<kiln::ValueError>([&] { (void)k::split(x, 3); });
  check_message(msg, {"split: ", "i32[5]", "size 5 into 3"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ValueError>([&] { (void)k::split(x, 0); });
  check_message(msg, {"split: ", "i32[5]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ShapeError>([&] { (void)k::split(x, 5, 1); });
  check_message(msg, {"split: ", "i32[5]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ValueError>([&] { (void)k::split(x, std::vector<int64_t>{4, -1, 3}); });
  check_message(msg, {"split: ", "i32[5]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::Error>([&] { (void)k::split(x, std::vector<int64_t>{2, 2}); });
  check_message(msg, {"split: ", "i32[5]"}, line);
}

TEST_CASE_METHOD(Tensors, "item and to_vector check the type and element count", "[errors]") {
  int line = __LINE__ + 1;
  std::string msg = error_of<kiln::TypeError>([&] { (void)k::constant(3).item<float>(); });
  check_message(msg, {"item<float>", "int32", "float32"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::TypeError>([&] { (void)A.to_vector<double>(); });
  check_message(msg, {"to_vector<double>", "float32", "f32[2,2]"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ValueError>([&] { (void)A.item<float>(); });
  check_message(msg, {"item<float>", "exactly one element", "(2, 2)"}, line);
}

TEST_CASE_METHOD(Tensors, "bad constants and creation arguments", "[errors]") {
  int line = __LINE__ + 1;
  std::string msg = error_of<kiln::ValueError>([&] { (void)k::constant({{1.f, 2.f}, {3.f}}); });
  check_message(msg, {"constant: ", "rectangular"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ValueError>([&] { (void)k::constant(std::vector<int>{1, 2}, {3}); });
  check_message(msg, {"constant: ", "(3,)"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ValueError>([&] { (void)k::constant(std::vector<int>{}, {-1, 0}); });
  check_message(msg, {"constant: ", "negative"}, line);

  // Negative dims reach the op's own validation; it must be a user error, not a crash.
  line = __LINE__ + 1;
  msg = error_of<kiln::Error>([&] { (void)k::zeros({2, -1}); });
  check_message(msg, {"fill: "}, line);
  CHECK_THROWS_AS(k::zeros({2, -1}), kiln::Error);

  line = __LINE__ + 1;
  msg = error_of<kiln::TypeError>([&] { (void)k::random_uniform({2}, 0, 1, 1, k::i32); });
  check_message(msg, {"random_uniform: "}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ValueError>([&] { (void)k::range(0, 4, 0); });
  check_message(msg, {"range: "}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::TypeError>([&] { (void)k::range(0, 2.5f, 1, k::i32); });
  check_message(msg, {"range: ", "2.5"}, line);
}

TEST_CASE_METHOD(Tensors, "run-time failures carry the location too", "[errors]") {
  int line = __LINE__ + 1;
  std::string msg = error_of<kiln::IndexError>([&] { (void)k::gather(v3, k::constant({3})); });
  check_message(msg, {"gather: ", "f32[3], i32[1]"}, line);
}

TEST_CASE_METHOD(Tensors, "undefined tensors are a ValueError, not a crash", "[errors]") {
  k::Tensor undefined;
  int line = __LINE__ + 1;
  std::string msg = error_of<kiln::ValueError>([&] { (void)(A + undefined); });
  check_message(msg, {"add: ", "undefined"}, line);

  line = __LINE__ + 1;
  msg = error_of<kiln::ValueError>([&] { (void)undefined.item<float>(); });
  check_message(msg, {"item<float>", "undefined"}, line);

  CHECK_THROWS_AS(k::reduce_sum(undefined), kiln::ValueError);
  CHECK_THROWS_AS(k::transpose(undefined), kiln::ValueError);
  CHECK_THROWS_AS(undefined.index({0}), kiln::ValueError);
  CHECK_THROWS_AS(k::split(undefined, 2), kiln::ValueError);
}

TEST_CASE_METHOD(Tensors, "errors name the current name scope", "[errors]") {
  k::name_scope model("model");
  k::name_scope dense("dense_1");
  int line = __LINE__ + 1;
  std::string msg = error_of<kiln::ShapeError>([&] { (void)k::matmul(A, k::ones({3, 1})); });
  check_message(msg, {"matmul: ", "(scope model/dense_1)"}, line);
}
