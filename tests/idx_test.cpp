// IDX files (kiln::idx) and the MNIST-format datasets built on them (kiln::datasets): round
// trips, hand-built files checked value by value, every kind of malformed file, and the
// installed Fashion-MNIST (skipped when the Debian package is absent).
#include "kiln/frontend/formats/idx.h"

#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "kiln/frontend/keras/datasets.h"

#include "file_test_util.h"

namespace {

using namespace kiln::testing;

namespace fs = std::filesystem;
using Catch::Contains;
using kiln::Tensor;
using kiln::ir::HostTensor;

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values)
    out += static_cast<char>(v);
  return out;
}

uint32_t crc32(const std::string& data) {
  uint32_t crc = 0xffffffff;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k)
      crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

// A gzip file holding `data` in one stored (uncompressed) deflate block, built by hand (RFC 1952
// and 1951) so the reader is checked against something zlib did not write.
std::string gzip_stored(const std::string& data) {
  std::string out = bytes({0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255});
  auto le = [&out](uint32_t v, int width) {
    for (int i = 0; i < width; ++i)
      out += static_cast<char>(v >> (8 * i));
  };
  out += '\x01';  // final block, stored
  le(static_cast<uint32_t>(data.size()), 2);
  le(static_cast<uint32_t>(~data.size()), 2);
  out += data;
  le(crc32(data), 4);
  le(static_cast<uint32_t>(data.size()), 4);
  return out;
}

// The IDX header: magic 0 0 type rank, then big-endian dims.
std::string idx_header(int type, std::vector<uint32_t> dims) {
  std::string out = bytes({0, 0, type, static_cast<int>(dims.size())});
  for (uint32_t d : dims)
    out += bytes({int(d >> 24 & 255), int(d >> 16 & 255), int(d >> 8 & 255), int(d & 255)});
  return out;
}

}  // namespace

namespace {

// `t` as idx::read gives it back: i32 tensors written as ubyte come back as u8.
Tensor as_read_back(const Tensor& t) {
  if (t.dtype() != kiln::i32) return t;
  auto values = t.to_vector<int32_t>();
  bool bytes =
      std::all_of(values.begin(), values.end(), [](int32_t v) { return v >= 0 && v <= 255; });
  if (!bytes) return t;
  return make_tensor<uint8_t>(t.shape(), std::vector<uint8_t>(values.begin(), values.end()));
}

}  // namespace

TEST_CASE("idx round-trips u8, i32, f32 and f64, plain and gzip-compressed", "[idx]") {
  TempDir dir;
  std::vector<kiln::Shape> shapes = {{}, {0}, {5}, {2, 3}, {2, 0, 3}, {3, 1, 2, 2}};
  for (bool gzip : {false, true}) {
    for (const kiln::Shape& shape : shapes) {
      int64_t n = shape.num_elements();
      std::vector<int32_t> small, wide;
      std::vector<uint8_t> pixels;
      std::vector<float> f;
      std::vector<double> d;
      for (int64_t i = 0; i < n; ++i) {
        small.push_back(static_cast<int32_t>(i * 37 % 256));
        pixels.push_back(static_cast<uint8_t>(255 - i * 11 % 256));
        wide.push_back(static_cast<int32_t>(i * 1000003 - 70000));
        f.push_back(static_cast<float>(i) * -0.375f + 1e-3f);
        d.push_back(static_cast<double>(i) / 3.0 - 1e100);
      }
      for (const Tensor& t : {make_tensor<uint8_t>(shape, pixels),
                              make_tensor<int32_t>(shape, small), make_tensor<int32_t>(shape, wide),
                              make_tensor<float>(shape, f), make_tensor<double>(shape, d)}) {
        INFO("gzip " << gzip << ", " << t.type().to_string());
        std::string path = dir.file(gzip ? "t.idx.gz" : "t.idx");
        kiln::idx::write(path, t, gzip);
        std::string raw = read_bytes(path);
        CHECK((static_cast<unsigned char>(raw[0]) == 0x1f) == gzip);
        Tensor back = kiln::idx::read(path);
        CHECK(back.host().bitwise_equal(as_read_back(t).host()));
      }
    }
  }
  // No temporary files are left behind.
  CHECK(std::distance(fs::directory_iterator(dir.path), {}) == 2);
}

