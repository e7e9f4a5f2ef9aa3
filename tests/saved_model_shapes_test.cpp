// Shape-generic saved models: a model saved once runs at any batch (and any length of a k::None
// dimension) through load_model, `kiln run` and AOT libraries with several shape variants; and
// saved functional models of several inputs and outputs.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "aot_test_util.h"
#include "cli_test_util.h"
#include "file_test_util.h"
#include "log_test_util.h"

namespace k = kiln;
namespace L = k::layers;
using Catch::Matchers::Contains;
using k::testing::TempDir;

namespace {

// Every element of `got` within 1e-5 (relative above 1) of `want`.
void check_same(const k::Tensor& got, const k::Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  std::vector<float> g = got.to_vector<float>(), w = want.to_vector<float>();
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i);
    CHECK(g[i] == Approx(w[i]).margin(1e-5).epsilon(1e-5));
  }
}

using kiln::testing::LogCapture;

k::Sequential conv_model() {
  k::set_random_seed(21);
  k::Sequential model(
      {L::Conv2D(4, 3, {.padding = "same", .activation = "relu", .input_shape = k::Shape{6, 6, 2}}),
       L::MaxPooling2D(), L::Flatten(), L::Dense(3, "softmax")},
      "convnet");
  model(k::zeros({1, 6, 6, 2}));
  return model;
}

k::Sequential sequence_model() {
  k::set_random_seed(22);
  k::Sequential model(
      {L::Conv1D(4, 3,
                 {.padding = "causal", .activation = "relu", .input_shape = k::Shape{k::None, 1}}),
       L::LSTM(5), L::Dense(2)},
      "sequence");
  model(k::zeros({1, 8, 1}));
  return model;
}

}  // namespace

TEST_CASE("a saved model runs at any batch, equal to the model", "[saved_shapes]") {
  TempDir dir;
  k::set_random_seed(20);
  k::Sequential mlp({L::Flatten(k::Shape{3, 4}), L::Dense(5, "relu"), L::Dense(2, "softmax")},
                    "mlp");
  mlp(k::zeros({1, 3, 4}));
  mlp.save(dir.file("mlp"), /*batch_size=*/2);
  k::Sequential conv = conv_model();
  conv.save(dir.file("conv"));
  CHECK(std::filesystem::exists(dir.file("conv/model.shapes")));

  k::SavedModel saved_mlp = k::load_model(dir.file("mlp"));
  CHECK(saved_mlp.input_type() == k::TensorType{k::f32, k::Shape{2, 3, 4}});
  CHECK(saved_mlp.input_spec() == k::TensorType{k::f32, k::Shape{k::None, 3, 4}});
  CHECK(saved_mlp.batch_is_free());
  CHECK_THAT(saved_mlp.summary_text(), Contains("Input: f32[2,3,4] (takes f32[None,3,4]"));
  k::SavedModel saved_conv = k::load_model(dir.file("conv"));
  CHECK(saved_conv.input_spec() == k::TensorType{k::f32, k::Shape{k::None, 6, 6, 2}});
  LogCapture log;
  for (int64_t batch : {1, 3, 17}) {
    INFO("batch " << batch);
    k::Tensor x = k::random_uniform({batch, 3, 4}, -1.0, 1.0, uint64_t(batch));
    check_same(saved_mlp(x), mlp(x));
    k::Tensor images = k::random_uniform({batch, 6, 6, 2}, 0.0, 1.0, uint64_t(batch) + 100);
    check_same(saved_conv(images), conv(images));
    CHECK(saved_mlp.graph_for(x.shape()).param(0)->type().shape == x.shape());
  }
  // Each new shape is compiled once, visibly; the saved one and a repeat are not logged again.
  CHECK(log.contains("recompiling saved model 'mlp' for input f32[3,3,4]"));
  CHECK(log.contains("recompiling saved model 'convnet' for input f32[17,6,6,2]"));
  size_t before = log.lines.size();
  saved_mlp(k::ones({3, 3, 4}));
  CHECK(log.lines.size() == before);

  // predict runs batches of 32 (the saved 2 is smaller), padding the last.
  CHECK(saved_mlp.predict_batch_size() == 32);
  k::Tensor many = k::random_uniform({70, 3, 4}, -1.0, 1.0, 5);
  check_same(saved_mlp.predict(many), mlp.predict(many));

  // A fixed dimension that differs: ShapeError naming the shape with None.
  CHECK_THROWS_AS(saved_mlp(k::ones({2, 3, 5})), k::ShapeError);
  CHECK_THROWS_WITH(saved_mlp(k::ones({2, 3, 5})),
                    Contains("takes f32[None,3,4] (saved as f32[2,3,4]), got f32[2,3,5]"));
  CHECK_THROWS_AS(saved_mlp(k::ones({2, 12})), k::ShapeError);
  CHECK(saved_mlp(k::ones({0, 3, 4})).shape() == k::Shape{0, 2});
  CHECK_THROWS_AS(saved_mlp(k::ones({2, 3, 4}, k::f64)), k::TypeError);
  CHECK_THROWS_WITH(saved_mlp.predict(k::ones({4, 3, 5})), Contains("samples of f32[3,4]"));
}

