// Eager ops on compiled kernels (frontend/core/eager.h): they agree with the reference interpreter,
// the kernel cache stays bounded, elementwise ops go generic in size, bad settings are errors,
// and a GradientTape records a compiled function's call whole.
#include "kiln/frontend/core/eager.h"

#include <catch2/catch.hpp>

#include "env_test_util.h"

#include <tuple>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "kiln/codegen/generic_gemm.h"
#include "kiln/ir/interpreter.h"
#include "kiln/kiln.h"
#include "random_program.h"

namespace k = kiln;
namespace ir = kiln::ir;
using Catch::Contains;

namespace {

// Sets the eager mode while it lives.
struct ModeGuard {
  k::EagerMode previous = k::eager_mode();
  explicit ModeGuard(k::EagerMode mode) { k::set_eager_mode(mode); }
  ~ModeGuard() { k::set_eager_mode(previous); }
};

using kiln::testing::ScopedEnv;

// Sets the cache capacity while it lives.
struct CapacityGuard {
  int64_t previous = k::eager_cache_info().capacity;
  explicit CapacityGuard(int64_t kernels) { k::set_eager_cache_capacity(kernels); }
  ~CapacityGuard() { k::set_eager_cache_capacity(previous); }
};

// Runs `f` node by node through the eager op path.
std::vector<ir::HostTensor> run_eagerly(const ir::Function& f,
                                        const std::vector<ir::HostTensor>& inputs) {
  std::unordered_map<const ir::Value*, k::Tensor> values;
  for (size_t i = 0; i < inputs.size(); ++i)
    values.emplace(f.param(i), k::Tensor(inputs[i]));
  std::vector<ir::Value*> every_value;  // every node runs, used or not
  for (const auto& node : f.nodes())
    for (size_t i = 0; i < node->num_outputs(); ++i)
      every_value.push_back(node->output(i));
  std::vector<const ir::Node*> nodes = k::detail::nodes_needed(f, 0, every_value);
  k::detail::replay(nodes, values, std::source_location::current());
  std::vector<ir::HostTensor> outputs;
  for (const ir::Value* v : f.outputs())
    outputs.push_back(values.at(v).host());
  return outputs;
}

template <class T>
std::vector<T> both_modes(const std::function<k::Tensor()>& compute, std::vector<T>* interpreted) {
  std::vector<T> compiled = compute().to_vector<T>();
  ModeGuard guard(k::EagerMode::interpret);
  *interpreted = compute().to_vector<T>();
  return compiled;
}

}  // namespace

TEST_CASE("eager ops run compiled kernels that agree with the interpreter on random programs",
          "[eager]") {
  REQUIRE(k::eager_mode() == k::EagerMode::compiled);
  k::testing::RandomProgramOptions options;
  options.max_ops = 10;
  k::testing::for_each_random_program(
      60,
      [](const k::testing::RandomCase& c) {
        INFO(c.describe());
        std::vector<ir::HostTensor> got = run_eagerly(c.function, c.inputs);
        std::vector<ir::HostTensor> want = ir::evaluate(c.function, c.inputs).outputs;
        std::string diff = k::testing::compare_results(got, want, 1e-5, 1e-5);
        INFO(diff);
        CHECK(diff.empty());
      },
      options);
}

TEST_CASE("eager integer and bool ops agree with the interpreter", "[eager]") {
  k::Tensor a = k::constant(std::vector<int32_t>{7, -7, 5, 0, 9, -3});
  k::Tensor b = k::constant(std::vector<int32_t>{2, 2, 0, 3, -4, 0});
  std::vector<int32_t> want_i;
  // Integer division by zero is defined (docs/ops.md): the same in both.
  CHECK(both_modes<int32_t>([&] { return a / b; }, &want_i) == want_i);
  CHECK(both_modes<int32_t>([&] { return k::maximum(a, b) * 3 - a; }, &want_i) == want_i);
  std::vector<bool> want_b;
  CHECK(both_modes<bool>([&] { return k::less(a, b); }, &want_b) == want_b);
  CHECK(both_modes<bool>([&] { return k::logical_and(k::greater(a, 0), k::not_equal(b, 0)); },
                         &want_b) == want_b);
  std::vector<int64_t> want_l;
  k::Tensor m = k::reshape(a, {2, 3});
  CHECK(both_modes<int64_t>([&] { return k::argmax(m, 1); }, &want_l) == want_l);
  std::vector<uint8_t> want_u;
  CHECK(both_modes<uint8_t>([&] { return k::cast(a * 40, k::u8); }, &want_u) == want_u);
  std::vector<float> want_f;
  CHECK(both_modes<float>([&] { return k::one_hot(k::minimum(k::abs(a), 3), 4); }, &want_f) ==
        want_f);
}

