// kiln::hdf5 (the libhdf5 wrapper) on files h5py wrote, files it writes read back by h5py, and
// detail::run_isolated (the child process that reads users' files).
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <kiln/frontend/formats/hdf5.h>
#include <kiln/frontend/formats/isolated.h>
#include <kiln/kiln.h>

#include <filesystem>
#include <fstream>

#include "h5_fixtures.h"

namespace k = kiln;
namespace h5 = kiln::hdf5;
using Catch::Contains;

namespace {

// The attribute fixture, written once per test case into a file of this process's own: ctest runs
// the test cases as parallel processes, and a shared name was rewritten under a reader.
std::string attrs_file() {
  static const std::string path = fmt::format("hdf5_test_attrs.{}.h5", getpid());
  struct RemoveAtExit {
    ~RemoveAtExit() { std::remove(path.c_str()); }
  };
  static RemoveAtExit remove_at_exit;
  h5fixtures::run({"attrs", path});
  return path;
}

std::vector<std::string> strs(std::initializer_list<const char*> items) {
  return std::vector<std::string>(items.begin(), items.end());
}

}  // namespace

TEST_CASE("hdf5: opening a missing or non-HDF5 file is an IOError naming it", "[hdf5]") {
  CHECK_THROWS_AS(h5::File::open("hdf5_test_no_such.h5", "test"), k::IOError);
  CHECK_THROWS_WITH(h5::File::open("hdf5_test_no_such.h5", "test"),
                    Contains("'hdf5_test_no_such.h5'") && Contains("cannot open"));
  std::ofstream("hdf5_test_text.h5") << "not an hdf5 file at all";
  CHECK_THROWS_AS(h5::File::open("hdf5_test_text.h5", "test"), k::IOError);
  CHECK_THROWS_WITH(h5::File::open("hdf5_test_text.h5", "test"), Contains("not an HDF5 file"));
  CHECK_FALSE(h5::has_signature("hdf5_test_text.h5"));
  CHECK_FALSE(h5::has_signature("hdf5_test_no_such.h5"));
  std::remove("hdf5_test_text.h5");
}

TEST_CASE("hdf5: a truncated file is an IOError with libhdf5's reason", "[hdf5]") {
  std::string path = attrs_file();
  std::filesystem::resize_file(path, 3000);
  CHECK(h5::has_signature(path));
  CHECK_THROWS_AS(h5::File::open(path, "test"), k::IOError);
  CHECK_THROWS_WITH(h5::File::open(path, "test"),
                    Contains("not a readable HDF5 file") && Contains("libhdf5:"));
  std::remove(path.c_str());
}

TEST_CASE("hdf5: groups, datasets and children; links other than hard ones are refused", "[hdf5]") {
  std::string path = attrs_file();
  h5::File f = h5::File::open(path, "test");
  CHECK(f.has_group("/g"));
  CHECK(f.has_group("/"));
  CHECK_FALSE(f.has_group("/g/f32"));
  CHECK(f.has_dataset("/g/f32"));
  CHECK_FALSE(f.has_dataset("/g/nothing"));
  CHECK_FALSE(f.has_dataset("/nothing/deeper"));  // a missing parent is no error
  CHECK(f.children("/") == strs({"a", "ext", "g"}));
  CHECK(f.children("/g") ==
        strs({"f32", "f64be", "i32", "scalar_ds", "soft", "sub", "text", "u8"}));
  CHECK_THROWS_WITH(f.children("/g/f32"), Contains("/g/f32") && Contains("is not a group"));
  CHECK_THROWS_AS(f.has_dataset("/g/soft"), k::IOError);
  CHECK_THROWS_WITH(f.has_dataset("/g/soft"),
                    Contains("HDF5 path /g/soft") && Contains("soft or external link"));
  CHECK_THROWS_WITH(f.has_group("/ext"), Contains("soft or external link"));
  std::remove(path.c_str());
}

