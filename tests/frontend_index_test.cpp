// Tensor::index against Python/NumPy semantics: a table of index expressions on a 4x5 matrix
// (values 0..19) and a 2x3x4 tensor, with the results NumPy gives.
#include <catch2/catch.hpp>

#include "kiln/kiln.h"

namespace k = kiln;

namespace {

struct Row {
  const char* numpy;  // the same index written in NumPy
  std::vector<k::IndexItem> items;
  k::Shape shape;
  std::vector<int32_t> values;
};

k::Tensor matrix() {
  return k::reshape(k::range(20), {4, 5});
}

void run_rows(const k::Tensor& x, const std::vector<Row>& rows) {
  for (const Row& row : rows) {
    INFO("x" << row.numpy);
    k::Tensor got = x.index(row.items);
    CHECK(got.shape() == row.shape);
    CHECK(got.to_vector<int32_t>() == row.values);
  }
}

}  // namespace

TEST_CASE("index: integers and slices follow Python", "[frontend][index]") {
  using k::none;
  using k::Slice;
  run_rows(
      matrix(),
      {
          {"[1]", {1}, {5}, {5, 6, 7, 8, 9}},
          {"[-1]", {-1}, {5}, {15, 16, 17, 18, 19}},
          {"[2, 3]", {2, 3}, {}, {13}},
          {"[-4, -5]", {-4, -5}, {}, {0}},
          {"[:, 1]", {Slice(), 1}, {4}, {1, 6, 11, 16}},
          {"[1:3]", {Slice(1, 3)}, {2, 5}, {5, 6, 7, 8, 9, 10, 11, 12, 13, 14}},
          {"[1:]", {Slice(1)}, {3, 5}, {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}},
          {"[:1]", {Slice(none, 1)}, {1, 5}, {0, 1, 2, 3, 4}},
          {"[::2, ::2]",
           {Slice(none, none, 2), Slice(none, none, 2)},
           {2, 3},
           {0, 2, 4, 10, 12, 14}},
          {"[1::2, 4]", {Slice(1, none, 2), 4}, {2}, {9, 19}},
          {"[-2:, -2:]", {Slice(-2), Slice(-2)}, {2, 2}, {13, 14, 18, 19}},
          {"[:-3, 0]", {Slice(none, -3), 0}, {1}, {0}},
          // clamping: out-of-range bounds are cut to the dim
          {"[-100:100, 0]", {Slice(-100, 100), 0}, {4}, {0, 5, 10, 15}},
          {"[10:, 0]", {Slice(10), 0}, {0}, {}},
          {"[3:1, 0]", {Slice(3, 1), 0}, {0}, {}},
          {"[0, 2:2]", {0, Slice(2, 2)}, {0}, {}},
          // negative steps
          {"[::-1, 0]", {Slice(none, none, -1), 0}, {4}, {15, 10, 5, 0}},
          {"[0, ::-2]", {0, Slice(none, none, -2)}, {3}, {4, 2, 0}},
          {"[0, 3:0:-1]", {0, Slice(3, 0, -1)}, {3}, {3, 2, 1}},
          {"[0, 3::-1]", {0, Slice(3, none, -1)}, {4}, {3, 2, 1, 0}},
          {"[0, -1:-3:-1]", {0, Slice(-1, -3, -1)}, {2}, {4, 3}},
          {"[0, 100::-3]", {0, Slice(100, none, -3)}, {2}, {4, 1}},
          {"[0, :-100:-1]", {0, Slice(none, -100, -1)}, {5}, {4, 3, 2, 1, 0}},
          {"[0, -100::-1]", {0, Slice(-100, none, -1)}, {0}, {}},
          {"[0, 1:3:-1]", {0, Slice(1, 3, -1)}, {0}, {}},
          {"[0, ::100]", {0, Slice(none, none, 100)}, {1}, {0}},
          {"[0, ::-100]", {0, Slice(none, none, -100)}, {1}, {4}},
      });
}

TEST_CASE("index: newaxis and ellipsis", "[frontend][index]") {
  using k::ellipsis;
  using k::newaxis;
  using k::Slice;
  run_rows(matrix(), {
                         {"[None]", {newaxis}, {1, 4, 5}, {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,
                                                           10, 11, 12, 13, 14, 15, 16, 17, 18, 19}},
                         {"[:, None, 0]", {Slice(), newaxis, 0}, {4, 1}, {0, 5, 10, 15}},
                         {"[..., 0]", {ellipsis, 0}, {4}, {0, 5, 10, 15}},
                         {"[0, ...]", {0, ellipsis}, {5}, {0, 1, 2, 3, 4}},
                         {"[1, ..., 2]", {1, ellipsis, 2}, {}, {7}},
                         {"[..., 1, None]", {ellipsis, 1, newaxis}, {4, 1}, {1, 6, 11, 16}},
                         {"[...]", {ellipsis}, {4, 5}, {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,
                                                        10, 11, 12, 13, 14, 15, 16, 17, 18, 19}},
                     });
  k::Tensor cube = k::reshape(k::range(24), {2, 3, 4});
  run_rows(cube,
           {
               {"[..., 1]", {ellipsis, 1}, {2, 3}, {1, 5, 9, 13, 17, 21}},
               {"[1, ..., ::-2]",
                {1, ellipsis, Slice(k::none, k::none, -2)},
                {3, 2},
                {15, 13, 19, 17, 23, 21}},
               {"[:, None, 2, None, 3]", {Slice(), newaxis, 2, newaxis, 3}, {2, 1, 1}, {11, 23}},
               {"[-1, -1, -1]", {-1, -1, -1}, {}, {23}},
           });
  k::Tensor scalar = k::constant(5);
  CHECK(scalar.index({}).item<int32_t>() == 5);
  CHECK(scalar.index({newaxis}).shape() == k::Shape{1});
  CHECK(scalar.index({ellipsis}).shape() == k::Shape{});
}

TEST_CASE("index: bad items throw with the user's line", "[frontend][index]") {
  k::Tensor x = matrix();
  CHECK_THROWS_AS(x.index({4}), kiln::ShapeError);
  CHECK_THROWS_AS(x.index({0, -6}), kiln::ShapeError);
  CHECK_THROWS_AS(x.index({0, 0, 0}), kiln::ShapeError);
  CHECK_THROWS_AS(x.index({k::ellipsis, 0, k::ellipsis}), kiln::ValueError);
  CHECK_THROWS_AS(x.index({k::Slice(k::none, k::none, 0)}), kiln::ValueError);
  int line = __LINE__ + 2;
  try {
    (void)x.index({1, 7});
    FAIL("no error");
  } catch (const kiln::ShapeError& e) {
    std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("index: index 7 is out of range for dimension 1 of size 5"));
    CHECK_THAT(msg, Catch::Contains("i32[4,5]"));
    CHECK_THAT(msg, Catch::Contains("frontend_index_test.cpp:" + std::to_string(line)));
  }
}
