// Sparse categorical cross-entropy labels outside [0, classes) are an IndexError wherever the
// loss runs: eagerly, inside kiln::function, inside model.fit's compiled step and in an AOT
// library (the check_index op, checked by compiled code as gather's indices are), never a
// silent loss of 0. Also the op itself: interpreter and compiled code agree.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "aot_test_util.h"
#include "error_test_util.h"
#include "file_test_util.h"
#include "kiln/frontend/core/compile.h"
#include "kiln/ir/interpreter.h"

namespace k = kiln;
namespace L = kiln::losses;
using Catch::Contains;
using k::testing::check_message_at;
using k::testing::error_of;

namespace {

k::Tensor logits() {
  return k::constant({{1.f, 2.f, 3.f}, {0.f, 0.f, 0.f}, {3.f, -1.f, 0.5f}});
}

// A function with one check_index node on an i32[n] parameter.
k::ir::Function check_function(int64_t n, int64_t limit) {
  k::ir::Function f("check");
  k::ir::Value* x = f.add_param({k::DType::i32, k::Shape{n}}, "ids");
  k::ir::Attrs attrs;
  attrs.set_int("limit", limit).set_string("what", "label");
  f.set_outputs(
      {f.append(k::ir::Op::check_index, {x}, attrs, "loss", {"model.cpp", 7, 1})->output()});
  return f;
}

std::string interpreter_error(const k::ir::Function& f, const k::ir::HostTensor& ids) {
  return error_of<k::IndexError>([&] { k::ir::evaluate(f, std::vector<k::ir::HostTensor>{ids}); });
}

}  // namespace

TEST_CASE("check_index passes good values and reports the first bad one, compiled as interpreted",
          "[losses][check_index]") {
  using k::ir::HostTensor;
  auto compiled = k::compile(check_function(5, 4));
  HostTensor good =
      HostTensor::from_values<int32_t>(k::Shape{5}, std::vector<int32_t>{0, 3, 1, 2, 3});
  k::ir::EvalResult r = compiled->run(std::vector<HostTensor>{good});
  CHECK(r.outputs.at(0).bitwise_equal(good));

  for (std::vector<int32_t> ids : {std::vector<int32_t>{0, 4, 1, -1, 9}, {-2, 0, 0, 0, 7}}) {
    HostTensor bad = HostTensor::from_values<int32_t>(k::Shape{5}, ids);
    std::string want = interpreter_error(check_function(5, 4), bad);
    std::string got = error_of<k::IndexError>([&] { compiled->run(std::vector<HostTensor>{bad}); });
    CHECK(got == want);
  }
  HostTensor bad =
      HostTensor::from_values<int32_t>(k::Shape{5}, std::vector<int32_t>{0, 4, 1, -1, 9});
  CHECK_THAT(interpreter_error(check_function(5, 4), bad),
             Contains("check_index: label 4 at position 1 is out of range [0, 4)") &&
                 Contains("model.cpp:7:1 (scope loss)"));
  // limit 0: nothing is valid; the message says so.
  HostTensor zero = HostTensor::from_values<int32_t>(k::Shape{1}, std::vector<int32_t>{0});
  CHECK_THAT(interpreter_error(check_function(1, 0), zero),
             Contains("label 0 at position 0 is out of range [0, 0) (no value is valid)"));
  // Bad attributes and operands are rejected by its shape rule.
  k::ir::Function f("bad");
  k::ir::Value* x = f.add_param({k::DType::f32, k::Shape{2}}, "x");
  CHECK_THROWS_AS(f.append(k::ir::Op::check_index, {x}, k::ir::Attrs().set_int("limit", 2)),
                  k::TypeError);
  k::ir::Value* i = f.add_param({k::DType::i64, k::Shape{2}}, "i");
  CHECK_THROWS_AS(f.append(k::ir::Op::check_index, {i}, k::ir::Attrs().set_int("limit", -1)),
                  k::ValueError);
  CHECK_THROWS_AS(f.append(k::ir::Op::check_index, {i}, k::ir::Attrs()), k::ValueError);
}

TEST_CASE("an out-of-range sparse label is an IndexError eagerly", "[losses][check_index]") {
  int line = __LINE__ + 2;
  std::string msg = error_of<k::IndexError>([] {
    L::sparse_categorical_crossentropy(k::constant({0, 3, 1}), logits(), true);
  });
  check_message_at(msg, {"losses.sparse_categorical_crossentropy", "label 3 at position 1"},
                   __FILE__, line);
}

