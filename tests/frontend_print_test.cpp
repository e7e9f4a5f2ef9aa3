// Printing matches TensorFlow's str() of a tensor, i.e. NumPy's array2string defaults. Every
// expected string below was produced by NumPy 1.24 (the source expression is in the comment).
#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>

#include "kiln/kiln.h"

namespace k = kiln;

namespace {

// Built directly as host tensors so these tests depend on no op kernels.
template <class T>
k::Tensor host(k::Shape shape, std::vector<T> values) {
  kiln::ir::HostTensor t(kiln::ir::dtype_of<T>(), std::move(shape));
  REQUIRE(static_cast<int64_t>(values.size()) == t.num_elements());
  for (size_t i = 0; i < values.size(); ++i)
    t.data<T>()[i] = values[i];
  return k::Tensor(t);
}

// 0, 1, 2, ... in the given shape.
template <class T>
k::Tensor iota(k::Shape shape) {
  kiln::ir::HostTensor t(kiln::ir::dtype_of<T>(), std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i)
    t.data<T>()[i] = static_cast<T>(i);
  return k::Tensor(t);
}

// i / divisor for i = 0, 1, 2, ...
template <class T>
k::Tensor divided(k::Shape shape, T divisor) {
  kiln::ir::HostTensor t(kiln::ir::dtype_of<T>(), std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i)
    t.data<T>()[i] = static_cast<T>(i) / divisor;
  return k::Tensor(t);
}

struct Row {
  k::Tensor tensor;
  std::string text;
};

}  // namespace

