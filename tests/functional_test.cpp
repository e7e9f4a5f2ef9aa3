// The functional API: k::Input, layers called on KerasTensors, k::Model(inputs, outputs), shared
// layers, merge layers, Keras's layer order, summary, training and transfer learning.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "model_test_util.h"

namespace k = kiln;
namespace L = kiln::layers;
using Catch::Contains;

namespace {

// Element-wise |a − b| <= tol for tensors of one shape.
void check_close(const k::Tensor& a, const k::Tensor& b, float tol = 1e-5f) {
  REQUIRE(a.shape() == b.shape());
  std::vector<float> va = k::cast(a, k::f32).to_vector<float>();
  std::vector<float> vb = k::cast(b, k::f32).to_vector<float>();
  for (size_t i = 0; i < va.size(); ++i) {
    INFO(i);
    CHECK(std::abs(va[i] - vb[i]) <= tol);
  }
}

L::Dense dense(int64_t units, const std::string& activation, const std::string& name) {
  return L::Dense(units, activation, std::nullopt, true, "glorot_uniform", "zeros", name);
}

// A layer class declared without KILN_LAYER_CLASS.
class Plain : public L::Layer {
 public:
  Plain() : Layer("plain", "", std::nullopt) {}
  k::Tensor call(const k::Tensor& x, bool) override { return x; }
  std::string class_name() const override { return "Plain"; }
};

}  // namespace

TEST_CASE("a branching functional model runs its layers as the graph says", "[functional]") {
  k::KerasTensor in = k::Input({6, 6, 2});
  CHECK(in.shape() == k::Shape{k::None, 6, 6, 2});
  L::Conv2D conv_a(4, {3, 3}, {1, 1}, "same", "relu");
  L::Conv2D conv_b(3, {1, 1}, {1, 1}, "valid", "relu");
  k::KerasTensor a = conv_a(in);
  k::KerasTensor b = conv_b(in);
  CHECK(a.shape() == k::Shape{k::None, 6, 6, 4});
  L::Concatenate cat;
  k::KerasTensor c = cat({a, b});
  CHECK(c.shape() == k::Shape{k::None, 6, 6, 7});
  L::GlobalAveragePooling2D pool;
  L::Dense head(5, "softmax");
  k::KerasTensor out = head(pool(c));
  CHECK(out.shape() == k::Shape{k::None, 5});
  k::Model model(in, out);
  CHECK(model.is_functional());
  CHECK(model.layers().size() == 6);  // the input layer, two convolutions, concat, pool, dense
  CHECK(model.count_params() == (3 * 3 * 2 * 4 + 4) + (2 * 3 + 3) + (7 * 5 + 5));

  k::Tensor x = k::random_normal({3, 6, 6, 2}, 0.0, 1.0, 7);
  k::Tensor expected = head(pool(k::concat({conv_a(x), conv_b(x)}, -1)));
  check_close(model(x), expected);
  check_close(model.predict(x, 2), expected);
  // Any batch size: the batch dimension is None.
  CHECK(model(k::ones({1, 6, 6, 2})).shape() == k::Shape{1, 5});
  CHECK_THROWS_AS(model(k::ones({2, 5, 6, 2})), k::ShapeError);
}

TEST_CASE("functional summary has Keras's Connected to column", "[functional]") {
  k::KerasTensor in = k::Input({4}, k::f32, "in_s");
  k::KerasTensor a = dense(3, "relu", "fs_a")(in);
  k::KerasTensor b = dense(3, "relu", "fs_b")(in);
  k::KerasTensor s = L::Add("fs_add")({a, b});
  k::Model model(in, dense(1, "", "fs_out")(s), "fs_model");
  std::string text = model.summary_text();
  CHECK_THAT(text, Contains("Model: \"fs_model\""));
  CHECK_THAT(text, Contains("Connected to"));
  CHECK_THAT(text,
             Contains(" in_s (InputLayer)              [(None, 4)]                    0  []\n"));
  CHECK_THAT(text, Contains(" fs_a (Dense)                   (None, 3)                     15  "
                            "['in_s[0][0]']\n"));
  CHECK_THAT(text, Contains("['fs_a[0][0]',\n"));
  CHECK_THAT(text, Contains(" 'fs_b[0][0]']\n"));
  CHECK_THAT(text, Contains("Total params: 34\nTrainable params: 34\nNon-trainable params: 0"));
}