TEST_CASE("a saved sequence model runs at any length of its None dimension", "[saved_shapes]") {
  TempDir dir;
  k::Sequential model = sequence_model();
  model.save(dir.file("seq"), /*batch_size=*/2);
  k::SavedModel saved = k::load_model(dir.file("seq"));
  // model.kiln holds the function at the stand-in length the layers were built with.
  CHECK(saved.input_type() == k::TensorType{k::f32, k::Shape{2, 64, 1}});
  CHECK(saved.input_spec() == k::TensorType{k::f32, k::Shape{k::None, k::None, 1}});
  for (auto [batch, length] : {std::pair<int64_t, int64_t>{2, 5}, {3, 9}, {1, 9}}) {
    INFO("batch " << batch << ", length " << length);
    k::Tensor x = k::random_uniform({batch, length, 1}, -1.0, 1.0, uint64_t(length * 7 + batch));
    check_same(saved(x), model(x));
  }
  k::Tensor xs = k::random_uniform({40, 7, 1}, -1.0, 1.0, 3);
  check_same(saved.predict(xs), model.predict(xs));
  CHECK_THROWS_WITH(saved(k::ones({2, 5, 2})), Contains("takes f32[None,None,1]"));
}

TEST_CASE("a length a valid convolution cannot take is a ShapeError", "[saved_shapes]") {
  TempDir dir;
  k::set_random_seed(23);
  k::Sequential model({L::Conv1D(2, 3, {.input_shape = k::Shape{k::None, 2}}),
                       L::GlobalAveragePooling1D(), L::Dense(1)},
                      "valid_conv");
  model(k::zeros({1, 8, 2}));
  model.save(dir.file("m"));
  k::SavedModel saved = k::load_model(dir.file("m"));
  k::Tensor x = k::random_uniform({2, 6, 2}, -1.0, 1.0, 4);
  check_same(saved(x), model(x));
  // Length 1 leaves -1 steps after a kernel of 3.
  CHECK_THROWS_AS(saved(k::ones({1, 1, 2})), k::ShapeError);
  CHECK_THROWS_WITH(saved(k::ones({1, 1, 2})), Contains("cannot take f32[1,1,2]"));
}

TEST_CASE("a None length the function is not linear in cannot be saved", "[saved_shapes]") {
  TempDir dir;
  k::set_random_seed(24);
  // Pooling over any length gives floor(length / 2) steps: no one text fits every length.
  k::Sequential model({L::Conv1D(2, 1, {.input_shape = k::Shape{k::None, 1}}), L::MaxPooling1D(2),
                       L::GlobalMaxPooling1D(), L::Dense(1)},
                      "pooled");
  model(k::zeros({1, 8, 1}));
  CHECK_THROWS_AS(model.save(dir.file("m")), k::ValueError);
  CHECK_THROWS_WITH(model.save(dir.file("m")),
                    Contains("cannot be saved for every size of input dimension 1") &&
                        Contains("Declare that size in the input shape"));
  CHECK_FALSE(std::filesystem::exists(dir.file("m/model.kiln")));
  // Declared, the length is fixed and the batch still free.
  k::set_random_seed(24);
  k::Sequential fixed({L::Conv1D(2, 1, {.input_shape = k::Shape{8, 1}}), L::MaxPooling1D(2),
                       L::GlobalMaxPooling1D(), L::Dense(1)},
                      "pooled_fixed");
  fixed(k::zeros({1, 8, 1}));
  fixed.save(dir.file("fixed"));
  k::SavedModel saved = k::load_model(dir.file("fixed"));
  CHECK(saved.input_spec() == k::TensorType{k::f32, k::Shape{k::None, 8, 1}});
  k::Tensor x = k::random_uniform({5, 8, 1}, -1.0, 1.0, 6);
  check_same(saved(x), fixed(x));
}

TEST_CASE("a model whose batch is not generic is saved at a fixed batch, with a warning",
          "[saved_shapes]") {
  TempDir dir;
  // A subclassed model that divides by its batch size read as a C++ number at trace time: a
  // float literal of the function changes with the batch, which no formula of sizes gives.
  struct BatchMean : k::Model {
    L::Dense dense{2};
    BatchMean() : Model("batch_mean") { track(dense); }
    k::Tensor call(const k::Tensor& x, bool training) override {
      k::Tensor y = dense(x, training);
      return y / float(x.shape()[0]);
    }
  };
  BatchMean model;
  model(k::zeros({4, 3}));
  LogCapture log;
  model.save(dir.file("m"), /*batch_size=*/4);
  CHECK(log.contains("saved for batches of 4 only"));
  k::SavedModel saved = k::load_model(dir.file("m"));
  CHECK_FALSE(saved.batch_is_free());
  CHECK(saved.input_spec() == k::TensorType{k::f32, k::Shape{4, 3}});
  CHECK_THAT(saved.shape_note(), Contains("the batch is fixed at 4"));
  k::Tensor x = k::random_uniform({4, 3}, -1.0, 1.0, 8);
  check_same(saved(x), model(x));
  CHECK_THROWS_WITH(saved(k::ones({5, 3})), Contains("predict() takes any number of samples") &&
                                                Contains("the batch is fixed at 4"));
  CHECK(saved.predict_batch_size() == 4);
}