TEST_CASE("tensors print like TensorFlow", "[frontend][print]") {
  std::vector<Row> rows = {
      {host<float>({2, 2}, {1.0f, 2.0f, 3.0f, 4.0f}),
       "kiln.Tensor(\n[[1. 2.]\n [3. 4.]], shape=(2, 2), dtype=float32)"},  // np.array([[1,2],[3,4]],
                                                                            // np.float32)
      {host<float>({}, {3.0f}), "kiln.Tensor(3.0, shape=(), dtype=float32)"},  // np.float32(3.0)
      {host<float>({}, {0.1f}), "kiln.Tensor(0.1, shape=(), dtype=float32)"},  // np.float32(0.1)
      {host<float>({}, {1e-05f}),
       "kiln.Tensor(1e-05, shape=(), dtype=float32)"},  // np.float32(1e-5)
      {host<float>({}, {1.5e+20f}),
       "kiln.Tensor(1.5e+20, shape=(), dtype=float32)"},                      // np.float32(1.5e20)
      {host<float>({}, {NAN}), "kiln.Tensor(nan, shape=(), dtype=float32)"},  // np.float32(np.nan)
      {host<float>({}, {-INFINITY}),
       "kiln.Tensor(-inf, shape=(), dtype=float32)"},  // np.float32(-np.inf)
      {host<double>({}, {0.3333333333333333}),
       "kiln.Tensor(0.3333333333333333, shape=(), dtype=float64)"},              // np.float64(1/3)
      {host<float>({}, {-0.0f}), "kiln.Tensor(-0.0, shape=(), dtype=float32)"},  // np.float32(-0.0)
      {host<double>({}, {123456.789}),
       "kiln.Tensor(123456.789, shape=(), dtype=float64)"},  // np.float64(123456.789)
      {host<double>({}, {1e+16}),
       "kiln.Tensor(1e+16, shape=(), dtype=float64)"},  // np.float64(1e16)
      {host<float>({}, {12345678.0f}),
       "kiln.Tensor(12345678.0, shape=(), dtype=float32)"},  // np.float32(12345678.0)
      {host<float>({3}, {0.5f, 1.0f, 2.25f}),
       "kiln.Tensor([0.5  1.   2.25], shape=(3,), dtype=float32)"},  // np.array([0.5,1,2.25],
                                                                     // np.float32)
      {host<float>({2}, {1e-05f, 1.0f}),
       "kiln.Tensor([1.e-05 1.e+00], shape=(2,), dtype=float32)"},  // np.array([1e-5, 1.0],
                                                                    // np.float32)
      {host<double>({3}, {1.5e-05, 1.0, 100.0}),
       "kiln.Tensor([1.5e-05 1.0e+00 1.0e+02], shape=(3,), dtype=float64)"},  // np.array([1.5e-5,
                                                                              // 1, 100],
                                                                              // np.float64)
      {host<float>({3}, {NAN, 1.0f, -INFINITY}),
       "kiln.Tensor([ nan   1. -inf], shape=(3,), dtype=float32)"},  // np.array([np.nan, 1,
                                                                     // -np.inf], np.float32)
      {host<float>({2}, {NAN, INFINITY}),
       "kiln.Tensor([nan inf], shape=(2,), dtype=float32)"},  // np.array([np.nan, np.inf],
                                                              // np.float32)
      {host<double>({2}, {1.23456789, 100.5}),
       "kiln.Tensor([  1.23456789 100.5       ], shape=(2,), dtype=float64)"},  // np.array([1.23456789,
                                                                                // 100.5],
                                                                                // np.float64)
      {host<float>({1}, {0.33333334f}),
       "kiln.Tensor([0.33333334], shape=(1,), dtype=float32)"},  // np.array([1/3], np.float32)
      {host<double>({2}, {0.3333333333333333, -2.0}),
       "kiln.Tensor([ 0.33333333 -2.        ], shape=(2,), dtype=float64)"},  // np.array([1/3,
                                                                              // -2],
                                                                              // np.float64)
      {host<int32_t>({3}, {1, -20, 300}),
       "kiln.Tensor([  1 -20 300], shape=(3,), dtype=int32)"},  // np.array([1,-20,300],
                                                                // np.int32)
      {host<bool>({2}, {true, false}),
       "kiln.Tensor([ True False], shape=(2,), dtype=bool)"},  // np.array([True, False])
      {host<bool>({}, {true}), "kiln.Tensor(True, shape=(), dtype=bool)"},  // np.bool_(True)
      {host<int64_t>({}, {-7}), "kiln.Tensor(-7, shape=(), dtype=int64)"},  // np.int64(-7)
      {host<float>({3}, {0.1f, 0.2f, 0.3f}),
       "kiln.Tensor([0.1 0.2 0.3], shape=(3,), dtype=float32)"},  // np.array([0.1,0.2,0.3],
                                                                  // np.float32)
      {host<float>({2}, {-0.0f, 100000000.0f}),
       "kiln.Tensor([-0.e+00  1.e+08], shape=(2,), dtype=float32)"},  // np.array([-0.0, 1e8],
                                                                      // np.float32)
      {host<float>({2, 2}, {0.001f, 2.5f, -0.003f, 4.0f}),
       "kiln.Tensor(\n[[ 1.0e-03  2.5e+00]\n [-3.0e-03  4.0e+00]], shape=(2, 2), "
       "dtype=float32)"},  // np.array([[1e-3, 2.5],[-3e-3, 4]], np.float32)
      {host<double>({2, 2}, {123.25, -0.5, 7.0, 0.001}),
       "kiln.Tensor(\n[[ 1.2325e+02 -5.0000e-01]\n [ 7.0000e+00  1.0000e-03]], shape=(2, 2), "
       "dtype=float64)"},  // np.array([[123.25, -0.5],[7, 1e-3]], np.float64)
      {host<double>({2}, {1e+300, -1e-300}),
       "kiln.Tensor([ 1.e+300 -1.e-300], shape=(2,), dtype=float64)"},  // np.array([1e300,
                                                                        // -1e-300], np.float64)
      {iota<int32_t>({2, 2, 2}),
       "kiln.Tensor(\n[[[0 1]\n  [2 3]]\n\n [[4 5]\n  [6 7]]], shape=(2, 2, 2), "
       "dtype=int32)"},  // np.arange(8, dtype=np.int32).reshape(2,2,2)
      {iota<float>({2000}),
       "kiln.Tensor([0.000e+00 1.000e+00 2.000e+00 ... 1.997e+03 1.998e+03 1.999e+03], "
       "shape=(2000,), dtype=float32)"},  // np.arange(2000, dtype=np.float32)
      {iota<int64_t>({40, 50}),
       "kiln.Tensor(\n[[   0    1    2 ...   47   48   49]\n [  50   51   52 ...   97   98   "
       "99]\n [ 100  101  102 ...  147  148  149]\n ...\n [1850 1851 1852 ... 1897 1898 "
       "1899]\n [1900 1901 1902 ... 1947 1948 1949]\n [1950 1951 1952 ... 1997 1998 1999]], "
       "shape=(40, 50), dtype=int64)"},  // np.arange(2000, dtype=np.int64).reshape(40, 50)
      {iota<float>({30}),
       "kiln.Tensor(\n[ 0.  1.  2.  3.  4.  5.  6.  7.  8.  9. 10. 11. 12. 13. 14. 15. 16. "
       "17.\n 18. 19. 20. 21. 22. 23. 24. 25. 26. 27. 28. 29.], shape=(30,), "
       "dtype=float32)"},  // np.arange(30, dtype=np.float32)
      {iota<int32_t>({1001}),
       "kiln.Tensor([   0    1    2 ...  998  999 1000], shape=(1001,), dtype=int32)"},  // np.arange(1001,
                                                                                         // dtype=np.int32)
      {iota<int32_t>({7, 11, 13}),
       "kiln.Tensor(\n[[[   0    1    2 ...   10   11   12]\n  [  13   14   15 ...   23   24   "
       "25]\n  [  26   27   28 ...   36   37   38]\n  ...\n  [ 104  105  106 ...  114  115  "
       "116]\n  [ 117  118  119 ...  127  128  129]\n  [ 130  131  132 ...  140  141  "
       "142]]\n\n [[ 143  144  145 ...  153  154  155]\n  [ 156  157  158 ...  166  167  "
       "168]\n  [ 169  170  171 ...  179  180  181]\n  ...\n  [ 247  248  249 ...  257  258  "
       "259]\n  [ 260  261  262 ...  270  271  272]\n  [ 273  274  275 ...  283  284  "
       "285]]\n\n [[ 286  287  288 ...  296  297  298]\n  [ 299  300  301 ...  309  310  "
       "311]\n  [ 312  313  314 ...  322  323  324]\n  ...\n  [ 390  391  392 ...  400  401  "
       "402]\n  [ 403  404  405 ...  413  414  415]\n  [ 416  417  418 ...  426  427  "
       "428]]\n\n ...\n\n [[ 572  573  574 ...  582  583  584]\n  [ 585  586  587 ...  595  "
       "596  597]\n  [ 598  599  600 ...  608  609  610]\n  ...\n  [ 676  677  678 ...  686  "
       "687  688]\n  [ 689  690  691 ...  699  700  701]\n  [ 702  703  704 ...  712  713  "
       "714]]\n\n [[ 715  716  717 ...  725  726  727]\n  [ 728  729  730 ...  738  739  "
       "740]\n  [ 741  742  743 ...  751  752  753]\n  ...\n  [ 819  820  821 ...  829  830  "
       "831]\n  [ 832  833  834 ...  842  843  844]\n  [ 845  846  847 ...  855  856  "
       "857]]\n\n [[ 858  859  860 ...  868  869  870]\n  [ 871  872  873 ...  881  882  "
       "883]\n  [ 884  885  886 ...  894  895  896]\n  ...\n  [ 962  963  964 ...  972  973  "
       "974]\n  [ 975  976  977 ...  985  986  987]\n  [ 988  989  990 ...  998  999 1000]]], "
       "shape=(7, 11, 13), dtype=int32)"},  // np.arange(7*11*13,
                                            // dtype=np.int32).reshape(7,11,13)
      {host<float>({2, 0}, {}),
       "kiln.Tensor([], shape=(2, 0), dtype=float32)"},  // np.zeros((2,0), np.float32)
      {host<int32_t>({0}, {}),
       "kiln.Tensor([], shape=(0,), dtype=int32)"},  // np.zeros((0,), np.int32)
      {iota<int32_t>({100}),
       "kiln.Tensor(\n[ 0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15 16 17 18 19 20 21 22 "
       "23\n 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47\n 48 49 "
       "50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71\n 72 73 74 75 76 77 "
       "78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95\n 96 97 98 99], shape=(100,), "
       "dtype=int32)"},  // np.arange(100, dtype=np.int32)
      {divided<double>({2, 20}, 7.0),
       "kiln.Tensor(\n[[0.         0.14285714 0.28571429 0.42857143 0.57142857 0.71428571\n  "
       "0.85714286 1.         1.14285714 1.28571429 1.42857143 1.57142857\n  1.71428571 "
       "1.85714286 2.         2.14285714 2.28571429 2.42857143\n  2.57142857 2.71428571]\n "
       "[2.85714286 3.         3.14285714 3.28571429 3.42857143 3.57142857\n  3.71428571 "
       "3.85714286 4.         4.14285714 4.28571429 4.42857143\n  4.57142857 4.71428571 "
       "4.85714286 5.         5.14285714 5.28571429\n  5.42857143 5.57142857]], shape=(2, 20), "
       "dtype=float64)"},  // (np.arange(40, dtype=np.float64)/7).reshape(2, 20)
  };
  for (const Row& row : rows) {
    INFO("expected " << row.text);
    CHECK(row.tensor.to_string() == row.text);
    std::ostringstream out;
    out << row.tensor;
    CHECK(out.str() == row.text);
  }
}