TEST_CASE("idx::write picks ubyte for u8 and i32 in [0, 255], else int, and writes big-endian",
          "[idx]") {
  TempDir dir;
  std::string path = dir.file("t.idx");
  kiln::idx::write(path, make_tensor<uint8_t>({3}, {0, 128, 255}), false);
  CHECK(read_bytes(path) == idx_header(0x08, {3}) + bytes({0, 128, 255}));
  CHECK(kiln::idx::read(path).to_vector<uint8_t>() == std::vector<uint8_t>{0, 128, 255});
  kiln::idx::write(path, make_tensor<int32_t>({2, 2}, {0, 1, 254, 255}), false);
  CHECK(read_bytes(path) == idx_header(0x08, {2, 2}) + bytes({0, 1, 254, 255}));
  kiln::idx::write(path, make_tensor<int32_t>({2}, {256, -2}), false);
  CHECK(read_bytes(path) == idx_header(0x0C, {2}) + bytes({0, 0, 1, 0, 255, 255, 255, 254}));
  kiln::idx::write(path, make_tensor<float>({1}, {1.5f}), false);
  CHECK(read_bytes(path) == idx_header(0x0D, {1}) + bytes({0x3f, 0xc0, 0, 0}));
  kiln::idx::write(path, make_tensor<double>({1}, {-2.0}), false);
  CHECK(read_bytes(path) == idx_header(0x0E, {1}) + bytes({0xc0, 0, 0, 0, 0, 0, 0, 0}));
}

TEST_CASE("idx reads hand-built files of every element type", "[idx]") {
  TempDir dir;
  struct Case {
    std::string file;
    kiln::DType dtype;
    kiln::Shape shape;
    std::vector<double> expected;
  };
  std::vector<Case> cases = {
      {idx_header(0x08, {2, 3}) + bytes({0, 1, 127, 128, 254, 255}),
       kiln::u8,
       {2, 3},
       {0, 1, 127, 128, 254, 255}},
      {idx_header(0x09, {4}) + bytes({0x00, 0x7f, 0x80, 0xff}), kiln::i32, {4}, {0, 127, -128, -1}},
      {idx_header(0x0B, {3}) + bytes({0x00, 0x01, 0xff, 0xfe, 0x80, 0x00}),
       kiln::i32,
       {3},
       {1, -2, -32768}},
      {idx_header(0x0C, {3, 1}) +
           bytes({0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, 0x7f, 0xff, 0xff, 0xff}),
       kiln::i32,
       {3, 1},
       {1, -2, 2147483647}},
      {idx_header(0x0D, {2}) + bytes({0x3f, 0xc0, 0, 0, 0xc0, 0, 0, 0}), kiln::f32, {2}, {1.5, -2}},
      {idx_header(0x0E, {1, 1, 1}) + bytes({0x3f, 0xf8, 0, 0, 0, 0, 0, 0}),
       kiln::f64,
       {1, 1, 1},
       {1.5}},
      {idx_header(0x08, {0, 7}), kiln::u8, {0, 7}, {}},
  };
  for (const Case& c : cases) {
    for (bool gzip : {false, true}) {
      INFO("gzip " << gzip << ", type code " << int(c.file[2]));
      std::string path = dir.file("hand.idx");
      write_bytes(path, gzip ? gzip_stored(c.file) : c.file);
      Tensor t = kiln::idx::read(path);
      CHECK(t.dtype() == c.dtype);
      CHECK(t.shape() == c.shape);
      std::vector<double> values;
      for (int64_t i = 0; i < t.size(); ++i)
        values.push_back(t.host().element_as_double(i));
      CHECK(values == c.expected);
    }
  }
}