TEST_CASE("layers() follows Keras's order: deepest first, ties by depth-first number",
          "[functional]") {
  k::KerasTensor in = k::Input({8}, k::f32, "ord_in");
  k::KerasTensor a = dense(2, "", "ord_a")(in);
  k::KerasTensor b1 = dense(2, "", "ord_b1")(in);
  k::KerasTensor b2 = dense(2, "", "ord_b2")(b1);
  k::Model model(in, L::Concatenate(-1, "ord_cat")({a, b2}));
  std::vector<std::string> names;
  for (const auto& l : model.layers())
    names.push_back(l->name());
  // Creation order would be in, a, b1, b2, cat; Keras's map_graph puts b1 (depth 2) before a
  // and b2 (depth 1), which tie and go by their pre-order number from the output.
  CHECK(names == std::vector<std::string>{"ord_in", "ord_b1", "ord_a", "ord_b2", "ord_cat"});
}

TEST_CASE("a layer called twice shares its weights", "[functional]") {
  k::KerasTensor x1 = k::Input({3});
  k::KerasTensor x2 = k::Input({3});
  L::Dense shared = dense(2, "tanh", "shared_d");
  k::KerasTensor y1 = shared(x1);
  k::KerasTensor y2 = shared(x2);
  CHECK(shared.symbolic_calls() == 2);
  CHECK(y2.name() == "shared_d[1][0]");
  k::Model model({x1, x2}, {L::Subtract()({y1, y2})});
  CHECK(model.weights().size() == 2);
  CHECK(model.count_params() == 8);
  k::Tensor a = k::random_normal({4, 3}, 0.0, 1.0, 1), b = k::random_normal({4, 3}, 0.0, 1.0, 2);
  std::vector<k::Tensor> out = model({a, b});
  REQUIRE(out.size() == 1);
  check_close(out[0], shared(a) - shared(b));
  // output() is ambiguous for a layer called twice.
  CHECK_THROWS_WITH(shared.output(), Contains("2 times"));
  CHECK_THROWS_WITH(model.input(), Contains("2 inputs"));
  // Calls on one tensor need a model of one input, and say so (functional_fit_test trains
  // models of several).
  CHECK_THROWS_WITH(model(a), Contains("2 inputs and 1 outputs"));
}

TEST_CASE("merge layers compute what Keras's do", "[functional]") {
  k::Tensor a = k::constant({{1.f, -2.f}, {3.f, 4.f}});
  k::Tensor b = k::constant({{5.f, 6.f}, {-7.f, 8.f}});
  k::Tensor c = k::constant({{0.f, 1.f}, {1.f, 0.f}});
  check_close(L::Add()({a, b, c}), k::constant({{6.f, 5.f}, {-3.f, 12.f}}));
  check_close(L::Subtract()({a, b}), k::constant({{-4.f, -8.f}, {10.f, -4.f}}));
  check_close(L::Multiply()({a, b}), k::constant({{5.f, -12.f}, {-21.f, 32.f}}));
  check_close(L::Average()({a, b}), k::constant({{3.f, 2.f}, {-2.f, 6.f}}));
  check_close(L::Maximum()({a, b}), k::constant({{5.f, 6.f}, {3.f, 8.f}}));
  check_close(L::Minimum()({a, b}), k::constant({{1.f, -2.f}, {-7.f, 4.f}}));
  check_close(L::Concatenate()({a, c}), k::constant({{1.f, -2.f, 0.f, 1.f}, {3.f, 4.f, 1.f, 0.f}}));
  check_close(L::Concatenate(0)({a, c}),
              k::constant({{1.f, -2.f}, {3.f, 4.f}, {0.f, 1.f}, {1.f, 0.f}}));

  CHECK_THROWS_WITH(L::Subtract()({a, b, c}), Contains("exactly 2 inputs, got 3"));
  CHECK_THROWS_WITH(L::Add()(a), Contains("list of inputs"));
  CHECK_THROWS_AS(L::Add()({a, k::constant({1, 2})}), k::TypeError);
  CHECK_THROWS_AS(L::Concatenate()({a, k::ones({2})}), k::ShapeError);
  CHECK_THROWS_WITH(L::Add()(std::vector<k::Tensor>{}), Contains("empty"));
}