TEST_CASE("shapes and dtypes print as TensorFlow's", "[frontend][print]") {
  std::ostringstream out;
  out << k::Shape{2, 2} << " " << k::Shape{4} << " " << k::Shape{} << " " << k::f32 << " " << k::f64
      << " " << k::i32 << " " << k::i64 << " " << k::boolean << " " << k::u8 << " " << k::uint8;
  CHECK(out.str() == "(2, 2) (4,) () float32 float64 int32 int64 bool uint8 uint8");
  CHECK(k::Tensor().to_string() == "kiln.Tensor(<undefined>)");
}

TEST_CASE("tensors made by ops print their values", "[frontend][print]") {
  CHECK(k::constant({{1.f, 2.f}, {3.f, 4.f}}).to_string() ==
        "kiln.Tensor(\n[[1. 2.]\n [3. 4.]], shape=(2, 2), dtype=float32)");
  CHECK(k::constant(3.f).to_string() == "kiln.Tensor(3.0, shape=(), dtype=float32)");
  CHECK(k::constant({2, 3, 4, 5}, k::i32).to_string() ==
        "kiln.Tensor([2 3 4 5], shape=(4,), dtype=int32)");
  CHECK(k::greater(k::constant({1, 3}), 2).to_string() ==
        "kiln.Tensor([False  True], shape=(2,), dtype=bool)");
}