TEST_CASE("a corrupted or mismatched model.shapes is a clear error", "[saved_shapes]") {
  TempDir dir;
  k::set_random_seed(25);
  k::Sequential model({L::Dense(3, "", k::Shape{4})}, "plain");
  model(k::zeros({1, 4}));
  model.save(dir.file("m"), 2);
  const std::string path = dir.file("m/model.shapes");
  const std::string good = k::testing::read_bytes(path);
  REQUIRE_THAT(good, Contains("kiln-shapes 1") && Contains("free 0 2") && Contains("token "));
  auto fails_with = [&](const std::string& text, const std::string& message) {
    INFO(text);
    k::testing::write_bytes(path, text);
    CHECK_THROWS_AS(k::load_model(dir.file("m")), k::ValueError);
    CHECK_THROWS_WITH(k::load_model(dir.file("m")), Contains("model.shapes") && Contains(message));
  };
  fails_with("", "empty");
  fails_with("kiln-shapes 7\n", "version 1");
  fails_with("kiln-shapes 1\nfree 5 2\n", "not an axis");
  fails_with("kiln-shapes 1\nfree 0 3\n", "has size 2 in model.kiln");
  fails_with("kiln-shapes 1\nfree 0 2\ntoken 999999 0 1\n", "has no number 999999");
  fails_with("kiln-shapes 1\nfree 0 2\ntoken 0 0 1 5\n", "a position and 2 coefficients");
  fails_with("kiln-shapes 1\nfree 0 x\n", "'x' is not an integer");
  fails_with("kiln-shapes 1\nbogus 1\n", "unknown line 'bogus'");
  // A formula that does not give model.kiln's literal at the saved sizes.
  std::string wrong = good;
  const size_t token = wrong.find("token ");
  const size_t end = wrong.find('\n', token);
  std::string line = wrong.substr(token, end - token);
  wrong.replace(token, end - token, line.substr(0, line.rfind(' ')) + " 7");
  fails_with(wrong, "does not give model.kiln's number");
  // Coefficients that give the literal at the saved batch but overflow at another: a ShapeError
  // when called, not a crash. (The literal at position `token`'s formula is B: 2 at batch 2.)
  const std::string position = line.substr(6, line.find(' ', 6) - 6);
  k::testing::write_bytes(path, "kiln-shapes 1\nfree 0 2\ntoken " + position +
                                    " -7999999999999999998 4000000000000000000\n");
  k::SavedModel huge = k::load_model(dir.file("m"));
  CHECK_THROWS_AS(huge(k::ones({3, 4})), k::ShapeError);
  CHECK_THROWS_WITH(huge(k::ones({3, 4})), Contains("too large"));
  // Without the file, the model takes its saved shape only (a model saved before model.shapes).
  std::filesystem::remove(path);
  k::SavedModel old = k::load_model(dir.file("m"));
  CHECK(old.input_spec() == k::TensorType{k::f32, k::Shape{2, 4}});
  CHECK_THROWS_AS(old(k::ones({3, 4})), k::ShapeError);
  k::testing::write_bytes(path, good);
  CHECK(k::load_model(dir.file("m"))(k::ones({3, 4})).shape() == k::Shape{3, 3});
}

TEST_CASE("kiln run runs a saved model at any batch", "[saved_shapes][tool]") {
  TempDir dir;
  k::Sequential model = k::testing::saved_mlp(dir);  // saved at batch 2
  for (int64_t batch : {1, 5}) {
    k::Tensor x = k::random_uniform({batch, 3, 4}, 0.0, 1.0, uint64_t(batch));
    k::save_npy(dir.file("x.npy"), x);
    k::testing::Outcome o =
        k::testing::kiln_cli("run " + dir.file("mlp") + " --input " + dir.file("x.npy") +
                             " --output " + dir.file("y.npy"));
    INFO(o.out);
    REQUIRE(o.status == 0);
    CHECK_THAT(o.out, Contains(fmt::format("result 0: f32[{},2]", batch)));
    check_same(k::load_npy(dir.file("y.npy")), model(x));
  }
  // A sample of another shape: status 1, naming what the model takes.
  k::save_npy(dir.file("bad.npy"), k::ones({2, 4, 4}));
  k::testing::Outcome bad =
      k::testing::kiln_cli("run " + dir.file("mlp") + " --input " + dir.file("bad.npy"));
  CHECK(bad.status == 1);
  CHECK_THAT(bad.out, Contains("f32[None,3,4]"));
}