TEST_CASE("hdf5: string-list attributes in every encoding writers use", "[hdf5]") {
  std::string path = attrs_file();
  h5::File f = h5::File::open(path, "test");
  CHECK(f.string_list_attr("/g", "vlen") == strs({"conv", "bn", "dense_1"}));
  CHECK(f.string_list_attr("/g", "utf8") == strs({"caf\xc3\xa9", "x"}));
  // Fixed length, NUL padded: "abcd" fills its 4 bytes with no terminator.
  CHECK(f.string_list_attr("/g", "fixed") == strs({"ab", "abcd", ""}));
  CHECK(f.string_list_attr("/g", "scalar") == strs({"tensorflow"}));
  CHECK(f.string_attr("/g", "scalar") == "tensorflow");
  CHECK(f.string_list_attr("/g", "empty_f64").empty());
  CHECK(f.string_list_attr("/g", "empty_vlen").empty());
  CHECK_FALSE(f.string_attr("/g", "missing").has_value());
  CHECK(f.has_attr("/g", "vlen"));
  CHECK_FALSE(f.has_attr("/g", "nope"));
  CHECK_FALSE(f.has_attr("/nothing", "vlen"));
  // NAME missing: NAME0, NAME1, ... of mixed encodings, concatenated.
  CHECK(f.chunked_string_list_attr("/g", "part") == strs({"a", "b", "c"}));
  CHECK(f.chunked_string_list_attr("/g", "vlen") == strs({"conv", "bn", "dense_1"}));
  CHECK_FALSE(f.chunked_string_list_attr("/g", "absent").has_value());
}

TEST_CASE("hdf5: attributes of the wrong type or rank are IOErrors naming the path", "[hdf5]") {
  std::string path = attrs_file();
  h5::File f = h5::File::open(path, "test");
  CHECK_THROWS_AS(f.string_list_attr("/g", "numbers"), k::IOError);
  CHECK_THROWS_WITH(
      f.string_list_attr("/g", "numbers"),
      Contains("HDF5 path /g") && Contains("attribute 'numbers' should hold strings"));
  CHECK_THROWS_WITH(f.string_list_attr("/g", "matrix"), Contains("has rank 2"));
  CHECK_THROWS_WITH(f.string_list_attr("/g", "missing"), Contains("cannot open attribute"));
  CHECK_THROWS_WITH(f.string_attr("/g", "vlen"), Contains("should hold one string, not 3"));
  std::remove(path.c_str());
}

TEST_CASE("hdf5: dataset info and reads convert width and byte order", "[hdf5]") {
  std::string path = attrs_file();
  h5::File f = h5::File::open(path, "test");
  h5::DatasetInfo info = f.dataset_info("/g/f32");
  CHECK(info.shape == k::Shape{2, 3});
  CHECK(info.type == "f32");
  CHECK(info.dtype == k::f32);
  CHECK(info.is_float);
  CHECK(f.dataset_info("/g/f64be").dtype == k::f64);
  CHECK(f.dataset_info("/g/i32").dtype == k::i32);
  CHECK(f.dataset_info("/g/u8").type == "u8");
  CHECK_FALSE(f.dataset_info("/g/u8").dtype.has_value());
  CHECK(f.dataset_info("/g/text").type == "string");
  CHECK(f.dataset_info("/g/scalar_ds").shape == k::Shape{});

  k::ir::HostTensor a(k::f32, k::Shape{2, 3});
  f.read("/g/f32", a);
  CHECK(std::vector<float>(a.values<float>().begin(), a.values<float>().end()) ==
        std::vector<float>{0, 1, 2, 3, 4, 5});
  k::ir::HostTensor b(k::f32, k::Shape{3});  // big-endian f64 into f32
  f.read("/g/f64be", b);
  CHECK(std::vector<float>(b.values<float>().begin(), b.values<float>().end()) ==
        std::vector<float>{0, 1, 2});
  k::ir::HostTensor c(k::i64, k::Shape{2});
  f.read("/g/i32", c);
  CHECK(c.values<int64_t>()[1] == -8);
  k::ir::HostTensor s(k::f32, k::Shape{});
  f.read("/g/scalar_ds", s);
  CHECK(s.values<float>()[0] == 4.5f);
  std::remove(path.c_str());
}

