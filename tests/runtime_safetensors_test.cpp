// The one safetensors reader and writer (runtime/safetensors.h), which kiln::safetensors and the
// AOT runtime share: its own API, the same words from both users for the same bad file, and the
// AOT dtype codes tied to ir::DType (frontend/formats/runtime_dtype.h).
#include "kiln/runtime/safetensors.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "kiln/frontend/formats/runtime_dtype.h"
#include "kiln/frontend/formats/safetensors.h"
#include "kiln/runtime/aot_model.h"
#include "kiln/runtime/aot_weights.h"

#include "file_test_util.h"

namespace {

using namespace kiln::testing;
namespace fs = std::filesystem;
namespace format = kiln::runtime::safetensors;
using Catch::Contains;

// What the format's reader says about the file at `path` ("" if it reads and tiles it).
std::string reader_error(const std::string& path) {
  try {
    format::Reader file(path);
    file.check_layout();
  } catch (const format::FormatError& e) {
    return e.what();
  }
  return "";
}

std::string frontend_error(const std::string& path) {
  try {
    kiln::safetensors::load(path);
  } catch (const kiln::IOError& e) {
    return e.what();
  }
  return "";
}

// Reads `path` as the state of an AOT model holding one F32 tensor "a" of shape [2].
std::string aot_error(const std::string& path, std::vector<float>* values = nullptr) {
  std::vector<kiln::runtime::detail::TensorInfo> state = {{"a", KILN_AOT_F32, {2}, 8, 0}};
  std::vector<float> data(2);
  try {
    kiln::runtime::detail::read_weights_file("model", path.c_str(), state,
                                             [&](size_t) { return static_cast<void*>(data.data()); });
  } catch (const kiln::runtime::detail::Failure& e) {
    return e.what();
  }
  if (values != nullptr) *values = data;
  return "";
}

}  // namespace

TEST_CASE("safetensors::write lays out what kiln::safetensors::save does; Reader reads it",
          "[safetensors][runtime]") {
  TempDir dir;
  const std::string path = dir.file("runtime.safetensors");
  const std::vector<float> w = {0.5f, -1.f, 2.f, 4.f};
  const int64_t step = 7;
  const unsigned char mask[] = {1, 0, 1};
  const int64_t w_shape[] = {2, 2}, mask_shape[] = {3};
  const std::vector<format::TensorRef> tensors = {
      {"w", KILN_AOT_F32, w_shape, w.data(), 16},
      {"step", KILN_AOT_I64, {}, &step, 8},
      {"mask", KILN_AOT_BOOL, mask_shape, mask, 3}};
  format::write(path, tensors, {{"format", "kiln"}, {"note", "\"quoted\"\n"}});

  const std::string frontend = dir.file("frontend.safetensors");
  kiln::safetensors::save(frontend,
                          {{"w", make_tensor<float>({2, 2}, w)},
                           {"step", make_tensor<int64_t>({}, {7})},
                           {"mask", make_tensor<bool>({3}, {true, false, true})}},
                          {{"format", "kiln"}, {"note", "\"quoted\"\n"}});
  CHECK(read_bytes(path) == read_bytes(frontend));

  format::Reader file(path);
  file.check_layout();
  REQUIRE(file.entries().size() == 3);
  CHECK(file.entries()[0].name == "mask");  // sorted by name
  CHECK(file.entries()[1].name == "step");
  CHECK(file.entries()[2].name == "w");
  CHECK(file.metadata() ==
        std::map<std::string, std::string>{{"format", "kiln"}, {"note", "\"quoted\"\n"}});
  CHECK(file.find("nope") == nullptr);
  const format::Entry* entry = file.find("w");
  REQUIRE(entry != nullptr);
  CHECK(entry->dtype == KILN_AOT_F32);
  CHECK(entry->shape == std::vector<int64_t>{2, 2});
  std::vector<float> back(4);
  file.read(*entry, back.data());
  CHECK(back == w);
  CHECK(file.find("step")->shape.empty());
  CHECK(format::dtype_name(KILN_AOT_BOOL) == std::string("BOOL"));
  CHECK(format::dtype_size(KILN_AOT_F64) == 8);
  CHECK(format::dtype_name(99) == nullptr);
  CHECK(format::dtype_size(99) == 0);
}