TEST_CASE("a bad gather index eagerly is the interpreter's IndexError at the user's line",
          "[eager]") {
  k::Tensor params = k::constant(std::vector<float>{1, 2, 3});
  k::Tensor indices = k::constant(std::vector<int32_t>{0, 5});
  const int line = __LINE__ + 1;
  auto bad = [&] { return k::gather(params, indices); };
  std::string compiled, interpreted;
  try {
    bad();
  } catch (const k::IndexError& e) {
    compiled = e.what();
  }
  {
    ModeGuard guard(k::EagerMode::interpret);
    try {
      bad();
    } catch (const k::IndexError& e) {
      interpreted = e.what();
    }
  }
  REQUIRE_FALSE(compiled.empty());
  CHECK(compiled == interpreted);
  CHECK_THAT(compiled, Contains("eager_test.cpp:" + std::to_string(line)));
  CHECK_THAT(compiled, Contains("5"));
}

TEST_CASE("KILN_EAGER=interpret runs the interpreter and compiles nothing", "[eager]") {
  ModeGuard guard(k::EagerMode::interpret);
  const auto before = k::eager_cache_info();
  k::Tensor x = k::constant(std::vector<float>{1, 2, 3});
  k::Tensor y = k::exp(x) * x + 1.f;
  CHECK(y.to_vector<float>()[0] == Approx(std::exp(1.f) + 1.f));
  const auto after = k::eager_cache_info();
  CHECK(after.hits == before.hits);
  CHECK(after.compiles == before.compiles);
}

TEST_CASE("KILN_EAGER and KILN_EAGER_CACHE_SIZE are read and checked", "[eager]") {
  {
    ScopedEnv env("KILN_EAGER", "interpret");
    CHECK(k::detail::eager_mode_from_env() == k::EagerMode::interpret);
  }
  {
    ScopedEnv env("KILN_EAGER", "compiled");
    CHECK(k::detail::eager_mode_from_env() == k::EagerMode::compiled);
  }
  CHECK(k::detail::eager_mode_from_env() == k::EagerMode::compiled);
  {
    ScopedEnv env("KILN_EAGER", "jit");
    CHECK_THROWS_AS(k::detail::eager_mode_from_env(), k::ValueError);
    CHECK_THROWS_WITH(k::detail::eager_mode_from_env(),
                      Contains("KILN_EAGER='jit'") && Contains("'interpret'"));
  }
  CHECK(k::detail::eager_capacity_from_env() == 1024);
  {
    ScopedEnv env("KILN_EAGER_CACHE_SIZE", "64");
    CHECK(k::detail::eager_capacity_from_env() == 64);
  }
  for (const char* bad : {"0", "-3", "12k", "lots", "99999999999999999999999"}) {
    ScopedEnv env("KILN_EAGER_CACHE_SIZE", bad);
    CHECK_THROWS_WITH(k::detail::eager_capacity_from_env(),
                      Contains("KILN_EAGER_CACHE_SIZE") && Contains(bad));
  }
  CHECK_THROWS_AS(k::set_eager_cache_capacity(0), k::ValueError);
  CHECK_THROWS_AS(k::set_eager_cache_capacity(-1), k::ValueError);
}

