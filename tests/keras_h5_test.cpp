// Keras HDF5 weight files (frontend/keras/keras_h5.h): files written with h5py as Keras writes
// them (tests/keras_h5_fixtures.py) load with every weight where Keras would put it, mismatches
// and malformed files are errors that change nothing, and h5py reads what save_weights writes.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <catch2/catch.hpp>

#include <kiln/frontend/formats/isolated.h>
#include <kiln/frontend/keras/keras_h5.h>
#include <kiln/kiln.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "h5_fixtures.h"

namespace k = kiln;
using Catch::Contains;

namespace {

// The fixtures' model: conv (3x3, 2 -> 4), bn, flat, fc (36 -> units), on 5x5x2 samples.
k::Sequential make_model(int64_t fc_units = 3) {
  k::Sequential model(
      {k::layers::Conv2D(4, {3, 3}, {1, 1}, "valid", "", k::Shape{5, 5, 2}, true, "glorot_uniform",
                         "zeros", "conv"),
       k::layers::BatchNormalization(-1, 0.99, 1e-3, true, true, "bn"),
       k::layers::Flatten(std::nullopt, "flat"),
       k::layers::Dense(fc_units, "", std::nullopt, true, "glorot_uniform", "zeros", "fc")},
      "net");
  model.build(k::Shape{5, 5, 2});
  return model;
}

// What the fixture stores in weight i of layer k (its index in the model's layers).
std::vector<float> fixture_values(int k, int i, int64_t n) {
  std::vector<float> out;
  for (int64_t j = 0; j < n; ++j)
    out.push_back(static_cast<float>(100.0 * k + 10.0 * i + 0.01 * static_cast<double>(j)));
  return out;
}

std::map<std::string, std::vector<float>> values_by_name(const k::Model& model) {
  std::map<std::string, std::vector<float>> out;
  for (const k::Variable& v : model.weights())
    out[v.name()] = v.value().to_vector<float>();
  return out;
}

// Checks that layer `layer` (index in the model) holds the fixture's values, weights in the
// order given.
void check_layer(const k::Model& model, int layer, const std::vector<std::string>& names) {
  std::map<std::string, std::vector<float>> values = values_by_name(model);
  for (size_t i = 0; i < names.size(); ++i) {
    INFO(names[i]);
    REQUIRE(values.count(names[i]) == 1);
    CHECK(values[names[i]] == fixture_values(layer, static_cast<int>(i),
                                             static_cast<int64_t>(values[names[i]].size())));
  }
}

void check_all_loaded(const k::Model& model) {
  check_layer(model, 0, {"conv/kernel", "conv/bias"});
  check_layer(model, 1, {"bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"});
  check_layer(model, 3, {"fc/kernel", "fc/bias"});
}

// Captures warnings while alive.
struct LogCapture {
  std::string text;
  k::LogSink old;
  LogCapture() {
    old = k::set_log_sink([this](std::string_view m) { text += std::string(m) + "\n"; });
  }
  ~LogCapture() { k::set_log_sink(old); }
};

}  // namespace

TEST_CASE("keras_h5: a tf.keras 2 file loads by order, every weight where Keras puts it",
          "[keras_h5]") {
  std::string path = "keras_h5_test_basic.h5";
  h5fixtures::keras(path);
  k::Sequential model = make_model();
  model.load_weights(path);
  check_all_loaded(model);
  // HWIO: kernel[kh][kw][in][out] is element ((kh*3 + kw)*2 + in)*4 + out.
  auto& conv = model.get_layer("conv");
  std::vector<float> kernel = conv.weights()[0].value().to_vector<float>();
  CHECK(conv.weights()[0].shape() == k::Shape{3, 3, 2, 4});
  CHECK(kernel[((1 * 3 + 2) * 2 + 1) * 4 + 3] == static_cast<float>(0.01 * 47));
  // Dense [in, out]: kernel[5][2] is element 5*3 + 2.
  CHECK(model.get_layer("fc").weights()[0].value().to_vector<float>()[17] ==
        static_cast<float>(300.0 + 0.17));
  std::remove(path.c_str());
}

