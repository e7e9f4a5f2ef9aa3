// The random-program generator: its programs verify, round-trip through the text form, run in
// the interpreter, cover the ops they should, and are well conditioned (the same graph in f32
// and in f64 agrees to f32 precision). Also compare_results and its messages.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <set>

#include "kiln/ir/interpreter.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/ir/verifier.h"
#include "op_test_util.h"
#include "random_program.h"

using namespace kiln;
using kiln::testing::compare_results;
using kiln::testing::make;
using kiln::testing::RandomCase;
using kiln::testing::RandomProgramOptions;

namespace {

constexpr int kSeeds = 300;

bool all_finite(const ir::HostTensor& t) {
  if (!ir::is_floating(t.dtype())) return true;
  for (int64_t i = 0; i < t.num_elements(); ++i)
    if (!std::isfinite(t.element_as_double(i))) return false;
  return true;
}

// The f64 results rounded to f32, to compare with an f32 run.
std::vector<ir::HostTensor> to_f32(const std::vector<ir::HostTensor>& tensors) {
  std::vector<ir::HostTensor> out;
  for (const auto& t : tensors) {
    ir::HostTensor f(ir::DType::f32, t.shape());
    for (int64_t i = 0; i < t.num_elements(); ++i)
      f.data<float>()[i] = static_cast<float>(t.element_as_double(i));
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

TEST_CASE("random programs verify, round-trip and run", "[random_program]") {
  int nodes = 0;
  kiln::testing::for_each_random_program(kSeeds, [&](const RandomCase& c) {
    INFO(c.describe());
    REQUIRE_NOTHROW(ir::verify(c.function));
    std::string text = ir::print(c.function);
    ir::Function parsed = ir::parse(text);
    CHECK(ir::print(parsed) == text);
    REQUIRE(c.inputs.size() == c.function.params().size());
    ir::EvalResult result = ir::evaluate(c.function, c.inputs);
    REQUIRE(result.outputs.size() == c.function.outputs().size());
    REQUIRE(!result.outputs.empty());
    for (size_t i = 0; i < result.outputs.size(); ++i) {
      INFO("output " << i);
      CHECK(result.outputs[i].type() == c.function.outputs()[i]->type());
      CHECK(all_finite(result.outputs[i]));
    }
    // The parsed copy computes the same thing.
    std::string diff =
        compare_results(ir::evaluate(parsed, c.inputs).outputs, result.outputs, 0, 0);
    INFO(diff);
    CHECK(diff.empty());
    nodes += static_cast<int>(c.function.nodes().size());
  });
  CHECK(nodes > kSeeds * 5);
}

TEST_CASE("random programs are deterministic in the seed", "[random_program]") {
  for (uint64_t seed : {1u, 7u, 123456u}) {
    RandomCase a = kiln::testing::random_case(seed), b = kiln::testing::random_case(seed);
    CHECK(ir::print(a.function) == ir::print(b.function));
    CHECK(compare_results(a.inputs, b.inputs, 0, 0).empty());
  }
  CHECK(ir::print(kiln::testing::random_program(1)) != ir::print(kiln::testing::random_program(2)));
}

TEST_CASE("random programs cover the ops, dtypes and shapes they should", "[random_program]") {
  std::set<ir::Op> ops;
  std::set<ir::DType> dtypes;
  bool zero_size = false, size_one = false, odd_size = false, negative_stride = false;
  bool batched_matmul = false, keepdims = false;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    ir::Function f = kiln::testing::random_program(seed);
    for (const auto& p : f.params())
      dtypes.insert(p->type().dtype);
    for (const auto& node : f.nodes()) {
      ops.insert(node->op());
      for (const auto& t : node->input_types()) {
        for (int64_t d : t.shape) {
          zero_size |= d == 0;
          size_one |= d == 1;
          odd_size |= d > 16 && d % 16 != 0;
        }
      }
      if (node->op() == ir::Op::slice)
        for (int64_t s : node->attrs().get_ints("strides"))
          negative_stride |= s < 0;
      if (node->op() == ir::Op::matmul) batched_matmul |= node->input(0)->type().shape.rank() > 2;
      if (node->attrs().has("keepdims")) keepdims |= node->attrs().get_bool("keepdims");
    }
  }
  using ir::Op;
  for (Op op : {Op::add,     Op::sub,        Op::mul,         Op::div,         Op::pow,
                Op::maximum, Op::minimum,    Op::exp,         Op::log,         Op::sqrt,
                Op::tanh,    Op::sigmoid,    Op::relu,        Op::floor,       Op::select,
                Op::greater, Op::reduce_sum, Op::reduce_mean, Op::reduce_max,  Op::reduce_prod,
                Op::reshape, Op::transpose,  Op::slice,       Op::squeeze,     Op::expand_dims,
                Op::matmul,  Op::conv2d,     Op::softmax,     Op::log_softmax, Op::constant}) {
    INFO(ir::op_name(op));
    CHECK(ops.count(op) == 1);
  }
  // Every elementwise op of the table that computes on floats (the generator takes its op lists
  // from the table; cast and select have the dtype class `any` and are not picked from it).
  for (int i = 0; i < ir::kNumOps; ++i) {
    const Op op = static_cast<Op>(i);
    if (!ir::has_trait(op, ir::kElementwise) || ir::op_dtypes(op) == ir::DTypes::any ||
        !ir::dtypes_admit(ir::op_dtypes(op), ir::DType::f32))
      continue;
    INFO(ir::op_name(op) << " is in the op table but no random program uses it");
    CHECK(ops.count(op) == 1);
  }
  CHECK(dtypes == std::set<ir::DType>{ir::DType::f32, ir::DType::f64});
  CHECK(zero_size);
  CHECK(size_one);
  CHECK(odd_size);
  CHECK(negative_stride);
  CHECK(batched_matmul);
  CHECK(keepdims);
}

// The differential tests compare two computations that round differently; the generator must
// keep that difference small. The same graph in f32 and in f64 is the extreme case.
TEST_CASE("random programs are well conditioned: f32 agrees with f64", "[random_program]") {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    RandomProgramOptions f32_options, f64_options;
    f32_options.dtype = ir::DType::f32;
    f64_options.dtype = ir::DType::f64;
    RandomCase narrow = kiln::testing::random_case(seed, f32_options);
    RandomCase wide = kiln::testing::random_case(seed, f64_options);
    INFO(narrow.describe());
    auto got = ir::evaluate(narrow.function, narrow.inputs).outputs;
    auto want = to_f32(ir::evaluate(wide.function, wide.inputs).outputs);
    std::string diff = compare_results(got, want, 1e-4, 1e-4);
    INFO(diff);
    CHECK(diff.empty());
  }
}

TEST_CASE("random program options: exclusions, caps and updates", "[random_program]") {
  RandomProgramOptions options;
  options.exclude_ops = {ir::Op::matmul, ir::Op::conv2d, ir::Op::pow, ir::Op::slice};
  options.max_params = 3;
  options.max_elements = 64;
  options.updates = true;
  int updates = 0;
  kiln::testing::for_each_random_program(
      100,
      [&](const RandomCase& c) {
        INFO(c.describe());
        CHECK(c.function.params().size() <= 3);
        for (const auto& node : c.function.nodes()) {
          for (ir::Op op : options.exclude_ops)
            CHECK(node->op() != op);
          for (const auto& t : node->output_types()) {
            int64_t size = 1;
            for (int64_t d : t.shape)
              size *= std::max<int64_t>(d, 1);
            CHECK(size <= 64);
          }
        }
        REQUIRE_NOTHROW(ir::verify(c.function));
        CHECK(ir::print(ir::parse(ir::print(c.function))) == ir::print(c.function));
        ir::EvalResult r = ir::evaluate(c.function, c.inputs);
        CHECK(r.updates.size() == c.function.updates().size());
        updates += static_cast<int>(c.function.updates().size());
      },
      options, 1000);
  CHECK(updates > 0);
}

TEST_CASE("random_inputs are benign and exact in f32", "[random_program]") {
  ir::Function f;
  f.add_param({ir::DType::f32, ir::Shape{100}});
  f.add_param({ir::DType::f64, ir::Shape{100}});
  f.add_param({ir::DType::i32, ir::Shape{100}});
  f.add_param({ir::DType::boolean, ir::Shape{0}});
  auto inputs = kiln::testing::random_inputs(f, 5);
  REQUIRE(inputs.size() == 4);
  for (int64_t i = 0; i < 100; ++i) {
    for (int p = 0; p < 2; ++p) {
      double x = inputs[static_cast<size_t>(p)].element_as_double(i);
      CHECK(std::abs(x) <= 2.0);
      CHECK(x * 256 == std::round(x * 256));
    }
    CHECK(std::abs(inputs[2].element_as_double(i)) <= 5);
  }
  // Same seed, same parameter index and type: the same numbers.
  CHECK(compare_results(kiln::testing::random_inputs(f, 5), inputs, 0, 0).empty());
}

TEST_CASE("compare_results names the output, element and values", "[random_program]") {
  std::vector<ir::HostTensor> want = {make<float>({2, 2}, {1, 2, 3, 4}),
                                      make<int32_t>({3}, {1, 2, 3})};
  std::vector<ir::HostTensor> same = {make<float>({2, 2}, {1, 2, 3.00001f, 4}),
                                      make<int32_t>({3}, {1, 2, 3})};
  CHECK(compare_results(same, want, 1e-4, 0).empty());
  CHECK(compare_results(want, want, 0, 0).empty());

  std::vector<ir::HostTensor> off = {make<float>({2, 2}, {1, 2, 3, 4.5f}),
                                     make<int32_t>({3}, {1, 2, 3})};
  std::string diff = compare_results(off, want, 1e-3, 1e-3);
  CHECK_THAT(diff, Catch::Contains("output 0 (f32[2,2]): element 3 at [1, 1]: got 4.5, want 4"));
  CHECK_THAT(diff, Catch::Contains("1 of 4 elements differ"));

  std::vector<ir::HostTensor> int_off = {want[0], make<int32_t>({3}, {1, 5, 7})};
  CHECK_THAT(compare_results(int_off, want, 1, 1),
             Catch::Contains("output 1 (i32[3]): element 1 at [1]: got 5, want 2") &&
                 Catch::Contains("2 of 3 elements differ"));

  std::vector<ir::HostTensor> wrong_type = {make<double>({2, 2}, {1, 2, 3, 4}), want[1]};
  CHECK_THAT(compare_results(wrong_type, want, 1, 1),
             Catch::Contains("output 0: got type f64[2,2], want f32[2,2]"));
  CHECK_THAT(compare_results(std::span(want).first(1), want, 1, 1),
             Catch::Contains("got 1 results, want 2"));

  float nan = std::nanf(""), inf = INFINITY;
  std::vector<ir::HostTensor> special = {make<float>({3}, {nan, inf, -inf})};
  CHECK(compare_results(special, special, 0, 0).empty());
  std::vector<ir::HostTensor> special_off = {make<float>({3}, {nan, -inf, -inf})};
  CHECK_THAT(compare_results(special_off, special, 1, 1),
             Catch::Contains("element 1 at [1]: got -inf, want inf"));
  std::vector<ir::HostTensor> nan_off = {make<float>({3}, {0, inf, -inf})};
  CHECK_THAT(compare_results(nan_off, special, 1, 1), Catch::Contains("got 0, want nan"));
}