TEST_CASE("an AOT library of batch variants runs any number of samples, equal to the JIT",
          "[saved_shapes][aot]") {
  TempDir dir;
  k::Sequential model = k::testing::saved_mlp(dir);  // saved at batch 2, samples [3, 4]
  k::SavedModel saved = k::load_model(dir.file("mlp"));
  const k::aot::Library lib =
      k::aot::compile(saved, {.name = "mlpv", .out_dir = dir.path, .batch_sizes = {1, 4}});
  const std::string header = k::testing::read_bytes(lib.header);
  CHECK_THAT(header, Contains("#define MLPV_NUM_VARIANTS 3") &&
                         Contains("#define MLPV_VARIANT0_INPUT0_SHAPE {2, 3, 4}") &&
                         Contains("#define MLPV_VARIANT2_INPUT0_SHAPE {4, 3, 4}") &&
                         Contains("#define MLPV_VARIANT2_OUTPUT0_SHAPE {4, 2}") &&
                         Contains("#define MLPV_HAS_RUN_BATCH 1") && Contains("mlpv_run_batch("));
  k::testing::AotLibrary so(lib.library, "mlpv");
  void* instance = so.create();
  // NAME_run keeps the saved shape.
  k::Tensor two = k::random_uniform({2, 3, 4}, 0.0, 1.0, 30);
  k::testing::check_close(so.run(instance, two, 4).data(), saved(two), 1e-5);
  auto run_batch = so.fn<int(void*, int64_t, const float*, float*)>("run_batch");
  auto run_dims = so.fn<int(void*, const int64_t*, const float*, float*)>("run_dims");
  for (int64_t n : {1, 4, 7, 0}) {
    INFO("n = " << n);
    k::Tensor x = k::random_uniform({n, 3, 4}, 0.0, 1.0, uint64_t(n) + 31);
    std::vector<float> y(size_t(n) * 2 + 1, -1.f);
    REQUIRE(run_batch(instance, n, x.host().data<float>(), y.data()) == 0);
    if (n > 0) k::testing::check_close(y.data(), saved(x), 1e-5);
    CHECK(y[size_t(n) * 2] == -1.f);  // nothing written past n results
  }
  // NAME_run_dims: a compiled shape runs, another one is an error naming the variants.
  k::Tensor four = k::random_uniform({4, 3, 4}, 0.0, 1.0, 40);
  std::vector<float> y(8);
  const int64_t dims4[] = {4, 3, 4}, dims3[] = {3, 3, 4};
  REQUIRE(run_dims(instance, dims4, four.host().data<float>(), y.data()) == 0);
  k::testing::check_close(y.data(), model(four), 1e-5);
  CHECK(run_dims(instance, dims3, four.host().data<float>(), y.data()) != 0);
  CHECK_THAT(so.last_error(instance),
             Contains("input shape [3,3,4] is not one of the compiled variants: [2,3,4], "
                      "[1,3,4], [4,3,4]"));
  CHECK(run_batch(instance, -1, four.host().data<float>(), y.data()) != 0);
  CHECK_THAT(so.last_error(instance), Contains("n is negative"));
  so.destroy(instance);

  // A shape the model does not take, and variants for the GPU: errors before any compile.
  CHECK_THROWS_AS(
      k::aot::compile(saved,
                      {.name = "bad", .out_dir = dir.path, .input_shapes = {k::Shape{2, 3, 5}}}),
      k::ShapeError);
  CHECK_THROWS_AS(k::aot::compile(saved, {.name = "bad", .out_dir = dir.path, .batch_sizes = {0}}),
                  k::ValueError);
  CHECK_THROWS_WITH(
      k::aot::compile(saved,
                      {.name = "bad", .out_dir = dir.path, .device = "cuda", .batch_sizes = {4}}),
      Contains("CPU only"));

  // The kiln command, with the weights in a file (each variant reads it on first use).
  k::testing::Outcome o =
      k::testing::kiln_cli(fmt::format("aot {} -o {} --weights external --batch-sizes 1,4",
                                       dir.file("mlp"), dir.file("cli/libmlpc.so")));
  INFO(o.out);
  REQUIRE(o.status == 0);
  k::testing::AotLibrary cli(dir.file("cli/libmlpc.so"), "mlpc");
  instance = cli.create(dir.file("cli/mlpc.safetensors").c_str());
  k::Tensor seven = k::random_uniform({7, 3, 4}, 0.0, 1.0, 50);
  std::vector<float> out7(14);
  REQUIRE(cli.fn<int(void*, int64_t, const float*, float*)>("run_batch")(
              instance, 7, seven.host().data<float>(), out7.data()) == 0);
  k::testing::check_close(out7.data(), saved(seven), 1e-5);
  cli.destroy(instance);
  CHECK(k::testing::kiln_cli("aot " + dir.file("mlp") + " -o " + dir.file("x/libx.so") +
                             " --shapes 4x3")
            .status == 1);
  CHECK(k::testing::kiln_cli("aot " + dir.file("mlp") + " -o " + dir.file("x/libx.so") +
                             " --shapes 4xa")
            .status == 2);
}

