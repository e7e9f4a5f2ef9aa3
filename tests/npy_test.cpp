#include "kiln/frontend/formats/npy.h"

#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "file_test_util.h"

namespace {

using namespace kiln::testing;

using Catch::Contains;
using kiln::Tensor;
using kiln::ir::HostTensor;

// What NumPy writes for a header dict: prefix + dict + spaces + '\n', padded to 64 bytes.
std::string npy_bytes(std::string_view dict, std::string_view data, int major = 1) {
  size_t prefix = major == 1 ? 10 : 12;
  size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  size_t header_len = total - prefix;
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < prefix - 8; ++i)
    out += static_cast<char>(header_len >> (8 * i));
  out += dict;
  out.append(header_len - dict.size() - 1, ' ');
  out += '\n';
  out += data;
  return out;
}

template <class T>
std::string raw_bytes(std::vector<T> values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

}  // namespace

TEST_CASE("npy round-trips every dtype and shape", "[npy]") {
  std::vector<kiln::Shape> shapes = {{}, {0}, {1}, {5}, {2, 3}, {2, 0, 3}, {1, 1, 1}, {3, 1, 2, 2}};
  for (kiln::DType dtype : kiln::ir::kAllDTypes) {
    for (const kiln::Shape& shape : shapes) {
      INFO(kiln::ir::dtype_name(dtype) << " " << shape.to_string());
      Tensor t = counting(dtype, shape);
      std::string bytes = kiln::encode_npy(t);
      CHECK(bytes.size() % 64 == t.host().nbytes() % 64);  // header padded to 64 bytes
      Tensor back = kiln::decode_npy(bytes);
      CHECK(back.host().bitwise_equal(t.host()));
    }
  }
}

TEST_CASE("npy writes and reads uint8 as NumPy does ('|u1')", "[npy][u8]") {
  // np.save(f, np.array([[0, 128, 255]], dtype=np.uint8)), byte for byte.
  std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                         "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 3), }" +
                         std::string(58, ' ') + "\n" + std::string("\x00\x80\xff", 3);
  Tensor t = make_tensor<uint8_t>({1, 3}, {0, 128, 255});
  CHECK(kiln::encode_npy(t) == expected);
  Tensor back = kiln::decode_npy(expected);
  CHECK(back.dtype() == kiln::u8);
  CHECK(back.shape() == kiln::Shape{1, 3});
  CHECK(back.to_vector<uint8_t>() == std::vector<uint8_t>{0, 128, 255});
  // The byte order character means nothing for one byte: '<u1' and '=u1' read the same.
  for (const char* descr : {"<u1", "=u1"}) {
    std::string other = expected;
    other.replace(other.find("|u1"), 3, descr);
    CHECK(kiln::decode_npy(other).host().bitwise_equal(t.host()));
  }
}

TEST_CASE("npy writes and reads the bytes NumPy writes", "[npy]") {
  // np.save(f, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32)), byte for byte: 118 = 'v'.
  std::string expected = std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
                         "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }" +
                         std::string(58, ' ') + "\n" + raw_bytes<int32_t>({1, 2, 3, 4, 5, 6});
  REQUIRE(expected.size() == 128 + 24);
  Tensor t = make_tensor<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(kiln::encode_npy(t) == expected);
  Tensor back = kiln::decode_npy(expected);
  CHECK(back.dtype() == kiln::i32);
  CHECK(back.shape() == kiln::Shape{2, 3});
  CHECK(back.host().bitwise_equal(t.host()));

  // Other header spellings NumPy has written: 1-D "(3,)", scalars "()", Python 2 "3L".
  CHECK(kiln::encode_npy(make_tensor<float>({3}, {1, 2, 3})).find("'shape': (3,), }") !=
        std::string::npos);
  CHECK(kiln::encode_npy(make_tensor<double>({}, {2.5})).find("'shape': (), }") !=
        std::string::npos);
  CHECK(kiln::encode_npy(make_tensor<bool>({1}, {true})).find("'descr': '|b1'") !=
        std::string::npos);
  Tensor py2 = kiln::decode_npy(npy_bytes(
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2L,), }", raw_bytes<double>({1.5, -2})));
  CHECK(py2.host().bitwise_equal(make_tensor<double>({2}, {1.5, -2}).host()));
  // Double quotes, no trailing comma, keys in another order, no spaces.
  Tensor dq = kiln::decode_npy(npy_bytes(
      "{\"shape\":(1,2),\"fortran_order\":False,\"descr\":\"<i8\"}", raw_bytes<int64_t>({7, 8})));
  CHECK(dq.host().bitwise_equal(make_tensor<int64_t>({1, 2}, {7, 8}).host()));
}

TEST_CASE("npy reads format versions 2.0 and 3.0", "[npy]") {
  for (int major : {2, 3}) {
    std::string bytes = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                                  raw_bytes<float>({0.5f, 4.f}), major);
    CHECK(
        kiln::decode_npy(bytes).host().bitwise_equal(make_tensor<float>({2}, {0.5f, 4.f}).host()));
  }
}