TEST_CASE("the eager kernel cache holds at most its capacity", "[eager]") {
  k::clear_eager_cache();
  CapacityGuard capacity(3);
  k::Tensor w = k::ones({4, 2});
  for (int64_t rows = 1; rows <= 6; ++rows) {
    k::Tensor x = k::fill({rows, 4}, 0.5f);
    std::vector<float> y = k::matmul(x, w).to_vector<float>();
    REQUIRE(y.size() == static_cast<size_t>(rows * 2));
    for (float v : y)
      CHECK(v == 2.f);
    CHECK(k::eager_cache_info().kernels <= 3);
  }
  const auto info = k::eager_cache_info();
  CHECK(info.compiles == 6);
  CHECK(info.evictions == 3);
  CHECK(info.kernels == 3);
  CHECK(info.capacity == 3);
  // The most recent shapes are held; the first was dropped and compiles again.
  k::matmul(k::fill({6, 4}, 1.f), w);
  CHECK(k::eager_cache_info().compiles == 6);
  k::matmul(k::fill({1, 4}, 1.f), w);
  CHECK(k::eager_cache_info().compiles == 7);
}

TEST_CASE("one elementwise kernel serves every shape of a size", "[eager]") {
  k::Tensor a = k::fill({2, 3}, 2.f), b = k::fill({3, 2}, 3.f), c = k::fill({6}, 4.f);
  k::Tensor s = k::constant(2.f, k::f32);
  k::clear_eager_cache();
  CHECK((a * a).to_vector<float>() == std::vector<float>(6, 4.f));
  CHECK((b * b).to_vector<float>() == std::vector<float>(6, 9.f));
  CHECK((c * c).to_vector<float>() == std::vector<float>(6, 16.f));
  CHECK((c * 0.5f).shape() == k::Shape{6});
  CHECK((a * s).shape() == k::Shape{2, 3});    // a 0-d operand stays 0-d
  CHECK(k::eager_cache_info().compiles == 2);  // mul(6, 6) and mul(6, ())
}

TEST_CASE("an elementwise op seen at many sizes goes generic and stays bounded", "[eager]") {
  k::clear_eager_cache();
  const std::vector<int64_t> sizes = {1,   3,    17,   63,    64,    65,     100,
                                      200, 1000, 4097, 70000, 70001, 300001, 5};
  for (int64_t n : sizes) {
    INFO("size " << n);
    k::Tensor x = k::range(0, n, 1, k::f32) * (1.f / static_cast<float>(n)) - 0.5f;
    k::Tensor i = k::range(0, n, 1, k::i32);
    std::vector<float> got = k::tanh(x).to_vector<float>();
    std::vector<float> sum = (x + x * 2.f).to_vector<float>();
    std::vector<bool> less = k::less(i, n / 2).to_vector<bool>();
    std::vector<float> xs = x.to_vector<float>();
    REQUIRE(got.size() == static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      const auto u = static_cast<size_t>(j);
      CHECK(got[u] == Approx(std::tanh(xs[u])).margin(1e-6));
      CHECK(sum[u] == Approx(3 * xs[u]).margin(1e-6));
      CHECK(less[u] == (j < n / 2));
    }
  }
  const auto info = k::eager_cache_info();
  // tanh, mul by a scalar, add, sub by a scalar, less (with a scalar): each compiles exact kernels
  // for its first 4 sizes, then the pieces of sizes 2^6 .. 2^17.
  CHECK(info.generic == 5);
  CHECK(info.compiles <= 5 * (4 + 12));
  // Sizes never seen before add nothing new.
  const int64_t compiles = info.compiles;
  for (int64_t n : {777, 4160}) {  // pieces seen above (512 + 256 + tail, 4096 + 64)
    k::Tensor x = k::fill({n}, 0.25f);
    CHECK(k::tanh(x).to_vector<float>()[static_cast<size_t>(n - 1)] ==
          Approx(std::tanh(0.25f)).margin(1e-6));
  }
  CHECK(k::eager_cache_info().compiles == compiles);
}