TEST_CASE("an AOT library of a sequence model has one variant per length", "[saved_shapes][aot]") {
  TempDir dir;
  k::Sequential model = sequence_model();
  model.save(dir.file("seq"));
  k::SavedModel saved = k::load_model(dir.file("seq"));
  const k::aot::Library lib =
      k::aot::compile(saved, {.name = "seqv",
                              .out_dir = dir.path,
                              .input_shapes = {k::Shape{2, 5, 1}, k::Shape{2, 9, 1}}});
  // The variants differ in more than the batch: no NAME_run_batch.
  CHECK_THAT(k::testing::read_bytes(lib.header), Contains("#define SEQV_HAS_RUN_BATCH 0"));
  k::testing::AotLibrary so(lib.library, "seqv");
  void* instance = so.create();
  auto run_dims = so.fn<int(void*, const int64_t*, const float*, float*)>("run_dims");
  for (int64_t length : {5, 9}) {
    k::Tensor x = k::random_uniform({2, length, 1}, -1.0, 1.0, uint64_t(length));
    std::vector<float> y(4);
    const int64_t dims[] = {2, length, 1};
    REQUIRE(run_dims(instance, dims, x.host().data<float>(), y.data()) == 0);
    k::testing::check_close(y.data(), model(x), 1e-5);
  }
  const int64_t other[] = {2, 7, 1};
  std::vector<float> y(4);
  k::Tensor x = k::zeros({2, 7, 1});
  CHECK(run_dims(instance, other, x.host().data<float>(), y.data()) != 0);
  CHECK_THAT(so.last_error(instance), Contains("[1,64,1], [2,5,1], [2,9,1]"));
  so.destroy(instance);
}

// Functional models of several inputs and outputs: load_model, predict, evaluate, `kiln run`,
// `kiln dump` and AOT libraries take one tensor per input and give one per output.
namespace {

// Two inputs (features [4]; a sequence [None, 3]) and two outputs (3 classes; one value).
k::Model two_headed() {
  k::set_random_seed(31);
  k::KerasTensor features = k::Input({4}, k::f32, "features");
  k::KerasTensor sequence = k::Input({k::None, 3}, k::f32, "sequence");
  k::KerasTensor a =
      L::Dense(5, "relu", {}, true, "glorot_uniform", "zeros", "feat_dense")(features);
  k::KerasTensor b = L::GlobalAveragePooling1D()(
      L::Conv1D(5, 2, {.padding = "causal", .activation = "tanh", .name = "seq_conv"})(sequence));
  k::KerasTensor joined = L::Concatenate(-1, "joined")({a, b});
  k::KerasTensor cls = L::Dense(3, "softmax", {}, true, "glorot_uniform", "zeros", "cls")(joined);
  k::KerasTensor reg = L::Dense(1, "", {}, true, "glorot_uniform", "zeros", "reg")(joined);
  return k::Model({features, sequence}, {cls, reg}, "two_headed");
}

std::vector<k::Tensor> inputs(int64_t n, int64_t length, uint64_t seed) {
  return {k::random_uniform({n, 4}, -1.0, 1.0, seed),
          k::random_uniform({n, length, 3}, -1.0, 1.0, seed + 1)};
}

}  // namespace

TEST_CASE("a model of two inputs and two outputs saves, loads and predicts as the model",
          "[saved_shapes][multi_io]") {
  TempDir dir;
  k::Model model = two_headed();
  model.compile("sgd", {"sparse_categorical_crossentropy", "mse"}, {{"accuracy"}, {"mae"}},
                {2.0, 0.5});
  model.save(dir.file("two"), /*batch_size=*/2);
  k::SavedModel saved = k::load_model(dir.file("two"));
  REQUIRE(saved.num_inputs() == 2);
  REQUIRE(saved.num_outputs() == 2);
  CHECK(saved.input_specs() == std::vector<k::TensorType>{{k::f32, k::Shape{k::None, 4}},
                                                          {k::f32, k::Shape{k::None, k::None, 3}}});
  CHECK(saved.input_type() == saved.input_types()[0]);
  CHECK(saved.batch_is_free());
  // The function's weights are the model's; the inputs are not weights.
  CHECK(saved.weights().size() == model.weights().size());

  // Any batch and any length, one compile per combination of shapes.
  for (auto [n, length] : {std::pair<int64_t, int64_t>{2, 6}, {5, 6}, {3, 9}}) {
    INFO("batch " << n << ", length " << length);
    std::vector<k::Tensor> xs = inputs(n, length, uint64_t(n * 10 + length));
    std::vector<k::Tensor> got = saved(xs), want = model(xs);
    REQUIRE(got.size() == 2);
    check_same(got[0], want[0]);
    check_same(got[1], want[1]);
  }
  // predict: any number of samples, in padded batches.
  std::vector<k::Tensor> many = inputs(37, 7, 5);
  std::vector<k::Tensor> predicted = saved.predict(many), expected = model.predict(many);
  REQUIRE(predicted.size() == 2);
  check_same(predicted[0], expected[0]);
  check_same(predicted[1], expected[1]);

  // evaluate: the saved compile() configuration (two losses, their weights, a metric each), the
  // same values and names as the model's.
  std::vector<int32_t> classes;
  for (int i = 0; i < 37; ++i)
    classes.push_back((i * 7) % 3);
  k::Tensor labels = k::constant(classes, k::Shape{37}, k::i32);
  k::Tensor values = k::random_uniform({37, 1}, -1.0, 1.0, 6);
  std::vector<float> scores = saved.evaluate(many, {labels, values});
  std::vector<float> want = model.evaluate(many, {labels, values});
  REQUIRE(scores.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("value " << i);
    CHECK(scores[i] == Approx(want[i]).epsilon(1e-4));
  }
  CHECK(saved.metrics_names() ==
        std::vector<std::string>{"loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"});
  CHECK(scores[0] == Approx(2.0 * scores[1] + 0.5 * scores[2]).epsilon(1e-5));
  // compile() again: one loss for both outputs.
  saved.compile("mse");
  CHECK(saved.metrics_names() == std::vector<std::string>{"loss", "cls_loss", "reg_loss"});
  CHECK_THROWS_WITH(saved.compile({"mse", "mse", "mse"}),
                    Contains("2 outputs: give one loss for all of them or one per output, got 3"));

  const std::string summary = saved.summary_text();
  CHECK_THAT(summary, Contains("Inputs: (f32[2,4], f32[2,") && Contains("None is any size") &&
                          Contains("Outputs: (f32[2,3], f32[2,1])") && Contains("feat_dense") &&
                          Contains("Loss (cls, weight 1): mean_squared_error"));
}

