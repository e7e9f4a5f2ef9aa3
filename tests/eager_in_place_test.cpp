// Eager elementwise ops on a tensor the caller gives up (a temporary, std::move(x), the left of
// `x /= 2`) write their result into its buffer when nothing else refers to it
// (frontend/core/eager.h, DonatedOperands); a tensor anything else still refers to is never
// written over. And the buffer pool's policy of what it keeps and for how long
// (ir/host_tensor.cpp).
#include <kiln/kiln.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include "kiln/ir/buffer_pool.h"
#include "kiln/ir/host_tensor.h"

namespace k = kiln;

namespace {

// [n] f32 holding 0, 1, 2, ... (n - 1).
k::Tensor iota(int64_t n) {
  return k::cast(k::range(0, n, 1, k::i32), k::f32);
}

const void* buffer(const k::Tensor& t) {
  return t.host().raw();
}

// Whether `t` took the buffer at `p`: compiled eager ops do; the reference interpreter
// (KILN_EAGER=interpret) always makes a new one.
bool took(const k::Tensor& t, const void* p) {
  return k::eager_mode() == k::EagerMode::interpret || buffer(t) == p;
}

std::vector<float> iota_values(int64_t n, float scale, float offset) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = static_cast<float>(i) * scale + offset;
  return v;
}

}  // namespace