TEST_CASE("keras_h5: every string encoding and layout variant Keras writes loads", "[keras_h5]") {
  const std::vector<std::vector<std::string>> variants = {
      {"strings=fixed", "keras20"},  // h5py 2 / Keras 2.0 (the 2017 files): other names, by order
      {"strings=utf8"},
      {"chunk"},      // layer_names0/1 and weight_names0/1
      {"nocolon"},    // Keras 3's legacy writer: "conv/kernel" without ":0"
      {"emptyvlen"},  // an empty weight_names as a string array of shape (0,)
      {"full"},       // model.save("m.h5"): the weights under model_weights
      {"bigendian", "deflate"},
      {"f64"},     // float64 data into f32 weights, converted
      {"keras3"},  // Keras 3's .weights.h5: layers/conv2d/vars/0, ..., matched by place
  };
  std::vector<std::vector<std::string>> files;
  for (size_t i = 0; i < variants.size(); ++i) {
    files.push_back({fmt::format("keras_h5_test_variant{}.h5", i)});
    files.back().insert(files.back().end(), variants[i].begin(), variants[i].end());
  }
  h5fixtures::keras_many(files);
  for (const std::vector<std::string>& file : files) {
    INFO(fmt::format("fixture: {}", fmt::join(file, " ")));
    const std::string& path = file[0];
    k::Sequential model = make_model();
    model.load_weights(path);
    check_all_loaded(model);
    std::remove(path.c_str());
  }
}

TEST_CASE("keras_h5: by_name loads the layers whose names match and leaves the others",
          "[keras_h5]") {
  std::string path = "keras_h5_test_by_name.h5";
  h5fixtures::keras(path, {"drop=conv", "extra"});
  k::Sequential model = make_model();
  auto before = values_by_name(model);
  model.load_weights(path, {.by_name = true});
  check_layer(model, 1, {"bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"});
  check_layer(model, 3, {"fc/kernel", "fc/bias"});
  auto after = values_by_name(model);
  CHECK(after["conv/kernel"] == before["conv/kernel"]);
  CHECK(after["conv/bias"] == before["conv/bias"]);
  // By order the same file has one layer with weights fewer than the model (and one extra).
  std::remove(path.c_str());
}

TEST_CASE("keras_h5: by_name that matches no layer is an error naming both sides", "[keras_h5]") {
  std::string path = "keras_h5_test_no_match.h5";
  h5fixtures::keras(path, {"keras20"});
  k::Sequential model = make_model();
  auto before = values_by_name(model);
  CHECK_THROWS_AS(model.load_weights(path, {.by_name = true}), k::ValueError);
  CHECK_THROWS_WITH(model.load_weights(path, {.by_name = true}),
                    Contains("by_name matched no layer of model 'net'") &&
                        Contains("model: 'conv', 'bn', 'fc'") &&
                        Contains("file: 'conv2d_1', 'batch_normalization_1', 'dense_1'"));
  CHECK(values_by_name(model) == before);
  std::remove(path.c_str());
}

TEST_CASE("keras_h5: a model_weights group without layer_names is an error, not a crash",
          "[keras_h5]") {
  // (Found by keras_h5_fuzz: the loader read the missing list through optional::value.)
  std::string path = "keras_h5_test_no_layer_names.h5";
  h5fixtures::keras(path, {"full", "nolayernames"});
  k::Sequential model = make_model();
  auto before = values_by_name(model);
  CHECK_THROWS_AS(model.load_weights(path), k::Error);
  CHECK_THROWS_WITH(model.load_weights(path),
                    Contains("/model_weights group but no 'layer_names' attribute"));
  CHECK(values_by_name(model) == before);
  std::remove(path.c_str());
}

TEST_CASE("keras_h5: a layer count mismatch lists the layers and changes nothing", "[keras_h5]") {
  std::string path = "keras_h5_test_count.h5";
  h5fixtures::keras(path, {"drop=bn"});
  k::Sequential model = make_model();
  auto before = values_by_name(model);
  CHECK_THROWS_AS(model.load_weights(path), k::ValueError);
  CHECK_THROWS_WITH(model.load_weights(path),
                    Contains("Layer count mismatch") &&
                        Contains("expected 3 layers, found 2 saved layers") &&
                        Contains("file: 'conv', 'fc'"));
  CHECK_THROWS_AS(model.load_weights(path, {.skip_mismatch = true}), k::ValueError);
  CHECK(values_by_name(model) == before);
  std::remove(path.c_str());
}