TEST_CASE("a saved model of several inputs or outputs says what it takes",
          "[saved_shapes][multi_io]") {
  TempDir dir;
  k::Model model = two_headed();
  model.save(dir.file("two"));
  k::SavedModel saved = k::load_model(dir.file("two"));
  std::vector<k::Tensor> xs = inputs(2, 4, 1);
  // One tensor where the model takes a list.
  CHECK_THROWS_WITH(saved(xs[0]),
                    Contains("has 2 inputs and 2 outputs") && Contains("takes a list of inputs"));
  CHECK_THROWS_AS(saved.predict(xs[0]), k::ValueError);
  CHECK_THROWS_WITH(saved(std::vector<k::Tensor>{xs[0]}), Contains("takes 2 inputs, got 1"));
  // The inputs' batches differ.
  CHECK_THROWS_WITH(
      saved({xs[0], k::ones({3, 4, 3})}),
      Contains("one batch size for every input") && Contains("f32[None,4], f32[None,None,3]"));
  CHECK_THROWS_WITH(saved.predict({xs[0], k::ones({3, 4, 3})}),
                    Contains("different numbers of samples: 2 and 3"));
  // A sample of the wrong shape names the input.
  CHECK_THROWS_WITH(saved.predict({xs[0], k::ones({2, 4, 5})}), Contains("for input 1"));
  CHECK_THROWS_AS(saved({xs[0], k::ones({2, 4, 5})}), k::ShapeError);
  CHECK_THROWS_AS(saved({k::ones({2, 4}, k::i32), xs[1]}), k::TypeError);
  // Saved before compile(): no loss to evaluate with.
  CHECK_THROWS_WITH(saved.evaluate(xs, {k::zeros({2}, k::i32), k::zeros({2, 1})}),
                    Contains("has no loss"));
  saved.compile({"sparse_categorical_crossentropy", "mse"});
  CHECK_THROWS_WITH(saved.evaluate(xs, {k::zeros({2}, k::i32)}),
                    Contains("takes 2 inputs and 2 label tensors, got 2 and 1"));
  CHECK(saved.evaluate(xs, {k::zeros({2}, k::i32), k::zeros({2, 1})}).size() == 3);
}

TEST_CASE("load_model checks how many inputs the weights file says there are",
          "[saved_shapes][multi_io]") {
  TempDir dir;
  k::Model model = two_headed();
  model.save(dir.file("two"));
  const std::string weights = dir.file("two/weights.safetensors");
  std::vector<std::pair<std::string, k::Tensor>> named = k::safetensors::load(weights);
  std::map<std::string, std::string> metadata = k::safetensors::metadata(weights);
  CHECK(metadata.at("inputs") == "2");
  CHECK(metadata.at("outputs") == "cls\nreg");
  // Each change rewrites the weights file with the metadata changed.
  auto rewrite = [&](const std::string& key, const std::string& value) {
    metadata[key] = value;
    k::safetensors::save(weights, named, metadata);
  };
  auto load = [&] { return k::load_model(dir.file("two")); };
  for (const char* bad : {"0", "99", "two", ""}) {
    INFO("inputs = '" << bad << "'");
    rewrite("inputs", bad);
    CHECK_THROWS_WITH(load(), Contains("inputs, but") && Contains("model.kiln has"));
  }
  rewrite("inputs", "2");
  rewrite("outputs", "cls");
  CHECK_THROWS_WITH(load(), Contains("names 1 outputs"));
  rewrite("outputs", "cls\nreg");
  // A compile configuration with a loss for one output only, an unknown loss, a bad weight.
  rewrite("output0.loss.name", "mean_squared_error");
  CHECK_THROWS_WITH(load(), Contains("output 1 has no loss") && Contains("compile configuration"));
  rewrite("output1.loss.name", "no_such_loss");
  CHECK_THROWS_WITH(load(), Contains("no_such_loss"));
  rewrite("output1.loss.name", "mean_absolute_error");
  rewrite("output1.loss_weight", "heavy");
  CHECK_THROWS_WITH(load(), Contains("loss weight 'heavy'"));
  rewrite("output1.loss_weight", "0.25");
  CHECK(load().metrics_names() == std::vector<std::string>{"loss", "cls_loss", "reg_loss"});
  for (const char* key : {"output0.loss.name", "output1.loss.name", "output1.loss_weight"})
    metadata.erase(key);
  k::safetensors::save(weights, named, metadata);
  // model.shapes naming an input the model does not have, or the batch of a second input.
  const std::string shapes = dir.file("two/model.shapes");
  const std::string good = k::testing::read_bytes(shapes);
  for (const char* line : {"free 1 5 7\n", "free 0 2 1\n", "free 3 5 1\n"}) {
    INFO(line);
    k::testing::write_bytes(shapes, "kiln-shapes 1\n" + std::string(line));
    CHECK_THROWS_AS(k::load_model(dir.file("two")), k::ValueError);
  }
  k::testing::write_bytes(shapes, good);
  CHECK(k::load_model(dir.file("two")).num_inputs() == 2);
}

