// safetensors files (kiln::safetensors): round trips of every dtype, metadata, the exact bytes
// of a small file, every kind of corruption, and saves that fail part way.
#include "kiln/frontend/formats/safetensors.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "kiln/frontend/core/function.h"

#include "file_test_util.h"

namespace {

using namespace kiln::testing;

namespace fs = std::filesystem;
using Catch::Contains;
using kiln::Tensor;
using kiln::ir::HostTensor;
using Named = std::vector<std::pair<std::string, Tensor>>;

void check_same(const Named& a, const Named& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    CHECK(a[i].first == b[i].first);
    CHECK(a[i].second.host().bitwise_equal(b[i].second.host()));
  }
}

}  // namespace

TEST_CASE("safetensors round-trips every dtype and shape, sorted by name", "[safetensors]") {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  std::vector<kiln::Shape> shapes = {{}, {0}, {1}, {5}, {2, 3}, {2, 0, 3}, {3, 1, 2, 2}};
  Named tensors;
  for (kiln::DType dtype : kiln::ir::kAllDTypes) {
    for (size_t s = 0; s < shapes.size(); ++s) {
      tensors.emplace_back(fmt::format("{}/{}", kiln::ir::dtype_name(dtype), s),
                           counting(dtype, shapes[s]));
    }
  }
  std::reverse(tensors.begin(), tensors.end());  // given in any order, loaded sorted by name
  kiln::safetensors::save(path, tensors);
  Named sorted = tensors;
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  check_same(kiln::safetensors::load(path), sorted);
  CHECK(kiln::safetensors::metadata(path).empty());
  CHECK(std::distance(fs::directory_iterator(dir.path), {}) == 1);  // no temporary files left

  // An empty list is a valid file too.
  kiln::safetensors::save(path, {});
  CHECK(read_bytes(path) == le64(8) + "{}      ");
  CHECK(kiln::safetensors::load(path).empty());
}

TEST_CASE("safetensors metadata is written and read back", "[safetensors]") {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"note", "quotes \" and \\ and \n newlines, ünïcode"}, {"empty", ""}};
  kiln::safetensors::save(path, {{"w", make_tensor<float>({2}, {1.f, 2.f})}}, meta);
  CHECK(kiln::safetensors::metadata(path) == meta);
  Named loaded = kiln::safetensors::load(path);
  REQUIRE(loaded.size() == 1);
  CHECK(loaded[0].first == "w");
  CHECK(loaded[0].second.to_vector<float>() == std::vector<float>{1.f, 2.f});
}

TEST_CASE("safetensors::save writes the reference layout byte for byte", "[safetensors]") {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  // Data order: I64, F64, F32, I32, U8, BOOL (larger alignment first), then by name; JSON keys
  // sorted; the header padded with spaces to a multiple of 8.
  kiln::safetensors::save(path,
                          {{"mask", make_tensor<bool>({3}, {true, false, true})},
                           {"b", make_tensor<float>({2}, {0.5f, -1.f})},
                           {"a", make_tensor<float>({1}, {3.f})},
                           {"step", make_tensor<int64_t>({}, {7})},
                           {"ids", make_tensor<int32_t>({2, 1}, {-1, 2})},
                           {"pixels", make_tensor<uint8_t>({2}, {0, 255})}},
                          {{"format", "kiln"}});
  std::string header = R"({"__metadata__":{"format":"kiln"},)"
                       R"("a":{"data_offsets":[8,12],"dtype":"F32","shape":[1]},)"
                       R"("b":{"data_offsets":[12,20],"dtype":"F32","shape":[2]},)"
                       R"("ids":{"data_offsets":[20,28],"dtype":"I32","shape":[2,1]},)"
                       R"("mask":{"data_offsets":[30,33],"dtype":"BOOL","shape":[3]},)"
                       R"("pixels":{"data_offsets":[28,30],"dtype":"U8","shape":[2]},)"
                       R"("step":{"data_offsets":[0,8],"dtype":"I64","shape":[]}})";
  std::string data = raw<int64_t>({7}) + raw<float>({3.f}) + raw<float>({0.5f, -1.f}) +
                     raw<int32_t>({-1, 2}) + std::string("\x00\xff", 2) +
                     std::string("\x01\x00\x01", 3);
  std::string expected = safetensors_bytes(header, data);
  CHECK(header.size() % 8 != 0);  // so the padding is exercised
  CHECK(read_bytes(path) == expected);
}