TEST_CASE("keras_h5: shape mismatches are listed; skip_mismatch warns and loads the rest",
          "[keras_h5]") {
  std::string path = "keras_h5_test_shape.h5";
  h5fixtures::keras(path, {"fcunits=5"});
  k::Sequential model = make_model();
  auto before = values_by_name(model);
  CHECK_THROWS_AS(model.load_weights(path), k::ValueError);
  CHECK_THROWS_WITH(
      model.load_weights(path),
      Contains("nothing was loaded") &&
          Contains("Shape mismatch in layer #2 (named 'fc' in the current model, 'fc' in the "
                   "save file) for weight 'fc/kernel'. Weight expects shape (36, 3). Received "
                   "saved weight 'fc/kernel:0' with shape (36, 5)") &&
          Contains("for weight 'fc/bias'. Weight expects shape (3,)"));
  CHECK(values_by_name(model) == before);

  LogCapture log;
  model.load_weights(path, {.skip_mismatch = true});
  CHECK_THAT(log.text,
             Contains("skipping weight 'fc/kernel'") && Contains("skipping weight 'fc/bias'"));
  check_layer(model, 0, {"conv/kernel", "conv/bias"});
  check_layer(model, 1, {"bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"});
  CHECK(values_by_name(model)["fc/kernel"] == before["fc/kernel"]);
  std::remove(path.c_str());
}

TEST_CASE("keras_h5: a weight count mismatch names the layer; skip_mismatch skips it",
          "[keras_h5]") {
  std::string path = "keras_h5_test_weight_count.h5";
  h5fixtures::keras(path, {"bnnoscale"});  // BatchNormalization(scale=False): no gamma
  k::Sequential model = make_model();
  auto before = values_by_name(model);
  CHECK_THROWS_WITH(model.load_weights(path),
                    Contains("Weight count mismatch for layer #1 (named 'bn' in the current "
                             "model, 'bn' in the save file). Layer expects 4 weight(s). Received "
                             "3 saved weight(s)"));
  CHECK_THROWS_WITH(model.load_weights(path, {.by_name = true}),
                    Contains("Weight count mismatch for layer 'bn'"));
  CHECK(values_by_name(model) == before);
  LogCapture log;
  model.load_weights(path, {.by_name = true, .skip_mismatch = true});
  CHECK_THAT(log.text, Contains("skipping layer 'bn'"));
  check_layer(model, 0, {"conv/kernel", "conv/bias"});
  check_layer(model, 3, {"fc/kernel", "fc/bias"});
  CHECK(values_by_name(model)["bn/gamma"] == before["bn/gamma"]);
  std::remove(path.c_str());
}

TEST_CASE("keras_h5: malformed and unsupported files are kiln::Errors that change nothing",
          "[keras_h5]") {
  struct Case {
    std::vector<std::string> options;
    std::string message;
    bool io;  // IOError (else ValueError)
  };
  const std::vector<Case> cases = {
      {{"missing"}, "lists weight 'conv/bias:0' for layer #0 (named 'conv'", true},
      {{"ghost"}, "lists layer 'ghost' in layer_names but has no group", true},
      {{"intdata"},
       "saved weight 'conv/bias:0' holds i32 data, but weight 'conv/bias' is f32",
       false},
      {{"softlink"}, "soft or external link", true},
      {{"external"}, "stored in external files", true},
      {{"keras1"}, "saved by Keras 1 (keras_version is '1')", false},
      {{"nokerasversion"}, "it has no keras_version", false},
      {{"keras3", "drop=bn"},
       "Layer 'batch_normalization' (model layer 'bn') expected 4 variables, but received 0 "
       "variables during loading",
       false},
      {{"keras3", "fcunits=5"},
       "Shape mismatch in layer 'dense' (model layer 'fc') for weight 'fc/kernel'. Weight expects "
       "shape (36, 3). Received saved weight 'dense/vars/0' with shape (36, 5)",
       false},
      {{"huge"}, "Received saved weight 'fc/kernel:0' with shape (1000000, 1000000)", false},
  };
  k::Sequential model = make_model();
  auto before = values_by_name(model);
  std::vector<std::vector<std::string>> files;
  for (size_t i = 0; i < cases.size(); ++i) {
    files.push_back({fmt::format("keras_h5_test_bad{}.h5", i)});
    files.back().insert(files.back().end(), cases[i].options.begin(), cases[i].options.end());
  }
  h5fixtures::keras_many(files);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    INFO(fmt::format("fixture options: {}", fmt::join(c.options, " ")));
    const std::string& path = files[i][0];
    if (c.io) {
      CHECK_THROWS_AS(model.load_weights(path), k::IOError);
    } else {
      CHECK_THROWS_AS(model.load_weights(path), k::ValueError);
    }
    CHECK_THROWS_WITH(model.load_weights(path), Contains(c.message) && Contains(path));
    CHECK(values_by_name(model) == before);
    std::remove(path.c_str());
    std::remove((path + ".raw").c_str());
  }
}