TEST_CASE("npy converts big-endian, native and fortran-order data", "[npy]") {
  SECTION("big-endian f8 and i4") {
    std::string be_one = std::string("\x3f\xf0\0\0\0\0\0\0", 8);  // 1.0 as big-endian double
    std::string be_neg2 = std::string("\xc0\0\0\0\0\0\0\0", 8);   // -2.0
    Tensor d = kiln::decode_npy(
        npy_bytes("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", be_one + be_neg2));
    CHECK(d.host().bitwise_equal(make_tensor<double>({2}, {1.0, -2.0}).host()));
    Tensor i = kiln::decode_npy(npy_bytes("{'descr': '>i4', 'fortran_order': False, 'shape': (), }",
                                          std::string("\x00\x00\x01\x02", 4)));
    CHECK(i.host().bitwise_equal(make_tensor<int32_t>({}, {258}).host()));
  }
  SECTION("native and any byte order for bool") {
    Tensor n = kiln::decode_npy(npy_bytes(
        "{'descr': '=i8', 'fortran_order': False, 'shape': (1,), }", raw_bytes<int64_t>({-9})));
    CHECK(n.host().bitwise_equal(make_tensor<int64_t>({1}, {-9}).host()));
    Tensor b =
        kiln::decode_npy(npy_bytes("{'descr': '<b1', 'fortran_order': False, 'shape': (3,), }",
                                   std::string("\x01\x00\x07", 3)));
    CHECK(b.host().bitwise_equal(
        make_tensor<bool>({3}, {true, false, true}).host()));  // 7 reads as true
  }
  SECTION("fortran order 2-D and 3-D") {
    // np.asfortranarray([[1, 2, 3], [4, 5, 6]]) stores columns first.
    Tensor f =
        kiln::decode_npy(npy_bytes("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }",
                                   raw_bytes<int32_t>({1, 4, 2, 5, 3, 6})));
    CHECK(f.host().bitwise_equal(make_tensor<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6}).host()));
    // Element [i][j][k] = 100i + 10j + k, stored with i fastest, then j, then k.
    std::vector<float> column_major;
    for (int k = 0; k < 2; ++k)
      for (int j = 0; j < 3; ++j)
        for (int i = 0; i < 2; ++i)
          column_major.push_back(100.f * i + 10.f * j + k);
    Tensor g = kiln::decode_npy(
        npy_bytes("{'descr': '>f4', 'fortran_order': True, 'shape': (2, 3, 2), }", [&] {
          std::string s = raw_bytes<float>(column_major);
          for (size_t e = 0; e < s.size(); e += 4)
            std::reverse(s.begin() + e, s.begin() + e + 4);
          return s;
        }()));
    std::vector<float> row_major;
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j)
        for (int k = 0; k < 2; ++k)
          row_major.push_back(100.f * i + 10.f * j + k);
    CHECK(g.host().bitwise_equal(make_tensor<float>({2, 3, 2}, row_major).host()));
    Tensor empty = kiln::decode_npy(
        npy_bytes("{'descr': '<f8', 'fortran_order': True, 'shape': (0, 4), }", ""));
    CHECK(empty.shape() == kiln::Shape{0, 4});
  }
}

TEST_CASE("npy ignores bytes after the array, as np.load does", "[npy]") {
  std::string bytes = kiln::encode_npy(make_tensor<float>({2}, {1, 2})) + "trailing garbage";
  CHECK(kiln::decode_npy(bytes).host().bitwise_equal(make_tensor<float>({2}, {1, 2}).host()));
}