TEST_CASE("the sizes of elementwise signatures are remembered for at most capacity of them",
          "[eager]") {
  k::clear_eager_cache();
  CapacityGuard capacity(8);
  k::Tensor x = k::constant({-1.f, -0.5f, 0.f, 2.f});
  // Attributes are part of a signature: every alpha is a signature of its own.
  for (int i = 0; i < 40; ++i) {
    const double alpha = 0.1 + 0.05 * i;
    INFO("alpha " << alpha);
    std::vector<float> y = k::elu(x, alpha).to_vector<float>();
    CHECK(y[0] == Approx(alpha * std::expm1(-1.0)).margin(1e-6));
    CHECK(y[3] == 2.f);
    const auto info = k::eager_cache_info();
    CHECK(info.families == std::min(i + 1, 8));
    CHECK(info.kernels <= 8);
  }
  // A smaller capacity forgets families too.
  k::set_eager_cache_capacity(3);
  CHECK(k::eager_cache_info().families == 3);
  CHECK(k::eager_cache_info().kernels == 3);
  k::clear_eager_cache();
  CHECK(k::eager_cache_info().families == 0);

  // A signature gone generic and then forgotten starts over: it counts its sizes again.
  k::set_eager_cache_capacity(8);
  auto tanh_at = [](int64_t n) {
    std::vector<float> y = k::tanh(k::fill({n}, 0.5f)).to_vector<float>();
    CHECK(y.back() == Approx(std::tanh(0.5f)).margin(1e-6));
  };
  for (int64_t n = 1; n <= 5; ++n)
    tanh_at(n);
  CHECK(k::eager_cache_info().generic == 1);
  for (int i = 0; i < 8; ++i)
    k::elu(x, 1.0 + i);  // eight newer families push tanh's out
  CHECK(k::eager_cache_info().families == 8);
  for (int64_t n = 6; n <= 9; ++n)
    tanh_at(n);  // exact kernels again
  CHECK(k::eager_cache_info().generic == 1);
  tanh_at(10);
  CHECK(k::eager_cache_info().generic == 2);
}

TEST_CASE("ops that work row by row go generic in the batch size and stay bounded", "[eager]") {
  // A broadcast add, row reductions, log_softmax, pooling and a convolution, fed ever new batch
  // sizes (an inference server's requests): exact kernels for the first 4, then pieces of 2^k rows.
  k::clear_eager_cache();
  const k::Tensor bias = k::range(0, 7, 1, k::f32) * 0.1f;
  const k::Tensor filter =
      k::reshape(k::constant(std::vector<float>{0.5f, -1.f, 2.f}), {1, 1, 1, 3});
  std::vector<int64_t> batches;
  for (int64_t n = 2; n <= 60; n += 3)
    batches.push_back(n);
  batches.push_back(1000);
  for (int64_t n : batches) {
    INFO("batch " << n);
    k::Tensor x = k::reshape(k::range(0, n * 7, 1, k::f32) * 0.01f, {n, 7});
    auto ops = [&] {
      k::Tensor image = k::reshape(x, {n, 7, 1, 1});
      return std::vector<k::Tensor>{x + bias,
                                    k::reduce_sum(x, {1}),
                                    k::log_softmax(x),
                                    k::max_pool2d(image, {1, 1}),
                                    k::conv2d(image, filter),
                                    k::cast(k::argmax(1.f - x, 1), k::f32)};
    };
    std::vector<k::Tensor> compiled = ops();
    std::vector<k::Tensor> interpreted;
    {
      ModeGuard guard(k::EagerMode::interpret);
      interpreted = ops();
    }
    for (size_t r = 0; r < compiled.size(); ++r) {
      INFO("result " << r);
      REQUIRE(compiled[r].shape() == interpreted[r].shape());
      std::vector<float> got = compiled[r].to_vector<float>();
      std::vector<float> want = interpreted[r].to_vector<float>();
      for (size_t j = 0; j < got.size(); ++j)
        CHECK(got[j] == Approx(want[j]).margin(1e-5));
    }
  }
  const auto info = k::eager_cache_info();
  // The six row signatures above went generic, and the flattened `range * 0.01f` and
  // `1.f - x` and the argmax's cast. Each row signature compiled its 4 exact batches, then one
  // piece per power of two from at most 16 rows (7 floats are 28 bytes: 16 rows are the fewest
  // that keep pieces 64-byte aligned) to 512: 10 kernels. Each flattened op: 4 exact sizes and
  // at most 12 pieces. The reshapes are copies and range a creation op: no kernels.
  CHECK(info.generic == 9);
  CHECK(info.compiles <= 6 * 10 + 3 * 16);
  const int64_t compiles = info.compiles;
  // New batch sizes now compile nothing.
  for (int64_t n : {301, 77}) {
    k::Tensor x = k::fill({n, 7}, 0.5f);
    std::vector<float> sums = k::reduce_sum(x + bias, {1}).to_vector<float>();
    CHECK(sums[static_cast<size_t>(n - 1)] == Approx(3.5f + 2.1f));
    CHECK(k::log_softmax(x).to_vector<float>()[0] == Approx(-std::log(7.f)));
  }
  CHECK(k::eager_cache_info().compiles == compiles);
}