TEST_CASE("keras_h5: truncated and non-HDF5 .h5 files are IOErrors that change nothing",
          "[keras_h5]") {
  std::string path = "keras_h5_test_truncated.h5";
  k::Sequential model = make_model();
  auto before = values_by_name(model);
  h5fixtures::keras(path);
  for (uintmax_t size : {uintmax_t{4000}, uintmax_t{100}, uintmax_t{8}}) {
    INFO(size);
    std::filesystem::resize_file(path, size);
    CHECK_THROWS_AS(model.load_weights(path), k::IOError);
    CHECK_THROWS_WITH(model.load_weights(path), Contains(path));
  }
  std::ofstream(path, std::ios::trunc) << "plain text, not HDF5";
  CHECK_THROWS_WITH(model.load_weights(path), Contains("not an HDF5 file"));
  CHECK_THROWS_AS(model.load_weights("keras_h5_test_missing.h5"), k::IOError);
  CHECK(values_by_name(model) == before);
  std::remove(path.c_str());
}

// fuzz/keras_h5_fuzz.cpp reads in process, so that libFuzzer sees the coverage and the
// sanitizers' reports; it must read what users' loads read, without a child.
TEST_CASE("keras_h5: the fuzz target's in-process load reads what load_weights reads",
          "[keras_h5]") {
  std::string path = "keras_h5_test_in_process.h5";
  h5fixtures::keras(path);
  k::Sequential model = make_model();
  auto load = [&](const k::LoadWeightsOptions& options) {
    k::detail::keras_h5_load_weights_in_process(path, model.layers(), model.name(), options,
                                                std::source_location::current());
  };
  // A child would crash here, so a load that succeeds made none.
  k::detail::set_isolated_child_hook([] { raise(SIGSEGV); });
  load({});
  check_all_loaded(model);
  load({.by_name = true});
  check_all_loaded(model);
  k::detail::set_isolated_child_hook({});
  // Errors keep their class and message, and change nothing.
  auto before = values_by_name(model);
  k::Sequential other = make_model(5);
  CHECK_THROWS_AS(k::detail::keras_h5_load_weights_in_process(path, other.layers(), other.name(),
                                                              {}, std::source_location::current()),
                  k::ValueError);
  std::ofstream(path, std::ios::trunc) << "plain text, not HDF5";
  CHECK_THROWS_WITH(load({}), Contains("not an HDF5 file"));
  CHECK_THROWS_AS(load({}), k::IOError);
  CHECK(values_by_name(model) == before);
  std::remove(path.c_str());
}

TEST_CASE("keras_h5: a crash in the reading process is an IOError that changes nothing",
          "[keras_h5]") {
  std::string path = "keras_h5_test_crash.h5";
  h5fixtures::keras(path);
  k::Sequential model = make_model();
  auto before = values_by_name(model);
  k::detail::set_isolated_child_hook([] { raise(SIGSEGV); });
  CHECK_THROWS_AS(model.load_weights(path), k::IOError);
  CHECK_THROWS_WITH(model.load_weights(path),
                    Contains("reading 'keras_h5_test_crash.h5'") && Contains("crashed"));
  k::detail::set_isolated_child_hook({});
  CHECK(values_by_name(model) == before);
  model.load_weights(path);
  check_all_loaded(model);
  std::remove(path.c_str());
}

TEST_CASE("keras_h5: save_weights writes Keras's layout, which h5py and Kiln read back",
          "[keras_h5]") {
  std::string fixture = "keras_h5_test_source.h5", path = "keras_h5_test_saved.h5";
  h5fixtures::keras(fixture);
  k::Sequential model = make_model();
  model.load_weights(fixture);
  model.save_weights(path);
  std::string dump = h5fixtures::run({"dump", path});
  CHECK_THAT(dump, Contains("attr / layer_names = ['conv', 'bn', 'flat', 'fc']"));
  CHECK_THAT(dump, Contains("attr / backend = 'tensorflow'"));
  CHECK_THAT(dump, Contains("attr / keras_version = '2.11.0'"));
  CHECK_THAT(dump, Contains("attr /bn weight_names = ['bn/gamma:0', 'bn/beta:0', "
                            "'bn/moving_mean:0', 'bn/moving_variance:0']"));
  CHECK_THAT(dump, Contains("attr /flat weight_names = [] float64"));
  CHECK_THAT(dump, Contains("attr /top_level_model_weights weight_names = [] float64"));
  CHECK_THAT(dump, Contains("dataset /bn/bn/moving_variance:0 <f4 (4,) [130.0, 130.01, 130.02, "
                            "130.03]"));
  CHECK_THAT(dump, Contains("dataset /conv/conv/kernel:0 <f4 (3, 3, 2, 4) [0.0, 0.01,"));
  CHECK_THAT(dump, Contains("dataset /fc/fc/bias:0 <f4 (3,) [310.0, 310.01, 310.02]"));
  // The same dump as the file h5py wrote the way Keras does.
  CHECK(dump == h5fixtures::run({"dump", fixture}));
  k::Sequential other = make_model();
  other.load_weights(path);
  check_all_loaded(other);
  std::remove(fixture.c_str());
  std::remove(path.c_str());
}