TEST_CASE("functional models refuse graphs they cannot run", "[functional]") {
  k::KerasTensor in = k::Input({3});
  k::KerasTensor other = k::Input({3}, k::f32, "stray_input");
  k::KerasTensor y = L::Add()({dense(2, "", "bad_a")(in), dense(2, "", "bad_b")(other)});
  CHECK_THROWS_WITH(k::Model(in, y), Contains("depend on the input 'stray_input'"));
  CHECK_THROWS_WITH(k::Model(dense(2, "", "bad_c")(in), y), Contains("made by k::Input"));
  CHECK_THROWS_WITH(k::Model(k::KerasTensor(), y), Contains("empty KerasTensor"));
  // Two different layers of one name.
  k::KerasTensor z = dense(2, "", "twin")(dense(2, "", "twin")(in));
  CHECK_THROWS_WITH(k::Model(in, z), Contains("two different layers are named 'twin'"));
  // A layer class without KILN_LAYER_CLASS cannot be kept.
  Plain plain;
  CHECK_THROWS_WITH(plain(in), Contains("KILN_LAYER_CLASS(Plain)"));
  CHECK_THROWS_WITH(k::Input({-3}), Contains("k::None"));
  CHECK_THROWS_WITH(L::Dense(2).output(), Contains("never been called"));
  k::Model subclass("sub");
  CHECK_THROWS_WITH(subclass.input(), Contains("not functional"));
}

TEST_CASE("None dimensions take any size; shapes that follow them are None", "[functional]") {
  k::KerasTensor in = k::Input({k::None, 4});
  CHECK(in.shape() == k::Shape{k::None, k::None, 4});
  L::Dense d = dense(3, "", "seq_d");
  k::KerasTensor h = d(in);
  CHECK(h.shape() == k::Shape{k::None, k::None, 3});
  k::KerasTensor pooled = L::GlobalAveragePooling1D()(h);
  CHECK(pooled.shape() == k::Shape{k::None, 3});
  k::Model model(in, pooled);
  for (int64_t length : {1, 5, 9}) {
    k::Tensor x = k::random_normal({2, length, 4}, 0.0, 1.0, 3);
    check_close(model(x), k::reduce_mean(d(x), {1}));
  }
  CHECK_THAT(model.summary_text(), Contains("(None, None, 3)"));
  CHECK_THROWS_AS(model(k::ones({2, 5, 3})), k::ShapeError);
  // Saved, it takes any length too (saved_model_shapes_test has the details).
  model.save("/tmp/kiln-functional-none-save");
  k::SavedModel saved = k::load_model("/tmp/kiln-functional-none-save");
  CHECK(saved.input_spec().shape == k::Shape{k::None, k::None, 4});
  k::Tensor x9 = k::random_normal({3, 9, 4}, 0.0, 1.0, 4);
  check_close(saved(x9), model(x9));
}

TEST_CASE("a functional model trains with fit like the Sequential of the same layers",
          "[functional]") {
  auto [x, y] = k::testing::blobs(40, 3);
  L::Dense h1 = dense(8, "relu", "fit_h1"), h2 = dense(3, "softmax", "fit_h2");
  k::KerasTensor in = k::Input({2});
  k::Model model(in, h2(h1(in)));
  // The same layers in a Sequential, with a copy of the initial weights to restore.
  std::vector<k::Tensor> initial;
  for (const k::Variable& v : model.weights())
    initial.push_back(v.value());
  model.compile(k::optimizers::SGD(0.1), k::losses::SparseCategoricalCrossentropy(), {"accuracy"});
  k::History h = model.fit(x, y, {.epochs = 3, .batch_size = 16, .shuffle = false, .verbose = 0});
  std::vector<k::Tensor> trained;
  for (const k::Variable& v : model.weights())
    trained.push_back(v.value());
  std::vector<k::Variable> weights = model.weights();
  for (size_t i = 0; i < initial.size(); ++i)
    weights[i].assign(initial[i]);
  k::Sequential seq({h1, h2});
  seq.compile(k::optimizers::SGD(0.1), k::losses::SparseCategoricalCrossentropy(), {"accuracy"});
  k::History hs = seq.fit(x, y, {.epochs = 3, .batch_size = 16, .shuffle = false, .verbose = 0});
  REQUIRE(h.history["loss"].size() == 3);
  for (size_t e = 0; e < 3; ++e)
    CHECK(h.history["loss"][e] == Approx(hs.history["loss"][e]).epsilon(1e-5));
  for (size_t i = 0; i < trained.size(); ++i)
    check_close(trained[i], model.weights()[i].value());
  std::vector<float> scores = model.evaluate(x, y, 32);
  CHECK(scores.size() == 2);
}