TEST_CASE("uint8 tensors print as numbers, like TensorFlow", "[frontend][print]") {
  // np.array([[0, 7], [128, 255]], np.uint8): numbers right-aligned, never characters.
  CHECK(host<uint8_t>({2, 2}, {0, 7, 128, 255}).to_string() ==
        "kiln.Tensor(\n[[  0   7]\n [128 255]], shape=(2, 2), dtype=uint8)");
  CHECK(host<uint8_t>({}, {200}).to_string() == "kiln.Tensor(200, shape=(), dtype=uint8)");
  CHECK(host<uint8_t>({3}, {65, 66, 10}).to_string() ==
        "kiln.Tensor([65 66 10], shape=(3,), dtype=uint8)");
  // np.arange(1200).astype(np.uint8), summarized: the last three wrap to 173, 174, 175.
  CHECK(k::format_values(iota<uint8_t>({1200}).host()) == "[  0   1   2 ... 173 174 175]");
  // Made by ops: a u8 constant and an eager cast.
  k::Tensor pixels = k::constant({0, 128, 255}, k::u8);
  CHECK(pixels.dtype() == k::u8);
  CHECK(pixels.to_string() == "kiln.Tensor([  0 128 255], shape=(3,), dtype=uint8)");
  CHECK(k::cast(k::constant({1.5f, 300.f, -2.f}), k::uint8).to_string() ==
        "kiln.Tensor([  1 255   0], shape=(3,), dtype=uint8)");
}
