// The u8 (uint8) dtype through the frontend: constants from C++ bytes, eager ops with NumPy's
// uint8 semantics (wrapping, unsigned comparisons), and the same ops inside k::function, whose
// compiled results must equal the eager (interpreted) ones bit for bit.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kiln/kiln.h"

namespace k = kiln;
using Catch::Contains;

namespace {

std::vector<int> ints(const k::Tensor& t) {
  auto v = t.to_vector<uint8_t>();
  return std::vector<int>(v.begin(), v.end());
}

// offset, offset + step, ... wrapping modulo 256, in the given shape.
k::Tensor bytes(const k::Shape& shape, size_t step = 7, size_t offset = 0) {
  std::vector<uint8_t> values(static_cast<size_t>(shape.num_elements()));
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = static_cast<uint8_t>(offset + i * step);
  return k::constant(values, shape);
}

}  // namespace

TEST_CASE("u8 constants come from C++ bytes or a dtype", "[frontend][u8]") {
  k::Tensor a = k::constant(std::vector<uint8_t>{0, 1, 255}, k::Shape{3});
  CHECK(a.dtype() == k::u8);
  CHECK(ints(a) == std::vector<int>{0, 1, 255});
  CHECK(k::constant({0, 128, 255}, k::uint8).dtype() == k::u8);
  CHECK(k::constant(uint8_t{200}).item<uint8_t>() == 200);
  CHECK(k::constant(uint8_t{200}).dtype() == k::u8);
  CHECK(k::zeros(k::Shape{2}, k::u8).to_vector<uint8_t>() == std::vector<uint8_t>{0, 0});
  CHECK(k::fill(k::Shape{2}, 255, k::u8).to_vector<uint8_t>() == std::vector<uint8_t>{255, 255});
  // Values a byte cannot hold are TypeErrors, not silent wraps.
  CHECK_THROWS_AS(k::constant({0, 256}, k::u8), k::TypeError);
  CHECK_THROWS_AS(k::constant({-1}, k::u8), k::TypeError);
  CHECK_THROWS_WITH(k::constant({0.5f}, k::u8), Contains("uint8"));
  // Reading with the wrong C++ type says which one to use.
  CHECK_THROWS_WITH(a.to_vector<int32_t>(), Contains("to_vector<uint8_t>"));
}

TEST_CASE("eager u8 ops wrap modulo 256 and compare unsigned, as NumPy's uint8", "[frontend][u8]") {
  k::Tensor x = k::constant({0, 100, 250, 255}, k::u8);
  k::Tensor y = k::constant({1, 3, 10, 255}, k::u8);
  CHECK(ints(x + 10) == std::vector<int>{10, 110, 4, 9});
  CHECK(ints(x - y) == std::vector<int>{255, 97, 240, 0});
  CHECK(ints(x * y) == std::vector<int>{0, 44, 196, 1});
  CHECK(ints(x / y) == std::vector<int>{0, 33, 25, 1});
  CHECK(ints(k::maximum(x, 128)) == std::vector<int>{128, 128, 250, 255});
  CHECK(ints(-x) == std::vector<int>{0, 156, 6, 1});
  CHECK(k::greater(x, 200).to_vector<bool>() == std::vector<bool>{false, false, true, true});
  CHECK(k::reduce_sum(x).item<uint8_t>() == 93);  // 605 mod 256
  CHECK(k::reduce_max(x).item<uint8_t>() == 255);
  CHECK(k::reduce_min(x).item<uint8_t>() == 0);
  CHECK(k::argmax(x, 0).item<int64_t>() == 3);
  CHECK(k::reduce_sum(k::cast(x, k::i32)).item<int32_t>() == 605);  // widen for a true total
  CHECK(k::cast(x, k::f32).to_vector<float>() == std::vector<float>{0.f, 100.f, 250.f, 255.f});
  CHECK(ints(k::cast(k::constant({-3.f, 0.7f, 254.9f, 1e6f}), k::u8)) ==
        std::vector<int>{0, 0, 254, 255});
  // A scalar that does not fit a byte is a TypeError, as for other integer dtypes.
  CHECK_THROWS_AS(x + 256, k::TypeError);
  CHECK_THROWS_AS(x * 0.5f, k::TypeError);
  // Floating-only ops reject u8 with the dtype in the message.
  CHECK_THROWS_AS(k::exp(x), k::TypeError);
  CHECK_THROWS_WITH(k::exp(x), Contains("u8"));
}

TEST_CASE("u8 images scale to f32 the same eagerly and in a compiled function",
          "[frontend][u8][function]") {
  k::Tensor images = bytes(k::Shape{5, 28, 28});
  k::Tensor eager = k::cast(images, k::f32) / 255.f;
  auto scale = k::function([](const k::Tensor& x) { return k::cast(x, k::f32) / 255.f; }, "scale");
  k::Tensor compiled = scale(images);
  CHECK(compiled.dtype() == k::f32);
  CHECK(compiled.shape() == k::Shape{5, 28, 28});
  CHECK(compiled.host().bitwise_equal(eager.host()));
  auto v = compiled.to_vector<float>();
  CHECK(v[1] == 7.f / 255.f);
  CHECK(*std::max_element(v.begin(), v.end()) == 1.f);
  // A slice of the images, as a training loop takes a batch.
  k::Tensor batch = images.index({k::Slice(1, 3)});
  CHECK(scale(batch).host().bitwise_equal((k::cast(batch, k::f32) / 255.f).host()));
}

TEST_CASE("u8 arithmetic, reductions and casts compile to what the interpreter computes",
          "[frontend][u8][function]") {
  auto body = [](const k::Tensor& a, const k::Tensor& b) {
    return std::vector<k::Tensor>{a + b,
                                  a - b,
                                  a * b,
                                  a / b,
                                  k::maximum(a, b),
                                  k::minimum(a, b),
                                  k::less(a, b),
                                  k::reduce_sum(a, {1}),
                                  k::reduce_max(a, {0}),
                                  k::reduce_mean(a, {1}),
                                  k::argmax(a, 1),
                                  k::cast(k::cast(a, k::f32) * 1.7f, k::u8),
                                  k::cast(k::cast(a, k::i32) - 100, k::u8),
                                  k::where(k::greater(a, 128), a, b)};
  };
  auto compiled = k::function(body, "u8_ops");
  k::Tensor a = bytes(k::Shape{6, 37});
  k::Tensor b = bytes(k::Shape{6, 37}, 13, 5);
  std::vector<k::Tensor> want = body(a, b);
  std::vector<k::Tensor> got = compiled(a, b);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("result " << i << ": " << want[i].type().to_string());
    CHECK(got[i].host().bitwise_equal(want[i].host()));
  }
  CHECK(got[0].dtype() == k::u8);
  CHECK(got[6].dtype() == k::boolean);
  CHECK(got[10].dtype() == k::i64);
  // b = 5, 18, 31, ... wraps to 0 at element 39, where x / 0 = 0; elsewhere a plain quotient.
  CHECK(got[3].to_vector<uint8_t>()[1] == 7 / 18);
  CHECK(got[3].to_vector<uint8_t>()[39] == 0);
  CHECK(got[12].to_vector<uint8_t>()[0] == 156);  // 0 − 100 wraps
}
