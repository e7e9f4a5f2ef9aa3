// Shape-generic saved models: a model saved once runs at any batch (and any length of a k::None
// dimension) through load_model, `kiln run` and AOT libraries with several shape variants.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <fmt/format.h>

#include <string>
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