TEST_CASE("two None lengths that must be equal cannot be saved for every length",
          "[saved_shapes][multi_io]") {
  k::KerasTensor a = k::Input({k::None, 2}, k::f32, "left");
  k::KerasTensor b = k::Input({k::None, 2}, k::f32, "right");
  k::Model model({a, b}, {L::Add()({a, b})}, "pair");
  TempDir dir;
  CHECK_THROWS_WITH(model.save(dir.file("pair")),
                    Contains("dimension 1 of input") && Contains("Declare that size"));
  CHECK_FALSE(std::filesystem::exists(dir.file("pair/model.kiln")));
  // Declared, the lengths are fixed and it saves; the batch stays free.
  k::KerasTensor c = k::Input({6, 2}, k::f32, "left6");
  k::KerasTensor d = k::Input({6, 2}, k::f32, "right6");
  k::Model fixed({c, d}, {L::Add()({c, d})}, "pair6");
  fixed.save(dir.file("pair6"));
  k::SavedModel saved = k::load_model(dir.file("pair6"));
  k::Tensor x = k::random_uniform({5, 6, 2}, 0.0, 1.0, 2), y = k::ones({5, 6, 2});
  check_same(saved({x, y})[0], x + y);
}

TEST_CASE("kiln run and kiln dump take a saved model of two inputs and two outputs",
          "[saved_shapes][multi_io][tool]") {
  TempDir dir;
  k::Model model = two_headed();
  model.save(dir.file("two"));
  std::vector<k::Tensor> xs = inputs(3, 5, 9);
  k::save_npy(dir.file("a.npy"), xs[0]);
  k::save_npy(dir.file("b.npy"), xs[1]);
  k::testing::Outcome o = k::testing::kiln_cli(
      fmt::format("run {} --input {} --input {} --output {} --output {}", dir.file("two"),
                  dir.file("a.npy"), dir.file("b.npy"), dir.file("y0.npy"), dir.file("y1.npy")));
  INFO(o.out);
  REQUIRE(o.status == 0);
  CHECK_THAT(o.out, Contains("result 0: f32[3,3]") && Contains("result 1: f32[3,1]"));
  std::vector<k::Tensor> want = model(xs);
  check_same(k::load_npy(dir.file("y0.npy")), want[0]);
  check_same(k::load_npy(dir.file("y1.npy")), want[1]);
  // One input file for two inputs; more outputs than results.
  k::testing::Outcome one =
      k::testing::kiln_cli(fmt::format("run {} --input {}", dir.file("two"), dir.file("a.npy")));
  CHECK(one.status == 2);
  CHECK_THAT(one.out, Contains("takes 2 --input files"));
  k::testing::Outcome extra = k::testing::kiln_cli(
      fmt::format("run {} --input {} --input {} --output {} --output {} --output {}",
                  dir.file("two"), dir.file("a.npy"), dir.file("b.npy"), dir.file("o0.npy"),
                  dir.file("o1.npy"), dir.file("o2.npy")));
  CHECK(extra.status == 2);
  CHECK_THAT(extra.out, Contains("3 --output files for 2 results"));
  CHECK_FALSE(std::filesystem::exists(dir.file("o0.npy")));

  // The dump shows both branches and both results.
  k::testing::Outcome dump = k::testing::kiln_cli("dump " + dir.file("two"));
  INFO(dump.out);
  REQUIRE(dump.status == 0);
  CHECK_THAT(dump.out, Contains("feat_dense/") && Contains("seq_conv/") && Contains("cls/") &&
                           Contains("reg/") && Contains("concat"));
}