TEST_CASE("an out-of-range sparse label is an IndexError inside kiln::function",
          "[losses][check_index]") {
  int line = __LINE__ + 2;
  auto loss = k::function([](const k::Tensor& ids, const k::Tensor& x) {
    return L::sparse_categorical_crossentropy(ids, x, true);
  });
  // Good labels: the eager values.
  k::Tensor good = k::constant({2, 0, 1});
  std::vector<float> got = loss(good, logits()).to_vector<float>();
  std::vector<float> want =
      L::sparse_categorical_crossentropy(good, logits(), true).to_vector<float>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(got[i] == Approx(want[i]).epsilon(1e-6));

  for (auto [ids, value, position] :
       {std::tuple{std::vector<int>{0, 1, 5}, 5, 2}, std::tuple{std::vector<int>{-1, 1, 2}, -1, 0},
        std::tuple{std::vector<int>{0, 3, 3}, 3, 1}}) {
    std::string msg = error_of<k::IndexError>([&] { loss(k::constant(ids), logits()); });
    check_message_at(
        msg,
        {"check_index: losses.sparse_categorical_crossentropy label " + std::to_string(value) +
         " at position " + std::to_string(position) + " is out of range [0, 3)"},
        __FILE__, line);
  }
  CHECK(loss.trace_count() == 1);

  // Float labels holding class ids (cast, then checked), and i64 labels, in a Loss object.
  auto loss_object = k::function([](const k::Tensor& ids, const k::Tensor& x) {
    return L::SparseCategoricalCrossentropy(true)(ids, x);
  });
  CHECK_THAT(error_of<k::IndexError>([&] {
               loss_object(k::constant({0.f, 1.f, 4.f}), logits());
             }),
             Contains("label 4 at position 2 is out of range [0, 3)") &&
                 Contains("scope sparse_categorical_crossentropy"));
  CHECK_THROWS_AS(loss_object(k::constant({0, 7, 1}, k::i64), logits()), k::IndexError);
  CHECK(loss_object(k::constant({0.f, 1.f, 2.f}), logits()).item<float>() > 0.f);
  // Float labels that are no class id: a fraction or NaN reads as -1, a huge value as 2^31 (its
  // cast would be undefined); each is an error, never a silent loss.
  CHECK_THAT(error_of<k::IndexError>([&] {
               loss_object(k::constant({0.f, 0.5f, 2.f}), logits());
             }),
             Contains("label -1 at position 1 is out of range [0, 3)"));
  CHECK_THAT(error_of<k::IndexError>([&] {
               loss_object(k::constant({0.f, 1.f, std::nanf("")}), logits());
             }),
             Contains("label -1 at position 2 is out of range [0, 3)"));
  CHECK_THAT(error_of<k::IndexError>([&] {
               loss_object(k::constant({1e30f, 1.f, 2.f}), logits());
             }),
             Contains("label 2147483648 at position 0 is out of range [0, 3)"));
}

TEST_CASE("an out-of-range sparse label is an IndexError inside model.fit's compiled step",
          "[losses][check_index][model]") {
  k::set_random_seed(3);
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.compile(k::optimizers::SGD(0.1), L::SparseCategoricalCrossentropy());
  k::Tensor x = k::random_uniform({8, 2}, 0.0, 1.0, 5);
  // Float labels: fit's eager check of integer class ids does not look at them, so the
  // compiled step's check is what finds the 3.
  k::Tensor y = k::constant({0.f, 1.f, 2.f, 0.f, 1.f, 3.f, 0.f, 1.f});
  int line = __LINE__ + 2;
  std::string msg = error_of<k::IndexError>(
      [&] { model.fit(x, y, {.epochs = 1, .batch_size = 4, .shuffle = false, .verbose = 0}); });
  // The second batch, samples 4 to 7: its element 1.
  check_message_at(msg,
                   {"losses.sparse_categorical_crossentropy label 3 at position 1 is out of "
                    "range [0, 3)",
                    "scope sparse_categorical_crossentropy"},
                   __FILE__, line);
  // Good labels train.
  k::Tensor good = k::constant({0.f, 1.f, 2.f, 0.f, 1.f, 2.f, 0.f, 1.f});
  k::History h = model.fit(x, good, {.epochs = 2, .batch_size = 4, .verbose = 0});
  CHECK(h.epochs.size() == 2);
}

TEST_CASE("an out-of-range sparse label fails an AOT library's run", "[losses][check_index][aot]") {
  k::testing::TempDir dir;
  auto loss = k::function(
      [](const k::Tensor& ids, const k::Tensor& x) {
        return L::sparse_categorical_crossentropy(ids, x, true);
      },
      "scce");
  const k::aot::Library lib =
      k::aot::compile(loss, {k::TensorSpec({3}, k::i32), k::TensorSpec({3, 3}, k::f32)},
                      {.name = "scce", .out_dir = dir.path.string()});
  k::testing::AotLibrary so(lib.library, "scce");
  void* model = so.create();
  auto run = so.fn<int(void*, const int32_t*, const float*, float*)>("run");
  const k::Tensor x = logits();
  const int32_t good[3] = {2, 0, 1}, bad[3] = {2, 7, 1};
  float out[3] = {};
  REQUIRE(run(model, good, x.host().data<float>(), out) == 0);
  std::vector<float> want =
      L::sparse_categorical_crossentropy(k::constant({2, 0, 1}), x, true).to_vector<float>();
  for (int i = 0; i < 3; ++i)
    CHECK(out[i] == Approx(want[size_t(i)]).epsilon(1e-6));
  CHECK(run(model, bad, x.host().data<float>(), out) != 0);
  CHECK_THAT(so.last_error(model),
             Contains("index 7 (element 1 of indices) is out of range for an axis of size 3"));
  so.destroy(model);
}