TEST_CASE("an op with more than 64 operands runs eagerly", "[eager]") {
  // Row operands are a 64-bit mask: operands past the 64th are never row operands.
  std::vector<k::Tensor> parts;
  for (int i = 0; i < 70; ++i)
    parts.push_back(k::fill({2, 1}, static_cast<float>(i)));
  for (int round = 0; round < 6; ++round) {  // past the 4 exact sizes of a signature
    std::vector<float> got = k::concat(parts, 1).to_vector<float>();
    REQUIRE(got.size() == 140);
    CHECK(got[69] == 69.f);
    CHECK(got[70 + 3] == 3.f);
  }
}

TEST_CASE("eager ops on several threads share the cache", "[eager]") {
  k::clear_eager_cache();
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &ok] {
      bool good = true;
      for (int i = 0; i < 50; ++i) {
        k::Tensor x = k::fill({8 + (i % 3)}, static_cast<float>(t));
        for (float v : (x * x + 1.f).to_vector<float>())
          good = good && v == static_cast<float>(t * t + 1);
      }
      ok[static_cast<size_t>(t)] = good;
    });
  }
  for (std::thread& th : threads)
    th.join();
  CHECK(ok == std::vector<int>(4, 1));
}

TEST_CASE("a GradientTape records a compiled function's call whole", "[eager][tape]") {
  k::Variable w(k::constant(std::vector<float>{0.5f, -1.f, 2.f}), "w");
  auto model = [&](const k::Tensor& x) {
    k::Tensor h = k::tanh(x * w.value() + 0.1f);
    return k::reduce_sum(h * h * x);
  };
  auto compiled = k::function(model, "model");
  k::Tensor x = k::constant(std::vector<float>{0.3f, -0.7f, 1.1f});
  compiled(x);  // trace and compile outside the tape

  k::Tensor y_eager, y_call;
  std::vector<k::Tensor> g_eager, g_call;
  {
    k::GradientTape tape;
    tape.watch(x);
    y_eager = model(x);
    g_eager = tape.gradient(y_eager, {k::Source(x), k::Source(w)});
  }
  const auto before = k::eager_cache_info();
  {
    k::GradientTape tape(/*persistent=*/true);
    tape.watch(x);
    y_call = compiled(x);
    // The call ran compiled: no eager op ran for it.
    const auto after_call = k::eager_cache_info();
    CHECK(after_call.hits + after_call.compiles == before.hits + before.compiles);
    g_call = tape.gradient(y_call, {k::Source(x), k::Source(w)});
    // A persistent tape gives the same gradient again.
    std::vector<k::Tensor> again = tape.gradient(y_call, {k::Source(x), k::Source(w)});
    CHECK(again[1].to_vector<float>() == g_call[1].to_vector<float>());
  }
  CHECK(y_call.item<float>() == Approx(y_eager.item<float>()).epsilon(1e-6));
  for (size_t s = 0; s < 2; ++s) {
    std::vector<float> want = g_eager[s].to_vector<float>(), got = g_call[s].to_vector<float>();
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i)
      CHECK(got[i] == Approx(want[i]).epsilon(1e-5));
  }
}