TEST_CASE("safetensors reads U8 tensors as uint8", "[safetensors][u8]") {
  TempDir dir;
  std::string path = dir.file("u8.safetensors");
  std::string header = R"({"img":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]}})";
  write_bytes(path, safetensors_bytes(header, std::string("\x00\x01\x80\xff", 4)));
  Named loaded = kiln::safetensors::load(path);
  REQUIRE(loaded.size() == 1);
  CHECK(loaded[0].second.dtype() == kiln::u8);
  CHECK(loaded[0].second.shape() == kiln::Shape{2, 2});
  CHECK(loaded[0].second.to_vector<uint8_t>() == std::vector<uint8_t>{0, 1, 128, 255});
  // A U8 entry whose byte range does not match its shape is rejected like any other.
  write_bytes(path, safetensors_bytes(R"({"img":{"dtype":"U8","shape":[3],"data_offsets":[0,4]}})",
                                      std::string(4, '\0')));
  CHECK_THROWS_AS(kiln::safetensors::load(path), kiln::IOError);
}

TEST_CASE("safetensors::load reads a hand-written file", "[safetensors]") {
  TempDir dir;
  std::string path = dir.file("hand.safetensors");
  // Keys in any order, extra whitespace, offsets not in key order, bool bytes other than 1.
  std::string header = R"({ "z": {"shape": [2, 2], "dtype": "I32", "data_offsets": [16, 32]},
                            "y": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]},
                            "x": {"dtype": "BOOL", "shape": [2], "data_offsets": [32, 34]},
                            "__metadata__": {"k": "v"} })";
  std::string data =
      raw<double>({1.25, -3.0}) + raw<int32_t>({1, -2, 3, -4}) + std::string("\x00\x05", 2);
  write_bytes(path, safetensors_bytes(header, data));
  Named loaded = kiln::safetensors::load(path);
  REQUIRE(loaded.size() == 3);
  CHECK(loaded[0].first == "x");
  CHECK(loaded[0].second.to_vector<bool>() == std::vector<bool>{false, true});
  CHECK(loaded[1].first == "y");
  CHECK(loaded[1].second.shape() == kiln::Shape{2});
  CHECK(loaded[1].second.to_vector<double>() == std::vector<double>{1.25, -3.0});
  CHECK(loaded[2].first == "z");
  CHECK(loaded[2].second.shape() == kiln::Shape{2, 2});
  CHECK(loaded[2].second.to_vector<int32_t>() == std::vector<int32_t>{1, -2, 3, -4});
  CHECK(kiln::safetensors::metadata(path) == std::map<std::string, std::string>{{"k", "v"}});
}