TEST_CASE("an eager op on a temporary computes in its buffer, with the same values",
          "[eager][in_place]") {
  const int64_t n = 100000;  // past the pool's smallest block, and not a multiple of a piece
  k::Tensor x = iota(n);
  const void* x_buffer = buffer(x);
  // A rvalue with no other reference: the quotient takes its buffer.
  k::Tensor q = std::move(x) / 4.f;
  CHECK(took(q, x_buffer));
  CHECK(q.to_vector<float>() == iota_values(n, 0.25f, 0.f));

  // A chain of temporaries: cast's result is divided, then added to, in the same buffer.
  k::Tensor images = k::cast(k::range(0, n, 1, k::i32), k::u8);
  k::Tensor chain = (k::cast(images, k::f32) / 255.f) + 1.f;
  std::vector<float> want(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    want[static_cast<size_t>(i)] = static_cast<float>(static_cast<uint8_t>(i)) / 255.f + 1.f;
  CHECK(chain.to_vector<float>() == want);
  CHECK(images.dtype() == k::u8);  // the operand of another dtype is untouched
  CHECK(images.to_vector<uint8_t>()[300] == static_cast<uint8_t>(300));

  // Either side can be given; the other operand, still referenced, keeps its values.
  k::Tensor keep = iota(n);
  k::Tensor right = iota(n);
  const void* right_buffer = buffer(right);
  k::Tensor diff = keep - std::move(right);
  CHECK(took(diff, right_buffer));
  CHECK(diff.to_vector<float>() == std::vector<float>(static_cast<size_t>(n), 0.f));
  CHECK(keep.to_vector<float>() == iota_values(n, 1.f, 0.f));

  // Broadcasting: the full-size temporary takes the result, the row operand is only read.
  k::Tensor bias = k::constant(std::vector<float>{1.f, 2.f, 3.f, 4.f}, k::Shape{4});
  k::Tensor m = k::reshape(iota(4000), {1000, 4});
  const void* m_buffer = buffer(m);
  k::Tensor shifted = std::move(m) + bias;
  CHECK(took(shifted, m_buffer));
  std::vector<float> got = shifted.to_vector<float>();
  for (int64_t i = 0; i < 4000; ++i)
    CHECK(got[static_cast<size_t>(i)] == static_cast<float>(i) + static_cast<float>(i % 4 + 1));
  CHECK(bias.to_vector<float>() == std::vector<float>{1.f, 2.f, 3.f, 4.f});

  // Compound assignment on a tensor nothing else refers to works in place.
  k::Tensor acc = iota(n);
  const void* acc_buffer = buffer(acc);
  acc *= 2.f;
  acc += 1.f;
  CHECK(took(acc, acc_buffer));
  CHECK(acc.to_vector<float>() == iota_values(n, 2.f, 1.f));
}

TEST_CASE("every binary elementwise op computes in place the values it computes otherwise",
          "[eager][in_place]") {
  using Fn = k::Tensor (*)(const k::Operand&, const k::Operand&, k::Loc);
  const std::vector<std::pair<const char*, Fn>> ops = {
      {"add", k::add}, {"subtract", k::subtract}, {"multiply", k::multiply}, {"divide", k::divide},
      {"pow", k::pow}, {"maximum", k::maximum},   {"minimum", k::minimum},
  };
  // Sizes around the generic kernels' pieces, past the parallel threshold, and more of them than
  // a signature compiles exact kernels for (so the generic path runs too).
  for (int64_t n : {1, 63, 64, 1000, 65536 + 17, 131072, 300001}) {
    std::vector<float> av(static_cast<size_t>(n)), bv(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      av[static_cast<size_t>(i)] = 0.5f + static_cast<float>(i % 97) * 0.25f;
      bv[static_cast<size_t>(i)] = 1.5f + static_cast<float>(i % 13) * 0.125f;
    }
    for (const auto& [name, fn] : ops) {
      CAPTURE(name, n);
      const k::Tensor a = k::constant(av, k::Shape{n}), b = k::constant(bv, k::Shape{n});
      const std::vector<float> want = fn(a, b, k::Loc::current()).to_vector<float>();
      k::Tensor left = k::constant(av, k::Shape{n});
      const void* left_buffer = buffer(left);
      k::Tensor got = fn(std::move(left), b, k::Loc::current());
      CHECK(took(got, left_buffer));
      CHECK(got.to_vector<float>() == want);
      k::Tensor right = k::constant(bv, k::Shape{n});
      const void* right_buffer = buffer(right);
      got = fn(a, std::move(right), k::Loc::current());
      CHECK(took(got, right_buffer));
      CHECK(got.to_vector<float>() == want);
      // With a scalar on the other side.
      const std::vector<float> want_scalar = fn(a, 3.f, k::Loc::current()).to_vector<float>();
      got = fn(k::constant(av, k::Shape{n}), 3.f, k::Loc::current());
      CHECK(got.to_vector<float>() == want_scalar);
      CHECK(a.to_vector<float>() == av);
      CHECK(b.to_vector<float>() == bv);
    }
  }
}

TEST_CASE("a tensor still referenced elsewhere is never written over", "[eager][in_place]") {
  const int64_t n = 50000;
  const std::vector<float> original = iota_values(n, 1.f, 0.f);

  SECTION("another handle") {
    k::Tensor x = iota(n);
    k::Tensor other = x;  // shares x's state
    k::Tensor q = std::move(x) / 2.f;
    CHECK(buffer(q) != buffer(other));
    CHECK(other.to_vector<float>() == original);
    CHECK(q.to_vector<float>() == iota_values(n, 0.5f, 0.f));
  }
  SECTION("a compound assignment with the tensor copied") {
    k::Tensor x = iota(n);
    k::Tensor saved = x;
    x += 1.f;
    CHECK(saved.to_vector<float>() == original);
    CHECK(x.to_vector<float>() == iota_values(n, 1.f, 1.f));
  }
  SECTION("a view of its buffer") {
    k::Tensor x = iota(n);
    k::ir::HostTensor view = x.host().reshaped(k::Shape{n / 2, 2});
    k::Tensor q = std::move(x) * 3.f;
    CHECK(static_cast<const void*>(view.raw()) != buffer(q));
    CHECK(view.reshaped(k::Shape{n}).values<float>()[7] == 7.f);
    CHECK(q.to_vector<float>()[7] == 21.f);
  }
  SECTION("a variable") {
    k::Variable v(iota(n));
    k::Tensor read = v.value();
    k::Tensor q = std::move(read) + 1.f;  // the variable still holds the buffer
    CHECK(v.value().to_vector<float>() == original);
    CHECK(q.to_vector<float>() == iota_values(n, 1.f, 1.f));
    k::Tensor w = v + 5.f;  // through the conversion: a temporary sharing the variable's value
    CHECK(v.value().to_vector<float>() == original);
    CHECK(w.to_vector<float>()[3] == 8.f);
    k::Tensor assigned = iota(n);
    v.assign(assigned);
    k::Tensor r = std::move(assigned) - 1.f;
    CHECK(v.value().to_vector<float>() == original);
    CHECK(r.to_vector<float>()[3] == 2.f);
  }
  SECTION("a slice or a reshape of it") {
    k::Tensor x = iota(n);
    k::Tensor s = x.index({k::Slice(0, 10)});
    k::Tensor r = k::reshape(x, {n / 2, 2});
    k::Tensor q = std::move(x) - 100.f;
    CHECK(s.to_vector<float>() == iota_values(10, 1.f, 0.f));
    CHECK(r.to_vector<float>() == original);
    CHECK(q.to_vector<float>()[10] == -90.f);
  }
  SECTION("the same tensor on both sides") {
    k::Tensor x = iota(n);
    k::Tensor y = x;
    k::Tensor sq = std::move(x) * std::move(y);  // one buffer, two handles: a new result
    CHECK(sq.to_vector<float>()[9] == 81.f);
    k::Tensor z = iota(n);
    z *= z;
    CHECK(z.to_vector<float>()[9] == 81.f);
  }
  SECTION("an operand of another dtype or shape") {
    k::Tensor i = k::range(0, n, 1, k::i32);
    k::Tensor b = k::less(std::move(i), 10);  // bool result: a new buffer
    CHECK(b.dtype() == k::boolean);
    CHECK(b.to_vector<bool>()[9]);
    k::Tensor row = iota(4);
    k::Tensor grid = std::move(row) + k::zeros({3, 4});  // broadcast to a larger result
    CHECK(grid.shape() == k::Shape{3, 4});
    CHECK(grid.to_vector<float>()[11] == 3.f);
  }
  SECTION("a gradient tape recording") {
    k::Variable v(iota(8));
    k::GradientTape tape;
    k::Tensor sq = k::square(v.value());
    k::Tensor y = std::move(sq) * 3.f;  // the tape keeps sq for the gradient of the product
    k::Tensor loss = k::reduce_sum(y);
    k::Tensor g = tape.gradient(loss, v);
    CHECK(g.to_vector<float>() == iota_values(8, 6.f, 0.f));  // d(3x^2)/dx = 6x
  }
}

TEST_CASE("a failed in-place op leaves its operands as they were", "[eager][in_place]") {
  k::Tensor x = iota(1000);
  const void* x_buffer = buffer(x);
  CHECK_THROWS_AS(x += k::zeros({7}), k::Error);  // shapes that do not broadcast
  REQUIRE(x.defined());
  CHECK(took(x, x_buffer));
  CHECK(x.to_vector<float>() == iota_values(1000, 1.f, 0.f));
  k::Tensor i = k::range(0, 1000, 1, k::i32);
  CHECK_THROWS_AS(i *= 0.5, k::TypeError);  // 0.5 is no i32: fails before anything runs
  CHECK(i.to_vector<int32_t>()[999] == 999);
}

TEST_CASE("inside kiln::function, operators on temporaries trace as before", "[eager][in_place]") {
  auto f = k::function([](const k::Tensor& images) { return k::cast(images, k::f32) / 255.f; });
  k::Tensor images = k::cast(k::range(0, 1000, 1, k::i32), k::u8);
  k::Tensor got = f(images);
  CHECK(got.to_vector<float>()[255] == 1.f);
  CHECK(got.to_vector<float>()[256] == 0.f);
  CHECK(images.to_vector<uint8_t>()[255] == 255);
}

namespace {
constexpr size_t kMiB = size_t{1} << 20;

// Empties the pool and sets its limit and idle time for one test case, then puts both back.
struct PoolSettings {
  PoolSettings(size_t bytes, std::chrono::milliseconds idle) {
    previous_limit = k::ir::detail::set_buffer_pool_limit(0);
    k::ir::detail::set_buffer_pool_limit(bytes);
    previous_idle = k::ir::detail::set_buffer_pool_max_idle(idle);
  }
  ~PoolSettings() {
    k::ir::detail::set_buffer_pool_max_idle(previous_idle);
    k::ir::detail::set_buffer_pool_limit(previous_limit);
  }
  PoolSettings(const PoolSettings&) = delete;
  PoolSettings& operator=(const PoolSettings&) = delete;
  size_t previous_limit = 0;
  std::chrono::milliseconds previous_idle{};
};

k::ir::HostTensor block(size_t bytes) {
  auto t = k::ir::HostTensor::uninitialized({k::DType::u8, k::Shape{static_cast<int64_t>(bytes)}});
  t.raw()[0] = std::byte{1};
  return t;
}
}  // namespace

TEST_CASE("the buffer pool keeps a large block only for a size made twice", "[memory]") {
  using k::ir::detail::buffer_pool_stats;
  PoolSettings settings(64 * kMiB, std::chrono::minutes(10));
  if (!buffer_pool_stats().enabled) return;  // ASan and TSan builds: no pool
  CHECK(buffer_pool_stats().max_idle == std::chrono::minutes(10));
  // Up to an eighth of the limit (8 MiB here), every freed block is kept.
  { auto t = block(4 * kMiB); }
  CHECK(buffer_pool_stats().held_bytes == 4 * kMiB);
  // A larger block made once (a dataset's bytes, converted and dropped) is freed...
  { auto t = block(20 * kMiB); }
  auto s = buffer_pool_stats();
  CHECK(s.held_bytes == 4 * kMiB);
  CHECK(s.held_blocks == 1);
  // ...but once its size comes again (a loop's buffer), it is kept and handed out.
  const void* second = nullptr;
  {
    auto t = block(20 * kMiB);
    second = t.raw();
  }
  CHECK(buffer_pool_stats().held_bytes == 24 * kMiB);
  auto third = block(20 * kMiB);
  CHECK(static_cast<const void*>(third.raw()) == second);
  CHECK(buffer_pool_stats().held_bytes == 4 * kMiB);
}

TEST_CASE("the buffer pool frees blocks no tensor took for its idle time", "[memory]") {
  using k::ir::detail::buffer_pool_stats;
  using namespace std::chrono_literals;
  PoolSettings settings(64 * kMiB, 300ms);
  if (!buffer_pool_stats().enabled) return;  // ASan and TSan builds: no pool
  const auto start = buffer_pool_stats();
  { auto a = block(1 * kMiB), b = block(2 * kMiB); }
  CHECK(buffer_pool_stats().held_bytes == 3 * kMiB);
  // Taken again within the idle time: reused, as a loop's buffers are.
  const void* again = nullptr;
  {
    auto a = block(1 * kMiB);
    again = a.raw();
    CHECK(buffer_pool_stats().hits == start.hits + 1);
  }
  CHECK(buffer_pool_stats().held_bytes == 3 * kMiB);
  // Idle past it: the next large allocation or free lets both go.
  std::this_thread::sleep_for(400ms);
  CHECK(buffer_pool_stats().held_bytes == 3 * kMiB);  // nothing happened yet
  auto c = block(3 * kMiB);
  auto s = buffer_pool_stats();
  CHECK(s.held_bytes == 0);
  CHECK(s.held_blocks == 0);
  CHECK(s.expirations == start.expirations + 2);
  CHECK(s.evictions >= start.evictions + 2);
  // A block freed after that is kept as usual; lowering the idle time to 0 frees it at once.
  { auto d = block(1 * kMiB); }
  CHECK(buffer_pool_stats().held_bytes == 1 * kMiB);
  std::this_thread::sleep_for(5ms);
  CHECK(k::ir::detail::set_buffer_pool_max_idle(0ms) == 300ms);
  CHECK(buffer_pool_stats().held_bytes == 0);
  (void)again;
}