TEST_CASE("safetensors::write refuses bad tensors before touching the file",
          "[safetensors][runtime]") {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  const float data[2] = {1, 2};
  const int64_t shape[] = {2};
  format::write(path, std::vector<format::TensorRef>{{"a", KILN_AOT_F32, shape, data, 8}});
  const std::string before = read_bytes(path);
  struct Case {
    std::vector<format::TensorRef> tensors;
    std::map<std::string, std::string> metadata;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{{"a", KILN_AOT_F32, shape, data, 8}, {"a", KILN_AOT_F32, shape, data, 8}},
       {},
       "the name 'a' is used twice"},
      {{{"__metadata__", KILN_AOT_F32, shape, data, 8}}, {}, "reserved for metadata"},
      {{{"\xff", KILN_AOT_F32, shape, data, 8}}, {}, "the name '\xff' is not valid UTF-8"},
      {{}, {{"k", "\xc0\x80"}}, "the metadata entry 'k' is not valid UTF-8"},
      {{{"a", 42, shape, data, 8}}, {}, "dtype code 42, which safetensors files do not hold"},
      {{{"a", KILN_AOT_F32, shape, data, 4}}, {}, "has 4 bytes, but its shape (2,) needs 8"},
  };
  for (const Case& c : cases) {
    INFO(c.message);
    CHECK_THROWS_AS(format::write(path, c.tensors, c.metadata), std::invalid_argument);
    CHECK_THROWS_WITH(format::write(path, c.tensors, c.metadata), Contains(c.message));
  }
  CHECK(read_bytes(path) == before);
  CHECK(std::distance(fs::directory_iterator(dir.path), {}) == 1);
}

TEST_CASE("kiln::safetensors and the AOT runtime say the same about a bad file",
          "[safetensors][runtime]") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  const std::string f8 = raw<float>({1, 2});
  const std::vector<std::string> files = {
      "",
      le64(100) + "{}",
      safetensors_bytes("x{}", ""),
      safetensors_bytes("[1]", ""),
      safetensors_bytes(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", "1234"),
      safetensors_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f8),
      safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":1})", f8),
  };
  for (const std::string& bytes : files) {
    write_bytes(path, bytes);
    const std::string what = reader_error(path);
    INFO(what);
    REQUIRE(!what.empty());
    CHECK_THAT(frontend_error(path),
               Contains("cannot read safetensors file '" + path + "': " + what));
    CHECK_THAT(aot_error(path), Contains("model: weights file '" + path + "': " + what));
  }
  CHECK_THAT(reader_error(dir.file("missing")), Contains("cannot open it: No such file"));
  CHECK(reader_error(dir.path) == "it is a directory");
}

TEST_CASE("check_layout: kiln::safetensors wants tensors to tile the data, the AOT runtime not",
          "[safetensors][runtime]") {
  TempDir dir;
  const std::string path = dir.file("shared.safetensors");
  // Two names for the same 8 bytes, and 4 bytes that belong to nobody.
  write_bytes(path, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                      raw<float>({3, 4, 5})));
  format::Reader file(path);
  CHECK(file.entries().size() == 2);
  CHECK_THROWS_WITH(file.check_layout(), Contains("tensors 'a' and 'b' overlap"));
  CHECK_THAT(frontend_error(path), Contains("overlap"));
  // The AOT model needs "a" only; "b" is refused as not part of the model, not for its layout.
  CHECK_THAT(aot_error(path), Contains("it holds tensor 'b', which is not part of the model"));
  write_bytes(path, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                      raw<float>({3, 4, 5})));
  CHECK_THAT(frontend_error(path), Contains("data bytes [0, 4) belong to no tensor"));
  std::vector<float> values;
  CHECK(aot_error(path, &values).empty());
  CHECK(values == std::vector<float>{4, 5});
}

TEST_CASE("a header may start with whitespace, but nothing else before '{'",
          "[safetensors][runtime]") {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  write_bytes(path, safetensors_bytes(
                        " \n\t{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}\r\n",
                        raw<float>({1, 2})));
  CHECK(kiln::safetensors::load(path).at(0).second.to_vector<float>() == std::vector<float>{1, 2});
  write_bytes(path, safetensors_bytes("\x01{}", ""));
  CHECK(reader_error(path).starts_with("the header is not valid JSON and does not start with '{'"));
}

TEST_CASE("the AOT dtype codes are ir::DType's, code for code", "[aot][runtime]") {
  CHECK(kiln::detail::runtime_dtype(kiln::f32) == KILN_AOT_F32);
  CHECK(kiln::detail::runtime_dtype(kiln::f64) == KILN_AOT_F64);
  CHECK(kiln::detail::runtime_dtype(kiln::i32) == KILN_AOT_I32);
  CHECK(kiln::detail::runtime_dtype(kiln::i64) == KILN_AOT_I64);
  CHECK(kiln::detail::runtime_dtype(kiln::boolean) == KILN_AOT_BOOL);
  CHECK(kiln::detail::runtime_dtype(kiln::u8) == KILN_AOT_U8);
  for (kiln::DType dtype : kiln::ir::kAllDTypes) {
    INFO(kiln::ir::dtype_name(dtype));
    CHECK(kiln::detail::from_runtime_dtype(kiln::detail::runtime_dtype(dtype)) == dtype);
    // Every dtype Kiln has, safetensors files hold, with the same element size.
    CHECK(format::dtype_size(kiln::detail::runtime_dtype(dtype)) ==
          static_cast<int64_t>(kiln::ir::dtype_size(dtype)));
  }
  CHECK(!kiln::detail::from_runtime_dtype(-1).has_value());
  CHECK(!kiln::detail::from_runtime_dtype(6).has_value());
}