TEST_CASE("safetensors::load rejects corrupt files with IOError", "[safetensors]") {
  TempDir dir;
  std::string path = dir.file("bad.safetensors");
  auto entry = [](const char* name, const char* dtype, const char* shape, const char* offsets) {
    return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":{}}})", name, dtype, shape,
                       offsets);
  };
  std::string f8 = raw<float>({1, 2});
  struct Case {
    std::string name, file, message;
  };
  std::vector<Case> cases = {
      {"empty file", "", "0 bytes, too short for the 8-byte header length"},
      {"short length", std::string("\x08\x00\x00", 3), "3 bytes, too short"},
      {"length past the end", le64(100) + "{}", "header length 100 runs past the end of the file"},
      {"huge length", le64(UINT64_MAX) + "{}", "runs past the end"},
      {"not JSON", safetensors_bytes("{nope", ""), "not valid JSON"},
      {"not an object", safetensors_bytes("[1,2]", ""), "does not start with '{'"},
      {"leading garbage", safetensors_bytes("x{}", ""), "does not start with '{'"},
      {"invalid UTF-8", safetensors_bytes("{\"\xff\":1}", ""), "not valid JSON"},
      {"deep nesting",
       safetensors_bytes("{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}", ""),
       "nests deeper than 16 levels"},
      {"entry not an object", safetensors_bytes(R"({"a":3})", ""),
       "tensor 'a': its entry is not a JSON"},
      {"no dtype", safetensors_bytes(R"({"a":{"shape":[],"data_offsets":[0,0]}})", ""),
       "its entry has no \"dtype\""},
      {"unknown dtype", safetensors_bytes("{" + entry("a", "Q7", "[2]", "[0,8]") + "}", f8),
       "unsupported dtype 'Q7'"},
      {"unsupported dtype", safetensors_bytes("{" + entry("a", "F16", "[4]", "[0,8]") + "}", f8),
       "unsupported dtype 'F16' (Kiln reads F32, F64, I32, I64, U8 and BOOL)"},
      {"negative dim", safetensors_bytes("{" + entry("a", "F32", "[-2]", "[0,8]") + "}", f8),
       "\"shape\" holds -2"},
      {"fractional dim", safetensors_bytes("{" + entry("a", "F32", "[2.5]", "[0,8]") + "}", f8),
       "\"shape\" holds 2.5"},
      {"shape overflow",
       safetensors_bytes("{" + entry("a", "F32", "[4294967296,4294967296]", "[0,8]") + "}", f8),
       "is too large"},
      {"overflow hidden by 0",
       safetensors_bytes(
           "{" + entry("a", "F32", "[0,4294967296,4294967296,4294967296]", "[0,0]") + "}", ""),
       "is too large"},
      {"offsets not a pair", safetensors_bytes("{" + entry("a", "F32", "[2]", "[0]") + "}", f8),
       "\"data_offsets\" must be [begin, end]"},
      {"negative offset", safetensors_bytes("{" + entry("a", "F32", "[2]", "[-8,0]") + "}", f8),
       "\"data_offsets\" must be [begin, end]"},
      {"offsets reversed", safetensors_bytes("{" + entry("a", "F32", "[0]", "[8,0]") + "}", f8),
       "end before they begin"},
      {"offsets past the end",
       safetensors_bytes("{" + entry("a", "F32", "[4]", "[0,16]") + "}", f8),
       "run past the end of the data (8 bytes"},
      {"size mismatch", safetensors_bytes("{" + entry("a", "F32", "[3]", "[0,8]") + "}", f8),
       "shape (3,) of F32 needs 12 bytes, but \"data_offsets\" [0, 8] span 8"},
      {"overlap",
       safetensors_bytes(
           "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[1]", "[4,8]") + "}",
           f8),
       "tensors 'a' and 'b' overlap"},
      {"gap", safetensors_bytes("{" + entry("a", "F32", "[1]", "[4,8]") + "}", f8),
       "data bytes [0, 4) belong to no tensor"},
      {"trailing data", safetensors_bytes("{" + entry("a", "F32", "[1]", "[0,4]") + "}", f8),
       "the tensors cover 4 bytes of data, but the file holds 8"},
      {"duplicate tensor",
       safetensors_bytes(
           "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("a", "F32", "[1]", "[4,8]") + "}",
           f8),
       "lists the key 'a' twice"},
      {"duplicate field",
       safetensors_bytes(R"({"a":{"dtype":"F32","dtype":"I32","shape":[2],)"
                         R"("data_offsets":[0,8]}})",
                         f8),
       "lists the key 'dtype' twice"},
      {"metadata not an object", safetensors_bytes(R"({"__metadata__":[1]})", ""),
       "\"__metadata__\" is not a JSON object"},
      {"metadata value not a string", safetensors_bytes(R"({"__metadata__":{"k":1}})", ""),
       "\"__metadata__\" value for 'k' is not a string"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    write_bytes(path, c.file);
    CHECK_THROWS_AS(kiln::safetensors::load(path), kiln::IOError);
    CHECK_THROWS_WITH(kiln::safetensors::load(path),
                      Contains(path) && Contains(c.message) && Contains("safetensors_test.cpp"));
    CHECK_THROWS_AS(kiln::safetensors::metadata(path), kiln::IOError);
  }
  std::string missing = dir.file("missing.safetensors");
  CHECK_THROWS_WITH(kiln::safetensors::load(missing),
                    Contains(missing) && Contains("No such file or directory"));
}