TEST_CASE("idx::read rejects malformed files with IOError naming the file and the problem",
          "[idx]") {
  TempDir dir;
  std::string good = idx_header(0x08, {2, 3}) + bytes({1, 2, 3, 4, 5, 6});
  struct Case {
    std::string name, file, message;
  };
  std::vector<Case> cases = {
      {"empty file", "", "truncated header: expected at least 4 bytes, read 0"},
      {"short magic", bytes({0, 0, 8}), "truncated header: expected at least 4 bytes, read 3"},
      {"bad magic", bytes({1, 0, 8, 1, 0, 0, 0, 0}), "bad magic 01 00 08 01"},
      {"unknown type", idx_header(0x0A, {1}) + "x", "unknown element type code 0x0a"},
      {"truncated dims", idx_header(0x08, {2, 3, 4}).substr(0, 12),
       "truncated header: expected 16 bytes, read 12"},
      {"truncated data", good.substr(0, good.size() - 2),
       "truncated data: shape (2, 3) of ubyte needs 6 bytes, read 4"},
      {"no data", idx_header(0x0D, {2}), "of float needs 8 bytes, read 0"},
      {"huge dims, little data", idx_header(0x08, {65536, 65536, 65536}) + "abc",
       "needs 281474976710656 bytes, read 3"},
      {"dims overflow", idx_header(0x0E, {0xffffffff, 0xffffffff, 2}) + "abc",
       "the dimensions (4294967295, 4294967295, 2) overflow"},
      {"overflow hidden behind a 0", idx_header(0x08, {0, 0xffffffff, 0xffffffff, 0xffffffff}),
       "overflow"},
      {"trailing garbage", good + "xyz",
       "trailing garbage: 3 bytes after the 18 bytes of header and data"},
  };
  for (const Case& c : cases) {
    for (bool gzip : {false, true}) {
      if (gzip && c.file.empty()) continue;  // an empty file is not gzip
      INFO(c.name << (gzip ? " (gzip)" : ""));
      std::string path = dir.file("bad.idx");
      write_bytes(path, gzip ? gzip_stored(c.file) : c.file);
      CHECK_THROWS_AS(kiln::idx::read(path), kiln::IOError);
      CHECK_THROWS_WITH(kiln::idx::read(path), Contains(path) && Contains(c.message) &&
                                                   Contains("idx.read") &&
                                                   Contains("idx_test.cpp"));
    }
  }
}

TEST_CASE("idx::read reports missing files and broken gzip streams", "[idx]") {
  TempDir dir;
  std::string missing = dir.file("missing.idx");
  CHECK_THROWS_AS(kiln::idx::read(missing), kiln::IOError);
  CHECK_THROWS_WITH(kiln::idx::read(missing),
                    Contains(missing) && Contains("No such file or directory"));
  CHECK_THROWS_WITH(kiln::idx::read(dir.path.string()), Contains("it is a directory"));

  std::string file = idx_header(0x08, {4}) + bytes({9, 8, 7, 6});
  std::string gz = gzip_stored(file);
  std::string path = dir.file("t.idx.gz");
  // Cut inside the compressed data: the stream ends early.
  write_bytes(path, gz.substr(0, gz.size() - 10));
  CHECK_THROWS_AS(kiln::idx::read(path), kiln::IOError);
  CHECK_THROWS_WITH(kiln::idx::read(path), Contains("truncated data") &&
                                               Contains("needs 4 bytes, read 2") &&
                                               Contains("unexpected end of file"));
  // Cut inside the gzip trailer: all data is there, but the checksum is not.
  write_bytes(path, gz.substr(0, gz.size() - 3));
  CHECK_THROWS_AS(kiln::idx::read(path), kiln::IOError);
  CHECK_THROWS_WITH(kiln::idx::read(path), Contains("the gzip stream is cut short"));
  // A wrong CRC.
  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 8] ^= 1;
  write_bytes(path, bad_crc);
  CHECK_THROWS_WITH(kiln::idx::read(path), Contains("gzip error") && Contains(path));
  // Valid gzip magic followed by garbage.
  write_bytes(path, bytes({0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255, 0xff, 0xff, 0xff, 0xff}));
  CHECK_THROWS_AS(kiln::idx::read(path), kiln::IOError);
  // The correct stream reads.
  write_bytes(path, gz);
  CHECK(kiln::idx::read(path).to_vector<uint8_t>() == std::vector<uint8_t>{9, 8, 7, 6});
}