TEST_CASE("hdf5: reads with the wrong shape or kind are ValueErrors, nothing is read", "[hdf5]") {
  std::string path = attrs_file();
  h5::File f = h5::File::open(path, "test");
  k::ir::HostTensor wrong_shape(k::f32, k::Shape{3, 2});
  CHECK_THROWS_AS(f.read("/g/f32", wrong_shape), k::ValueError);
  CHECK_THROWS_WITH(f.read("/g/f32", wrong_shape),
                    Contains("HDF5 path /g/f32") && Contains("shape (2, 3), (3, 2) was expected"));
  CHECK(wrong_shape.values<float>()[0] == 0.f);
  k::ir::HostTensor floats(k::f32, k::Shape{1});
  CHECK_THROWS_WITH(f.read("/g/text", floats), Contains("holds string, f32 was expected"));
  k::ir::HostTensor ints(k::i32, k::Shape{2, 3});
  CHECK_THROWS_WITH(f.read("/g/f32", ints), Contains("holds f32, i32 was expected"));
  CHECK_THROWS_WITH(f.read("/g", floats), Contains("is not a dataset"));
  CHECK_THROWS_WITH(f.read("/g/none", floats), Contains("no such dataset"));
  std::remove(path.c_str());
}

TEST_CASE("hdf5: a written file reads back in Kiln and in h5py", "[hdf5]") {
  std::string path = "hdf5_test_written.h5";
  std::remove(path.c_str());
  {
    h5::File f = h5::File::create(path, "test");
    f.create_group("/layer");
    f.write_string_attr("/", "backend", "tensorflow");
    f.write_string_list_attr("/layer", "names", {"layer/kernel:0", "layer/bias:0"});
    f.write_string_list_attr("/layer", "empty", {});
    f.write_dataset("/layer/layer/kernel:0", k::ir::HostTensor::from_values<float>(
                                                 k::Shape{2, 2}, std::vector<float>{1, 2, 3, 4}));
    f.write_dataset("/layer/scalar", k::ir::HostTensor::scalar<double>(2.5));
    f.write_dataset("/layer/ints", k::ir::HostTensor::from_values<int32_t>(
                                       k::Shape{2}, std::vector<int32_t>{5, -6}));
    // Nothing is at the path until commit.
    CHECK_FALSE(std::filesystem::exists(path));
    f.commit();
  }
  REQUIRE(std::filesystem::exists(path));
  h5::File f = h5::File::open(path, "test");
  CHECK(f.string_list_attr("/layer", "names") == strs({"layer/kernel:0", "layer/bias:0"}));
  CHECK(f.string_list_attr("/layer", "empty").empty());
  CHECK(f.children("/layer") == strs({"ints", "layer", "scalar"}));
  std::string dump = h5fixtures::run({"dump", path});
  CHECK_THAT(dump, Contains("attr / backend = 'tensorflow'"));
  CHECK_THAT(dump, Contains("attr /layer names = ['layer/kernel:0', 'layer/bias:0']"));
  CHECK_THAT(dump, Contains("attr /layer empty = [] float64"));
  CHECK_THAT(dump, Contains("dataset /layer/layer/kernel:0 <f4 (2, 2) [1.0, 2.0, 3.0, 4.0]"));
  CHECK_THAT(dump, Contains("dataset /layer/scalar <f8 () [2.5]"));
  CHECK_THAT(dump, Contains("dataset /layer/ints <i4 (2,) [5.0, -6.0]"));
  std::remove(path.c_str());
}

TEST_CASE("hdf5: a created file that is not committed leaves nothing behind", "[hdf5]") {
  std::string path = "hdf5_test_uncommitted.h5";
  std::ofstream(path) << "old contents";
  {
    h5::File f = h5::File::create(path, "test");
    f.create_group("/x");
  }
  std::ifstream in(path);
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(contents == "old contents");
  for (const auto& entry : std::filesystem::directory_iterator("."))
    CHECK(entry.path().filename().string().find("hdf5_test_uncommitted.h5.tmp") ==
          std::string::npos);
  std::remove(path.c_str());
  CHECK_THROWS_AS(h5::File::create("/no-such-dir/x.h5", "test"), k::IOError);
}

TEST_CASE("hdf5: long string lists are split into NAME0, NAME1... as Keras does", "[hdf5]") {
  std::string path = "hdf5_test_chunks.h5";
  std::vector<std::string> names;
  for (int i = 0; i < 3000; ++i)
    names.push_back(fmt::format("batch_normalization_{}", i));
  {
    h5::File f = h5::File::create(path, "test");
    f.write_string_list_attr("/", "layer_names", names);
    f.commit();
  }
  h5::File f = h5::File::open(path, "test");
  CHECK_FALSE(f.has_attr("/", "layer_names"));
  CHECK(f.has_attr("/", "layer_names0"));
  CHECK(f.has_attr("/", "layer_names1"));
  CHECK(f.chunked_string_list_attr("/", "layer_names") == names);
  std::remove(path.c_str());
}