TEST_CASE("an AOT library of a model of two inputs and two outputs equals the JIT, at any batch",
          "[saved_shapes][multi_io][aot]") {
  TempDir dir;
  k::Model model = two_headed();
  model.save(dir.file("two"), /*batch_size=*/3);
  k::SavedModel saved = k::load_model(dir.file("two"));
  const k::aot::Library lib = k::aot::compile(saved, {.name = "twoio", .out_dir = dir.path});
  const std::string header = k::testing::read_bytes(lib.header);
  CHECK_THAT(header, Contains("const float* input0, const float* input1, float* output0, "
                              "float* output1"));
  k::testing::AotLibrary so(lib.library, "twoio");
  void* instance = so.create();
  const k::TensorType sequence = saved.input_types()[1];
  std::vector<k::Tensor> xs = inputs(3, sequence.shape[1], 12);
  std::vector<float> y0(9), y1(3);
  auto run = so.fn<int(void*, const float*, const float*, float*, float*)>("run");
  REQUIRE(run(instance, xs[0].host().data<float>(), xs[1].host().data<float>(), y0.data(),
              y1.data()) == 0);
  std::vector<k::Tensor> want = saved(xs);
  k::testing::check_close(y0.data(), want[0], 1e-5);
  k::testing::check_close(y1.data(), want[1], 1e-5);
  so.destroy(instance);

  // Batch variants: every input's batch; NAME_run_batch takes n samples of each input.
  const k::aot::Library batched = k::aot::compile(saved, {.name = "twob",
                                                          .out_dir = dir.path,
                                                          .weights = k::aot::Weights::external,
                                                          .batch_sizes = {1, 4}});
  const std::string batched_header = k::testing::read_bytes(batched.header);
  const int64_t length = sequence.shape[1];
  CHECK_THAT(batched_header,
             Contains("#define TWOB_NUM_VARIANTS 3") &&
                 Contains("#define TWOB_VARIANT2_INPUT0_SHAPE {4, 4}") &&
                 Contains(fmt::format("#define TWOB_VARIANT2_INPUT1_SHAPE {{4, {}, 3}}", length)) &&
                 Contains("#define TWOB_VARIANT1_OUTPUT1_SHAPE {1, 1}") &&
                 Contains("#define TWOB_HAS_RUN_BATCH 1"));
  k::testing::AotLibrary vso(batched.library, "twob");
  instance = vso.create(batched.weights.c_str());
  auto run_batch =
      vso.fn<int(void*, int64_t, const float*, const float*, float*, float*)>("run_batch");
  for (int64_t n : {7, 2, 0}) {
    INFO("n = " << n);
    std::vector<k::Tensor> many = inputs(n, length, uint64_t(n) + 70);
    std::vector<float> o0(size_t(n) * 3 + 1, -1.f), o1(size_t(n) + 1, -1.f);
    REQUIRE(run_batch(instance, n, many[0].host().data<float>(), many[1].host().data<float>(),
                      o0.data(), o1.data()) == 0);
    if (n > 0) {
      std::vector<k::Tensor> expected = saved.predict(many);
      k::testing::check_close(o0.data(), expected[0], 1e-5);
      k::testing::check_close(o1.data(), expected[1], 1e-5);
    }
    CHECK(o0[size_t(n) * 3] == -1.f);  // nothing written past n results
    CHECK(o1[size_t(n)] == -1.f);
  }
  // NAME_run_dims: each input's dims in turn.
  auto run_dims =
      vso.fn<int(void*, const int64_t*, const float*, const float*, float*, float*)>("run_dims");
  std::vector<k::Tensor> four = inputs(4, length, 80);
  std::vector<float> f0(12), f1(4);
  const int64_t dims4[] = {4, 4, 4, length, 3}, dims_bad[] = {4, 4, 3, length, 3};
  REQUIRE(run_dims(instance, dims4, four[0].host().data<float>(), four[1].host().data<float>(),
                   f0.data(), f1.data()) == 0);
  std::vector<k::Tensor> want4 = model(four);
  k::testing::check_close(f0.data(), want4[0], 1e-5);
  k::testing::check_close(f1.data(), want4[1], 1e-5);
  CHECK(run_dims(instance, dims_bad, four[0].host().data<float>(), four[1].host().data<float>(),
                 f0.data(), f1.data()) != 0);
  CHECK_THAT(vso.last_error(instance),
             Contains(fmt::format("input shape [4,4,3,{},3] is not one of the compiled variants: "
                                  "([3,4], [3,{},3]), ([1,4], [1,{},3])",
                                  length, length, length)));
  CHECK(run_batch(instance, 3, nullptr, four[1].host().data<float>(), f0.data(), f1.data()) != 0);
  CHECK_THAT(vso.last_error(instance), Contains("input0, input1 or output0, output1 is NULL"));
  vso.destroy(instance);
  // input_shapes gives one shape per variant: for models of one input.
  CHECK_THROWS_WITH(
      k::aot::compile(saved,
                      {.name = "twov", .out_dir = dir.path, .input_shapes = {k::Shape{1, 4}}}),
      Contains("for a model of one input") && Contains("has 2: use batch_sizes"));
  // kiln aot --batch-sizes on it.
  k::testing::Outcome o = k::testing::kiln_cli(
      fmt::format("aot {} -o {} --batch-sizes 2", dir.file("two"), dir.file("cli/libtwoc.so")));
  INFO(o.out);
  CHECK(o.status == 0);
}