TEST_CASE("idx::write rejects dtypes and tensors IDX cannot hold", "[idx]") {
  TempDir dir;
  std::string path = dir.file("t.idx");
  CHECK_THROWS_AS(kiln::idx::write(path, make_tensor<int64_t>({1}, {1}), false), kiln::TypeError);
  CHECK_THROWS_WITH(kiln::idx::write(path, make_tensor<bool>({1}, {true}), false),
                    Contains("u8, i32, f32 or f64"));
  CHECK_THROWS_AS(kiln::idx::write(path, Tensor(), false), kiln::ValueError);
  CHECK(!fs::exists(path));
  CHECK(fs::is_empty(dir.path));
  std::string nowhere = dir.file("no/such/dir/t.idx");
  CHECK_THROWS_AS(kiln::idx::write(nowhere, make_tensor<float>({1}, {1.f}), false), kiln::IOError);
}

TEST_CASE("mnist_format::load_data reads the four files, plain or .gz", "[datasets]") {
  TempDir dir;
  Tensor train_x = make_tensor<int32_t>({3, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255});
  Tensor train_y = make_tensor<int32_t>({3}, {7, 0, 9});
  Tensor test_x = make_tensor<int32_t>({1, 2, 2}, {5, 6, 7, 8});
  Tensor test_y = make_tensor<int32_t>({1}, {4});
  kiln::idx::write(dir.file("train-images-idx3-ubyte.gz"), train_x, true);
  kiln::idx::write(dir.file("train-labels-idx1-ubyte"), train_y, false);
  kiln::idx::write(dir.file("t10k-images-idx3-ubyte"), test_x, false);
  kiln::idx::write(dir.file("t10k-labels-idx1-ubyte.gz"), test_y, true);
  auto [train, test] = kiln::datasets::mnist_format::load_data(dir.path.string());
  // ubyte images come back as u8 (as TensorFlow's), ubyte labels as i32.
  CHECK(train.images.dtype() == kiln::u8);
  CHECK(train.images.host().bitwise_equal(as_read_back(train_x).host()));
  CHECK(train.labels.host().bitwise_equal(train_y.host()));
  CHECK(test.images.host().bitwise_equal(as_read_back(test_x).host()));
  CHECK(test.labels.host().bitwise_equal(test_y.host()));
  // Images already stored as u8 read the same.
  kiln::idx::write(dir.file("train-images-idx3-ubyte.gz"), as_read_back(train_x), true);
  CHECK(kiln::datasets::mnist_format::load_data(dir.path.string())
            .first.images.host()
            .bitwise_equal(as_read_back(train_x).host()));

  // Mismatched counts, wrong ranks, a missing file.
  kiln::idx::write(dir.file("t10k-labels-idx1-ubyte.gz"), make_tensor<int32_t>({2}, {1, 2}), true);
  CHECK_THROWS_AS(kiln::datasets::mnist_format::load_data(dir.path.string()), kiln::ShapeError);
  CHECK_THROWS_WITH(kiln::datasets::mnist_format::load_data(dir.path.string()),
                    Contains("holds 1 images but") && Contains("holds 2 labels"));
  kiln::idx::write(dir.file("t10k-labels-idx1-ubyte.gz"), make_tensor<int32_t>({1, 1}, {1}), true);
  CHECK_THROWS_WITH(kiln::datasets::mnist_format::load_data(dir.path.string()),
                    Contains("labels must be rank 1"));
  kiln::idx::write(dir.file("t10k-labels-idx1-ubyte.gz"), test_y, true);
  kiln::idx::write(dir.file("t10k-images-idx3-ubyte"), make_tensor<int32_t>({4}, {1, 2, 3, 4}),
                   false);
  CHECK_THROWS_AS(kiln::datasets::mnist_format::load_data(dir.path.string()), kiln::ShapeError);
  CHECK_THROWS_WITH(kiln::datasets::mnist_format::load_data(dir.path.string()),
                    Contains("images must be rank 3"));
  fs::remove(dir.file("t10k-images-idx3-ubyte"));
  CHECK_THROWS_AS(kiln::datasets::mnist_format::load_data(dir.path.string()), kiln::IOError);
  CHECK_THROWS_WITH(kiln::datasets::mnist_format::load_data(dir.path.string()),
                    Contains("neither t10k-images-idx3-ubyte.gz nor t10k-images-idx3-ubyte"));
  // A malformed file inside the dataset surfaces as the reader's IOError.
  write_bytes(dir.file("t10k-images-idx3-ubyte"), "garbage!");
  CHECK_THROWS_WITH(kiln::datasets::mnist_format::load_data(dir.path.string()),
                    Contains("bad magic"));
}