TEST_CASE("isolated: the child's reply comes back", "[hdf5][isolated]") {
  std::string reply = k::detail::run_isolated([] { return std::string("hello\0world", 11); },
                                              {.max_reply_bytes = 100}, "testing", "test",
                                              std::source_location::current());
  CHECK(reply == std::string("hello\0world", 11));
  // The child reads the parent's memory as it was at the fork.
  std::vector<int> data{1, 2, 3};
  reply = k::detail::run_isolated([&] { return std::to_string(data[0] + data[1] + data[2]); },
                                  {.max_reply_bytes = 10}, "testing", "test",
                                  std::source_location::current());
  CHECK(reply == "6");
}

TEST_CASE("isolated: an error thrown in the child is thrown again with its class",
          "[hdf5][isolated]") {
  auto run = [](std::function<std::string()> work) {
    k::detail::run_isolated(work, {.max_reply_bytes = 10}, "testing", "test",
                            std::source_location::current());
  };
  CHECK_THROWS_AS(run([]() -> std::string { throw k::ValueError("bad value"); }), k::ValueError);
  CHECK_THROWS_WITH(run([]() -> std::string { throw k::ValueError("bad value"); }), "bad value");
  CHECK_THROWS_AS(run([]() -> std::string { throw k::IOError("bad file"); }), k::IOError);
  CHECK_THROWS_AS(run([]() -> std::string { throw k::ShapeError("s"); }), k::ShapeError);
  CHECK_THROWS_AS(run([]() -> std::string { throw std::runtime_error("odd"); }), k::InternalError);
}

TEST_CASE("isolated: a crash, a hang, a silent exit and a long reply are IOErrors",
          "[hdf5][isolated]") {
  auto loc = std::source_location::current();
  CHECK_THROWS_AS(k::detail::run_isolated(
                      []() -> std::string {
                        raise(SIGSEGV);
                        return "";
                      },
                      {.max_reply_bytes = 10}, "reading 'x.h5'", "load_weights", loc),
                  k::IOError);
  CHECK_THROWS_WITH(k::detail::run_isolated(
                        []() -> std::string {
                          raise(SIGSEGV);
                          return "";
                        },
                        {.max_reply_bytes = 10}, "reading 'x.h5'", "load_weights", loc),
                    Contains("reading 'x.h5'") && Contains("crashed") &&
                        Contains("signal " + std::to_string(SIGSEGV)));
  auto started = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(k::detail::run_isolated(
                        []() -> std::string {
                          for (;;)
                            pause();
                        },
                        {.max_reply_bytes = 10, .timeout = std::chrono::milliseconds(300)},
                        "reading 'x.h5'", "load_weights", loc),
                    Contains("gave up after 0.3 s"));
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(20));
  CHECK_THROWS_WITH(
      k::detail::run_isolated([]() -> std::string { _exit(7); }, {.max_reply_bytes = 10},
                              "reading 'x.h5'", "load_weights", loc),
      Contains("without a whole reply (exit status 7)"));
  CHECK_THROWS_WITH(
      k::detail::run_isolated([] { return std::string(1000, 'x'); }, {.max_reply_bytes = 10},
                              "reading 'x.h5'", "load_weights", loc),
      Contains("more than the 10 bytes expected"));
  // Far more than the limit: the parent stops reading and kills the child.
  CHECK_THROWS_WITH(
      k::detail::run_isolated([] { return std::string(8 << 20, 'x'); }, {.max_reply_bytes = 10},
                              "reading 'x.h5'", "load_weights", loc),
      Contains("more than"));
}

TEST_CASE("isolated: the test hook runs in the child before the work", "[hdf5][isolated]") {
  k::detail::set_isolated_child_hook([] { throw k::IOError("from the hook"); });
  CHECK_THROWS_WITH(
      k::detail::run_isolated([] { return std::string("x"); }, {.max_reply_bytes = 10}, "testing",
                              "test", std::source_location::current()),
      "from the hook");
  k::detail::set_isolated_child_hook({});
  CHECK(k::detail::run_isolated([] { return std::string("x"); }, {.max_reply_bytes = 10}, "testing",
                                "test", std::source_location::current()) == "x");
}