TEST_CASE("safetensors::load survives truncation and flipped bytes anywhere", "[safetensors]") {
  TempDir dir;
  std::string good_path = dir.file("good.safetensors"), path = dir.file("bad.safetensors");
  kiln::safetensors::save(good_path,
                          {{"w", counting(kiln::f32, {3, 4})},
                           {"b", counting(kiln::f64, {4})},
                           {"mask", counting(kiln::boolean, {5})},
                           {"n", counting(kiln::i64, {})}},
                          {{"epoch", "3"}});
  std::string good = read_bytes(good_path);
  Named expected = kiln::safetensors::load(good_path);
  // Every truncation is an IOError (never a crash, never a silent partial load).
  for (size_t n = 0; n < good.size(); ++n) {
    INFO("truncated to " << n << " bytes");
    write_bytes(path, good.substr(0, n));
    CHECK_THROWS_AS(kiln::safetensors::load(path), kiln::IOError);
  }
  // Flipping a byte of the length prefix or the header either fails with IOError or (a change
  // that keeps the header valid, such as a name's letter) loads the same data; it never crashes.
  size_t header_end = 8 + static_cast<size_t>(static_cast<unsigned char>(good[0]));
  for (size_t i = 0; i < header_end; ++i) {
    for (unsigned char mask : {0x01, 0x20, 0x80}) {
      INFO("byte " << i << " ^ " << int(mask));
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      write_bytes(path, bad);
      try {
        Named loaded = kiln::safetensors::load(path);
        REQUIRE(loaded.size() == expected.size());
        for (size_t t = 0; t < loaded.size(); ++t)
          CHECK(loaded[t].second.size() == expected[t].second.size());
      } catch (const kiln::IOError&) {
      }
    }
  }
}

TEST_CASE("safetensors::save validates names and tensors before touching the file",
          "[safetensors]") {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  kiln::safetensors::save(path, {{"w", make_tensor<float>({2}, {1.f, 2.f})}});
  std::string before = read_bytes(path);
  Tensor x = make_tensor<float>({1}, {1.f});
  CHECK_THROWS_AS(kiln::safetensors::save(path, {{"a", x}, {"b", x}, {"a", x}}), kiln::ValueError);
  CHECK_THROWS_WITH(kiln::safetensors::save(path, {{"a", x}, {"b", x}, {"a", x}}),
                    Contains("the name 'a' is used twice") && Contains("safetensors.save"));
  CHECK_THROWS_WITH(kiln::safetensors::save(path, {{"a", x}, {"b", Tensor()}}),
                    Contains("tensor 'b' is undefined"));
  CHECK_THROWS_WITH(kiln::safetensors::save(path, {{"__metadata__", x}}),
                    Contains("reserved for metadata"));
  CHECK_THROWS_WITH(kiln::safetensors::save(path, {{"\xff\xfe", x}}), Contains("not valid UTF-8"));
  CHECK_THROWS_AS(kiln::safetensors::save(path, {{"\xff\xfe", x}}), kiln::ValueError);
  // Symbolic tensors, as met inside a traced function.
  auto traced = kiln::function([&](const Tensor& t) {
    kiln::safetensors::save(path, {{"t", t}});
    return t;
  });
  CHECK_THROWS_WITH(traced(x), Contains("tensor 't' is symbolic"));
  CHECK(read_bytes(path) == before);
  CHECK(std::distance(fs::directory_iterator(dir.path), {}) == 1);
  CHECK_THROWS_AS(kiln::safetensors::save(dir.file("no/such/dir/m.safetensors"), {{"a", x}}),
                  kiln::IOError);
}

TEST_CASE("a save that fails part way leaves the old file intact and no temporary file",
          "[safetensors]") {
  TempDir dir;
  std::string path = dir.file("m.safetensors");
  kiln::safetensors::save(path, {{"w", make_tensor<float>({2}, {1.f, 2.f})}}, {{"v", "1"}});
  std::string before = read_bytes(path);
  // Cap the size of files this process may write (this works as root, unlike a read-only
  // directory): writing the 4 MB tensor fails with EFBIG after the header went out.
  struct rlimit old_limit;
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limit = old_limit;
  limit.rlim_cur = 1 << 16;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &limit) == 0);
  Tensor big = counting(kiln::f32, {1 << 20});
  bool threw = false;
  try {
    kiln::safetensors::save(path, {{"big", big}, {"w", make_tensor<float>({1}, {3.f})}});
  } catch (const kiln::IOError& e) {
    threw = true;
    CHECK_THAT(e.what(), Contains("cannot write") && Contains(path) && Contains("File too large"));
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  CHECK(threw);
  CHECK(read_bytes(path) == before);
  CHECK(std::distance(fs::directory_iterator(dir.path), {}) == 1);
  // With the limit lifted the same save succeeds and replaces the file.
  kiln::safetensors::save(path, {{"big", big}});
  check_same(kiln::safetensors::load(path), {{"big", big}});
  CHECK(kiln::safetensors::metadata(path).empty());
}