TEST_CASE("keras_h5: a fresh model's .h5 file loads by order into a model of other names",
          "[keras_h5]") {
  std::string path = "keras_h5_test_fresh.h5";
  k::Sequential a({k::layers::Dense(4, "relu", k::Shape{3}), k::layers::Dense(2)});
  a.build(k::Shape{3});
  a.save_weights(path);
  k::Sequential b({k::layers::Dense(4, "relu", k::Shape{3}), k::layers::Dense(2)});
  b.build(k::Shape{3});
  b.load_weights(path);
  k::Tensor x = k::random_normal({2, 3}, 0.0, 1.0, 5);
  CHECK(a(x).to_vector<float>() == b(x).to_vector<float>());
  CHECK_THROWS_WITH(b.load_weights(path, {.by_name = true}), Contains("by_name matched no layer"));
  std::remove(path.c_str());
}

TEST_CASE("keras_h5: .weights.h5 is written in Keras 3's layout, named by place", "[keras_h5]") {
  std::string fixture = "keras_h5_test_k3_source.h5", path = "keras_h5_test.weights.h5";
  h5fixtures::keras(fixture);
  k::Sequential model = make_model();
  model.load_weights(fixture);
  model.save_weights(path);
  std::string dump = h5fixtures::run({"dump", path});
  CHECK_THAT(dump, Contains("dataset /layers/conv2d/vars/0 <f4 (3, 3, 2, 4) [0.0, 0.01,"));
  CHECK_THAT(dump, Contains("dataset /layers/conv2d/vars/1 <f4 (4,) [10.0, 10.01, 10.02, 10.03]"));
  CHECK_THAT(dump, Contains("dataset /layers/batch_normalization/vars/3 <f4 (4,) [130.0,"));
  CHECK_THAT(dump, Contains("dataset /layers/dense/vars/1 <f4 (3,) [310.0, 310.01, 310.02]"));
  CHECK_THAT(dump, !Contains("layer_names"));
  // Read back by place: another model whose layers have other names.
  k::Sequential other({k::layers::Conv2D(4, {3, 3}, {1, 1}, "valid", "", k::Shape{5, 5, 2}),
                       k::layers::BatchNormalization(), k::layers::Flatten(), k::layers::Dense(3)},
                      "other");
  other.build(k::Shape{5, 5, 2});
  other.load_weights(path);
  CHECK(other.layers()[3]->weights()[1].value().to_vector<float>() == fixture_values(3, 1, 3));
  CHECK(other.layers()[1]->weights()[3].value().to_vector<float>() == fixture_values(1, 3, 4));
  CHECK_THROWS_WITH(other.load_weights(path, {.by_name = true}), Contains("not by name"));
  std::remove(fixture.c_str());
  std::remove(path.c_str());
}

TEST_CASE("keras_h5: by_name on safetensors is refused", "[keras_h5]") {
  k::Sequential model = make_model();
  std::string st = "keras_h5_test.safetensors";
  model.save_weights(st);
  CHECK_THROWS_WITH(model.load_weights(st, {.by_name = true}),
                    Contains("apply to Keras .h5 files only"));
  model.load_weights(st);
  std::remove(st.c_str());
}