TEST_CASE("npy rejects malformed files with IOError", "[npy]") {
  const std::string good_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const std::string data = raw_bytes<float>({1, 2});
  auto rejects = [&](const std::string& bytes, const std::string& what) {
    INFO(what);
    CHECK_THROWS_AS(kiln::decode_npy(bytes, "bad.npy"), kiln::IOError);
    CHECK_THROWS_WITH(kiln::decode_npy(bytes, "bad.npy"),
                      Contains("bad.npy") && Contains(what, Catch::CaseSensitive::No));
  };
  auto with_dict = [&](std::string dict, std::string payload = "") {
    return npy_bytes(dict, payload.empty() ? data : payload);
  };

  rejects("", "too short");
  rejects(std::string("\x93NUMPX\x01\x00\x10\x00", 10) + std::string(16, ' '), "bad magic");
  rejects("PK\x03\x04 this is a zip file, not npy", "bad magic");
  std::string v4 = npy_bytes(good_dict, data);
  v4[6] = 4;
  rejects(v4, "unsupported format version 4.0");
  std::string v11 = npy_bytes(good_dict, data);
  v11[7] = 1;
  rejects(v11, "version 1.1");
  rejects(std::string("\x93NUMPY\x02\x00\x10\x00", 10), "ends inside the header length");
  rejects(std::string("\x93NUMPY\x01\x00\xff\xff", 10) + good_dict, "runs past the end");
  rejects(std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff", 12) + good_dict, "runs past the end");

  rejects(with_dict("['descr', '<f4']"), "not a Python dict");
  rejects(with_dict("{'descr': '<f4', 'fortran_order': False, }"), "missing key 'shape'");
  rejects(with_dict("{'fortran_order': False, 'shape': (2,), }"), "missing key 'descr'");
  rejects(with_dict("{'descr': '<f4', 'shape': (2,), }"), "missing key 'fortran_order'");
  rejects(with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}"),
          "unknown key 'extra'");
  rejects(with_dict("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}"),
          "duplicate key 'descr'");
  rejects(with_dict("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }"), "True or False");
  rejects(with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': [2], }"), "must be a tuple");
  rejects(with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 'a'), }"),
          "must hold integers");
  rejects(with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2,) }x"),
          "unexpected text after");
  rejects(with_dict("{'descr': '<f4', 'fortran_order': False 'shape': (2,)}"), "expected ','");
  rejects(with_dict("{'descr: '<f4', 'fortran_order': False, 'shape': (2,)}"), "bad header");
  rejects(with_dict("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}"),
          "structured dtypes");
  rejects(with_dict("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }"),
          "unsupported dtype '<c8'");
  rejects(with_dict("{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }"),
          "unsupported dtype '<U3'");
  rejects(with_dict("{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }"),
          "unsupported dtype");
  rejects(with_dict("{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }"), "byte order '|'");
  rejects(with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }"),
          "negative dimension");
  rejects(with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"),
          "dimension too large");
  rejects(
      with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }"),
      "is too large");
  // A zero dimension must not hide an overflow in the others.
  rejects(
      with_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 3037000500, 3037000500), }"),
      "is too large");
  // Large but representable: refused by the length check, before allocating 400 GB.
  rejects(with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000,), }"),
          "data is shorter than shape (100000000000,) needs: 400000000000 bytes, found 8");
  rejects(with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"),
          "data is shorter");
}

TEST_CASE("every truncated prefix of a valid npy file throws IOError", "[npy]") {
  for (kiln::DType dtype : kiln::ir::kAllDTypes) {
    std::string bytes = kiln::encode_npy(counting(dtype, {2, 3}));
    for (size_t n = 0; n < bytes.size(); ++n) {
      INFO(kiln::ir::dtype_name(dtype) << " prefix of " << n << " bytes");
      CHECK_THROWS_AS(kiln::decode_npy(std::string_view(bytes).substr(0, n)), kiln::IOError);
    }
  }
}

TEST_CASE("npy decoding of corrupted bytes never fails other than by IOError", "[npy]") {
  std::mt19937 rng(12345);
  std::string good = kiln::encode_npy(counting(kiln::f32, {3, 2}));
  int accepted = 0, rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = good;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      size_t pos = rng() % 90;  // mostly the prefix and the header dict
      bytes[pos] = static_cast<char>(rng());
    }
    try {
      Tensor t = kiln::decode_npy(bytes);
      CHECK(t.size() * 4 <= static_cast<int64_t>(bytes.size()));
      ++accepted;
    } catch (const kiln::IOError&) {
      ++rejected;
    }
  }
  CHECK(rejected > 0);
  CHECK(accepted + rejected == 3000);
}

TEST_CASE("save_npy and load_npy use files atomically", "[npy]") {
  TempDir dir;
  std::string path = (dir.path / "x.npy").string();
  Tensor t = counting(kiln::f64, {4, 2});
  kiln::save_npy(path, t);
  CHECK(kiln::load_npy(path).host().bitwise_equal(t.host()));

  // Overwriting replaces the contents; no temporary file is left behind.
  Tensor u = counting(kiln::boolean, {7});
  kiln::save_npy(path, u);
  CHECK(kiln::load_npy(path).host().bitwise_equal(u.host()));
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path)) {
    CHECK(entry.path().filename() == "x.npy");
    ++files;
  }
  CHECK(files == 1);

  CHECK_THROWS_AS(kiln::load_npy((dir.path / "missing.npy").string()), kiln::IOError);
  CHECK_THROWS_WITH(kiln::load_npy((dir.path / "missing.npy").string()),
                    Contains("missing.npy") && Contains("No such file"));
  CHECK_THROWS_WITH(kiln::save_npy((dir.path / "no/such/dir/y.npy").string(), t),
                    Contains("cannot write") && Contains("y.npy"));
  // A directory in the way: the rename fails and the old path is left untouched.
  std::filesystem::create_directory(dir.path / "d.npy");
  CHECK_THROWS_AS(kiln::save_npy((dir.path / "d.npy").string(), t), kiln::IOError);
  CHECK(std::filesystem::is_directory(dir.path / "d.npy"));
  CHECK_THROWS_AS(kiln::load_npy(dir.path.string()), kiln::IOError);

  std::ofstream(dir.path / "junk.npy") << "not numpy";
  CHECK_THROWS_WITH(kiln::load_npy((dir.path / "junk.npy").string()),
                    Contains("junk.npy") && Contains("too short"));
  CHECK_THROWS_AS(kiln::save_npy(path, Tensor()), kiln::ValueError);
}