TEST_CASE("a tape computes only the gradients asked for", "[eager][tape]") {
  // A dense layer's rule also builds the input's gradient (a whole GEMM); with the data not a
  // source, it must not run.
  k::Tensor x = k::random_uniform({8, 6}, 0.0, 1.0, 1);
  k::Variable w(k::random_normal({6, 4}, 0.0, 1.0, 2), "w");
  auto kernels_run = [] {
    const auto info = k::eager_cache_info();
    return info.hits + info.compiles;
  };
  auto run = [&](bool with_x) {
    k::GradientTape tape;
    tape.watch(x);
    k::Tensor y = k::reduce_sum(k::matmul(x, w.value()));
    int64_t before = kernels_run();
    std::vector<k::Tensor> g =
        with_x ? tape.gradient(y, {k::Source(w), k::Source(x)}) : tape.gradient(y, {k::Source(w)});
    int64_t ran = kernels_run() - before;
    // d/dw sum(x·w) = column sums of x, the same in every column.
    std::vector<float> xs = x.to_vector<float>(), gw = g[0].to_vector<float>();
    for (int64_t i = 0; i < 6; ++i) {
      float column_sum = 0;
      for (int64_t r = 0; r < 8; ++r)
        column_sum += xs[r * 6 + i];
      for (int64_t j = 0; j < 4; ++j)
        CHECK(gw[i * 4 + j] == Approx(column_sum).epsilon(1e-5));
    }
    return ran;
  };
  int64_t only_w = run(false), both = run(true);
  CHECK(only_w + 1 == both);  // one more kernel: the GEMM for x's gradient
}

TEST_CASE("a long chain inside a recorded call is differentiated without deep recursion",
          "[eager][tape]") {
  auto chain = k::function(
      [](const k::Tensor& x) {
        k::Tensor y = x;
        for (int i = 0; i < 3000; ++i)
          y = y * 1.0001f + 0.f;
        return k::reduce_sum(y);
      },
      "chain");
  k::Tensor x = k::constant(std::vector<float>{1.f, 2.f});
  k::GradientTape tape;
  tape.watch(x);
  k::Tensor y = chain(x);
  std::vector<float> g = tape.gradient(y, k::Source(x)).to_vector<float>();
  CHECK(g[0] == Approx(std::pow(1.0001, 3000)).epsilon(1e-3));
}

TEST_CASE("batches sliced eagerly are copies, not a kernel per offset", "[eager]") {
  k::Tensor data = k::reshape(k::range(0, 5 * 3 * 2, 1, k::f32), {5, 3, 2});
  k::clear_eager_cache();
  for (int64_t begin = 0; begin < 5; ++begin) {
    for (int64_t end = begin; end <= 5; ++end) {
      k::Tensor rows = data.index({k::Slice(begin, end)});
      std::vector<float> want;
      for (int64_t v = begin * 6; v < end * 6; ++v)
        want.push_back(static_cast<float>(v));
      CHECK(rows.to_vector<float>() == want);
      CHECK(rows.shape() == k::Shape{end - begin, 3, 2});
    }
    // One row and a range inside it, and one element: contiguous too.
    CHECK(data.index({begin, k::Slice(1, 3)}).to_vector<float>() ==
          std::vector<float>{static_cast<float>(begin * 6 + 2), static_cast<float>(begin * 6 + 3),
                             static_cast<float>(begin * 6 + 4), static_cast<float>(begin * 6 + 5)});
    CHECK(data.index({begin, 2, 1}).item<float>() == static_cast<float>(begin * 6 + 5));
  }
  CHECK(k::eager_cache_info().compiles == 0);
  // Strided and inner-dimension slices still run kernels, and agree with the interpreter.
  auto strided = [&] { return data.index({k::Slice(0, 5, 2), k::Slice(), 1}); };
  std::vector<float> want;
  {
    ModeGuard guard(k::EagerMode::interpret);
    want = strided().to_vector<float>();
  }
  CHECK(strided().to_vector<float>() == want);
  CHECK(want == std::vector<float>{1, 3, 5, 13, 15, 17, 25, 27, 29});
}