TEST_CASE("fashion_mnist::load_data reads the installed dataset", "[datasets][fashion_mnist]") {
  namespace k = kiln;
  if (!fs::exists(fs::path(k::datasets::fashion_mnist::kDirectory) /
                  "train-images-idx3-ubyte.gz")) {
    WARN("skipped: Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)");
    CHECK_THROWS_WITH(k::datasets::fashion_mnist::load_data(),
                      Contains("apt-get install dataset-fashion-mnist"));
    return;
  }
  auto start = std::chrono::steady_clock::now();
  auto [train, test] = k::datasets::fashion_mnist::load_data();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("Fashion-MNIST loaded in " << seconds << " s");
  CHECK(train.images.shape() == k::Shape{60000, 28, 28});
  CHECK(train.labels.shape() == k::Shape{60000});
  CHECK(test.images.shape() == k::Shape{10000, 28, 28});
  CHECK(test.labels.shape() == k::Shape{10000});
  CHECK(train.images.dtype() == k::u8);
  CHECK(test.images.dtype() == k::u8);
  CHECK(train.labels.dtype() == k::i32);

  // Values computed once from the files with Python's gzip module.
  auto labels = train.labels.to_vector<int32_t>();
  CHECK(std::vector<int32_t>(labels.begin(), labels.begin() + 10) ==
        std::vector<int32_t>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5});
  auto test_labels = test.labels.to_vector<int32_t>();
  CHECK(std::vector<int32_t>(test_labels.begin(), test_labels.begin() + 10) ==
        std::vector<int32_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7});
  // The classes are balanced: 6000 of each in train, 1000 in test.
  std::vector<int> train_counts(10), test_counts(10);
  int out_of_range = 0;
  for (int32_t l : labels)
    (l >= 0 && l <= 9) ? ++train_counts[l] : ++out_of_range;
  for (int32_t l : test_labels)
    (l >= 0 && l <= 9) ? ++test_counts[l] : ++out_of_range;
  CHECK(out_of_range == 0);
  CHECK(train_counts == std::vector<int>(10, 6000));
  CHECK(test_counts == std::vector<int>(10, 1000));

  auto pixels = train.images.host().values<uint8_t>();
  int64_t total = 0, first = 0;
  uint8_t lo = 255, hi = 0;
  for (size_t i = 0; i < pixels.size(); ++i) {
    total += pixels[i];
    if (i < 784) first += pixels[i];
    lo = std::min(lo, pixels[i]);
    hi = std::max(hi, pixels[i]);
  }
  CHECK(lo == 0);
  CHECK(hi == 255);
  CHECK(first == 76247);
  CHECK(total == 3431114169);
  int64_t test_total = 0;
  for (uint8_t p : test.images.host().values<uint8_t>())
    test_total += p;
  CHECK(test_total == 573469082);
}