TEST_CASE("transfer learning: a frozen base's layer output gets a new head", "[functional]") {
  k::KerasTensor in = k::Input({4}, k::f32, "tl_in");
  k::KerasTensor f1 = dense(6, "relu", "tl_f1")(in);
  k::KerasTensor bn = L::BatchNormalization(-1, 0.9, 1e-3, true, true, "tl_bn")(f1);
  k::KerasTensor f2 = dense(5, "relu", "tl_f2")(bn);
  k::Model base(in, dense(3, "softmax", "tl_top")(f2), "base");
  for (auto& layer : base.layers())
    layer->trainable = false;
  CHECK_FALSE(base.get_layer("tl_bn").trainable());
  CHECK(base.trainable_weights().empty());

  k::KerasTensor last = base.get_layer("tl_f2").output();
  CHECK(last.shape() == k::Shape{k::None, 5});
  CHECK(base.get_layer("tl_f2").input().name() == "tl_bn[0][0]");
  L::Dense new_head = dense(1, "sigmoid", "tl_head");
  k::Model tl(base.input(), new_head(L::Dropout(0.2)(last)), "tl");
  CHECK(tl.get_layer("tl_f1").weights().size() == 2);
  CHECK(tl.trainable_weights().size() == 2);  // the new head only
  CHECK(tl.layers().size() == 6);             // input, f1, bn, f2, dropout, head: not the old top

  std::vector<k::Tensor> frozen_before;
  for (const k::Variable& v : base.weights())
    frozen_before.push_back(v.value());
  k::Tensor head_before = new_head.kernel().value();
  k::Tensor x = k::random_normal({32, 4}, 0.0, 1.0, 5);
  k::Tensor y = k::cast(k::greater(k::reduce_sum(x, {1}), 0.f), k::f32);
  tl.compile("adam", "binary_crossentropy", {"accuracy"});
  tl.fit(x, y, {.epochs = 2, .batch_size = 8, .verbose = 0});
  // Nothing frozen moved, BatchNormalization's moving statistics included (inference mode).
  for (size_t i = 0; i < frozen_before.size(); ++i)
    check_close(base.weights()[i].value(), frozen_before[i], 0.f);
  CHECK(k::reduce_max(k::abs(new_head.kernel().value() - head_before)).item<float>() > 0.f);

  // Unfreezing one layer makes its weights trainable again.
  base.get_layer("tl_f2").trainable = true;
  CHECK(tl.trainable_weights().size() == 4);
  CHECK(base.get_layer("tl_f2").trainable);
}

TEST_CASE("functional models save and load their weights", "[functional]") {
  auto make = [](uint64_t seed) {
    k::set_random_seed(seed);
    k::KerasTensor in = k::Input({3});
    k::KerasTensor a = L::Dense(4, "relu")(in);
    k::KerasTensor b = L::Dense(4, "tanh")(in);
    return k::Model(in, L::Dense(2)(L::Multiply()({a, b})));
  };
  k::Model m = make(1);
  std::string path = "/tmp/kiln-functional-weights.safetensors";
  m.save_weights(path);
  k::Tensor x = k::random_normal({5, 3}, 0.0, 1.0, 9);
  k::Tensor expected = m(x);
  for (k::Variable v : m.weights())
    v.assign(k::zeros(v.shape()));
  CHECK(k::reduce_max(k::abs(m(x))).item<float>() == 0.f);
  m.load_weights(path);
  check_close(m(x), expected, 0.f);
  std::remove(path.c_str());
}