TEST_CASE("a log sink may use the eager cache while it reports a full cache", "[eager]") {
  k::clear_eager_cache();
  CapacityGuard capacity(1);
  int64_t seen_kernels = -1;
  k::LogSink previous = k::set_log_sink([&](std::string_view) {
    seen_kernels = k::eager_cache_info().kernels;  // would deadlock under the cache's lock
  });
  k::Tensor a = k::fill({3, 2}, 1.f), b = k::fill({2}, 2.f);
  k::Tensor c = a + b;  // broadcasting: a kernel per shape
  k::Tensor d = b + a;
  k::set_log_sink(previous);
  CHECK(seen_kernels == 1);
  CHECK(d.to_vector<float>() == std::vector<float>(6, 3.f));
}

TEST_CASE("a bad KILN_EAGER_CACHE_SIZE fails every compile and holds nothing", "[eager]") {
  k::clear_eager_cache();
  const int64_t capacity = k::eager_cache_info().capacity;
  {
    ScopedEnv env("KILN_EAGER_CACHE_SIZE", "lots");
    k::detail::reread_eager_environment();
    k::Tensor a = k::fill({2, 2}, 1.f), b = k::fill({2}, 1.f);
    CHECK_THROWS_WITH(a + b, Contains("KILN_EAGER_CACHE_SIZE='lots'"));
    CHECK_THROWS_WITH(a + b, Contains("KILN_EAGER_CACHE_SIZE='lots'"));
    CHECK_THROWS_WITH(a * a, Contains("KILN_EAGER_CACHE_SIZE='lots'"));  // elementwise too
    CHECK_THROWS_AS(k::eager_cache_info(), k::ValueError);
  }
  k::set_eager_cache_capacity(capacity);
  CHECK(k::eager_cache_info().kernels == 0);
  CHECK(k::eager_cache_info().families == 0);
}

TEST_CASE("eager matmuls run one GEMM compiled for every size", "[eager]") {
  const int64_t before = k::codegen::generic_gemm_variants();
  for (auto [m, k_, n] : {std::tuple<int64_t, int64_t, int64_t>{128, 64, 96},
                          {96, 64, 96},
                          {37, 64, 96},
                          {200, 33, 96},
                          {1, 4096, 96},
                          {64, 0, 96}}) {
    INFO(m << "x" << k_ << " x " << k_ << "x" << n);
    k::Tensor a = k::random_uniform({m, k_}, -1, 1, 1), b = k::random_uniform({k_, n}, -1, 1, 2);
    k::Tensor bt = k::transpose(b), at = k::transpose(a);
    std::vector<float> want;
    {
      ModeGuard guard(k::EagerMode::interpret);
      want = k::matmul(a, b).to_vector<float>();
    }
    for (const k::Tensor& got : {k::matmul(a, b), k::matmul(a, bt, false, true),
                                 k::matmul(at, b, true, false), k::matmul(at, bt, true, true)}) {
      std::vector<float> g = got.to_vector<float>();
      REQUIRE(g.size() == want.size());
      for (size_t i = 0; i < g.size(); ++i)
        REQUIRE(g[i] == Approx(want[i]).margin(1e-4));
    }
  }
  // Every size above has 96 columns, so one blocking: the four transpose pairs compile once
  // each (fewer when an earlier test in this process compiled some).
  CHECK(k::codegen::generic_gemm_variants() - before <= 4);
  const int64_t variants = k::codegen::generic_gemm_variants();
  k::matmul(k::fill({77, 64}, 1.f), k::fill({64, 96}, 1.f));
  CHECK(k::codegen::generic_gemm_variants() == variants);
}