namespace {

// The model of tests/keras_h5_fixtures.py's keras3multi file: two Conv2D and two
// BatchNormalization interleaved and three Dense, so that Keras 3's per-class counters (conv2d,
// conv2d_1, dense_2, ...) name the groups. The layers' names run against those counters, so a
// reader or writer that used them would swap the layers; same-class layers of the same shapes
// make that a silent swap of values, not a shape error.
k::Sequential make_multi_model() {
  namespace L = k::layers;
  k::Sequential model(
      {L::Conv2D(3, {3, 3}, {1, 1}, "valid", "", k::Shape{4, 4, 2}, true, "glorot_uniform", "zeros",
                 "conv2d_1"),
       L::BatchNormalization(-1, 0.99, 1e-3, true, true, "batch_normalization_1"),
       L::Conv2D(3, {1, 1}, {1, 1}, "valid", "", {}, true, "glorot_uniform", "zeros", "conv2d"),
       L::BatchNormalization(-1, 0.99, 1e-3, true, true, "batch_normalization"),
       L::Flatten(std::nullopt, "flat"),
       L::Dense(4, "", std::nullopt, true, "glorot_uniform", "zeros", "dense_2"),
       L::Dense(4, "", std::nullopt, true, "glorot_uniform", "zeros", "dense"),
       L::Dense(4, "", std::nullopt, true, "glorot_uniform", "zeros", "dense_1")},
      "multi");
  model.build(k::Shape{4, 4, 2});
  return model;
}

// Every weight of every layer of make_multi_model() holds the fixture's values for its place.
void check_multi_loaded(const k::Sequential& model) {
  const std::vector<size_t> counts = {2, 4, 2, 4, 0, 2, 2, 2};
  REQUIRE(model.layers().size() == counts.size());
  for (size_t l = 0; l < counts.size(); ++l) {
    std::vector<k::Variable> weights = model.layers()[l]->weights();
    REQUIRE(weights.size() == counts[l]);
    for (size_t i = 0; i < weights.size(); ++i) {
      INFO(weights[i].name());
      std::vector<float> got = weights[i].value().to_vector<float>();
      CHECK(got == fixture_values(static_cast<int>(l), static_cast<int>(i),
                                  static_cast<int64_t>(got.size())));
    }
  }
}

}  // namespace

TEST_CASE("keras_h5: Keras 3 names a class's second layer <class>_1, in both directions",
          "[keras_h5]") {
  std::string fixture = "keras_h5_test_k3_multi_source.weights.h5",
              path = "keras_h5_test_k3_multi.weights.h5";
  h5fixtures::run({"keras3multi", fixture});
  // h5py's file: layers/conv2d_1 is the second Conv2D (named "conv2d" here), and so on.
  k::Sequential model = make_multi_model();
  model.load_weights(fixture);
  check_multi_loaded(model);

  // Kiln's file, through h5py's eyes: the same groups and values as the file h5py wrote.
  model.save_weights(path);
  std::string dump = h5fixtures::run({"dump", path});
  CHECK_THAT(dump, Contains("dataset /layers/conv2d/vars/0 <f4 (3, 3, 2, 3) [0.0, 0.01,"));
  CHECK_THAT(dump, Contains("dataset /layers/conv2d_1/vars/0 <f4 (1, 1, 3, 3) [200.0, 200.01,"));
  CHECK_THAT(dump, Contains("dataset /layers/batch_normalization/vars/2 <f4 (3,) [120.0, 120.01, "
                            "120.02]"));
  CHECK_THAT(dump, Contains("dataset /layers/batch_normalization_1/vars/2 <f4 (3,) [320.0, 320.01, "
                            "320.02]"));
  CHECK_THAT(dump, Contains("dataset /layers/dense/vars/1 <f4 (4,) [510.0, 510.01, 510.02, "
                            "510.03]"));
  CHECK_THAT(dump, Contains("dataset /layers/dense_1/vars/1 <f4 (4,) [610.0, 610.01, 610.02, "
                            "610.03]"));
  CHECK_THAT(dump, Contains("dataset /layers/dense_2/vars/0 <f4 (4, 4) [700.0, 700.01,"));
  CHECK_THAT(dump, !Contains("dense_3") && !Contains("conv2d_2") && !Contains("flat/"));
  CHECK(dump == h5fixtures::run({"dump", fixture}));

  // And back into a fresh model (Kiln's own default names this time).
  namespace L = k::layers;
  k::Sequential other({L::Conv2D(3, {3, 3}, {1, 1}, "valid", "", k::Shape{4, 4, 2}),
                       L::BatchNormalization(), L::Conv2D(3, {1, 1}), L::BatchNormalization(),
                       L::Flatten(), L::Dense(4), L::Dense(4), L::Dense(4)});
  other.build(k::Shape{4, 4, 2});
  other.load_weights(path);
  check_multi_loaded(other);
  std::remove(fixture.c_str());
  std::remove(path.c_str());
}