TEST_CASE("models are layers: nested in a Sequential or called on a KerasTensor", "[functional]") {
  L::Dense inner_a = dense(4, "relu", "nest_a"), inner_b = dense(3, "", "nest_b");
  k::Sequential inner({inner_a, inner_b}, "inner");
  L::Dense top = dense(2, "softmax", "nest_top");
  k::Sequential outer({inner, top}, "outer");
  k::Tensor x = k::random_normal({5, 6}, 0.0, 1.0, 4);
  check_close(outer(x), top(inner_b(inner_a(x))));
  REQUIRE(outer.layers().size() == 2);
  CHECK(outer.layers()[0]->class_name() == "Sequential");
  CHECK(outer.layers()[0]->name() == "inner");
  CHECK(outer.weights().size() == 6);
  CHECK(outer.count_params() == (6 * 4 + 4) + (4 * 3 + 3) + (3 * 2 + 2));
  CHECK_THAT(outer.summary_text(), Contains(" inner (Sequential)"));
  // Freezing the nested model freezes its weights in the outer one.
  outer.layers()[0]->trainable = false;
  CHECK(outer.trainable_weights().size() == 2);
  CHECK(outer.non_trainable_weights().size() == 4);

  // A functional model called on a KerasTensor inside another.
  k::KerasTensor in = k::Input({6});
  k::Model features(in, inner_a(in), "features");
  k::KerasTensor in2 = k::Input({6});
  k::KerasTensor f = features(in2);
  CHECK(f.shape() == k::Shape{k::None, 4});
  k::Model whole(in2, dense(1, "", "nest_out")(f), "whole");
  CHECK(whole.layers()[1]->class_name() == "Functional");
  CHECK(whole.weights().size() == 4);
  check_close(whole(x), whole.get_layer("nest_out")(inner_a(x)));
  CHECK_THAT(whole.summary_text(), Contains(" features (Functional)"));

  // Training the outer model trains the nested model's weights (they are shared).
  k::Tensor before = inner_a.kernel().value();
  whole.compile("sgd", "mse");
  whole.fit(x, k::ones({5, 1}), {.epochs = 1, .batch_size = 5, .verbose = 0});
  CHECK(k::reduce_max(k::abs(inner_a.kernel().value() - before)).item<float>() > 0.f);
  features.set_trainable(false);
  CHECK_FALSE(inner_a.trainable());
}

TEST_CASE("a functional model saves for inference with its branches in the graph", "[functional]") {
  k::KerasTensor in = k::Input({5});
  k::KerasTensor a = dense(3, "relu", "save_a")(in);
  k::KerasTensor b = dense(3, "tanh", "save_b")(in);
  k::Model model(in, dense(2, "softmax", "save_out")(L::Concatenate(-1, "save_cat")({a, b})));
  std::string dir = "/tmp/kiln-functional-saved";
  model.save(dir, 4);
  k::SavedModel loaded = k::load_model(dir);
  k::Tensor x = k::random_normal({7, 5}, 0.0, 1.0, 21);
  check_close(loaded.predict(x), model.predict(x), 1e-6f);
  std::ifstream text(dir + "/model.kiln");
  std::string ir((std::istreambuf_iterator<char>(text)), std::istreambuf_iterator<char>());
  CHECK_THAT(ir, Contains("save_a/") && Contains("save_b/") && Contains("concat"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("wrappers' weights are their inner layers', frozen through either", "[functional]") {
  L::Dense inner = dense(3, "", "wrapped_dense");
  L::TimeDistributed td(inner);
  CHECK_FALSE(td.built());
  k::Tensor y = td(k::ones({2, 4, 5}));
  CHECK(y.shape() == k::Shape{2, 4, 3});
  CHECK(td.built());
  REQUIRE(td.weights().size() == 2);
  CHECK(td.weights()[0].name() == "wrapped_dense/kernel");
  CHECK(td.count_params() == 18);
  td.trainable = false;
  CHECK(td.trainable_weights().empty());
  CHECK(td.non_trainable_weights().size() == 2);
  td.trainable = true;
  td.layer().trainable = false;  // the inner layer frozen: the wrapper reports it
  CHECK(td.trainable_weights().empty());
  k::Sequential model({td});
  CHECK(model.trainable_weights().empty());
  CHECK(model.weights().size() == 2);
}
