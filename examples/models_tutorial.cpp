// TensorFlow tutorial 004 (../shared/tutorials/004_*.txt) in C++: regression y = 2x − 1, a
// deeper regression, a binary and a multi-class classifier with their loss and accuracy curves,
// transfer learning through the functional API (a convnet trained on Fashion-MNIST, saved as a
// Keras HDF5 weights file, loaded into a fresh copy, frozen, given a new head and fine-tuned on
// another task), a convnet with augmentation and dropout, the Conv1D + LSTM forecaster on a
// synthetic seasonal series (its validation MAE must beat the naive "repeat the last value"
// forecast), and InceptionV3 built as Keras builds it.
//
// Sizes are small so the example runs in seconds as a test (tests/expected/models_tutorial.txt
// holds the lines that come out the same every run; values that vary are checked here, and the
// program exits 1 if a check fails).
//
// Usage: models_tutorial [idx_dir]   (Fashion-MNIST IDX files; synthetic images without them)
#include <kiln/kiln.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <numbers>
#include <string>
#include <vector>

namespace k = kiln;
namespace L = kiln::layers;

namespace {

bool all_ok = true;

void check(const std::string& what, bool ok) {
  std::cout << what << ": " << (ok ? "yes" : "no") << "\n";
  all_ok = all_ok && ok;
}

// Ten classes of 28×28 images (u8): a bright block at one of ten places over noise.
k::datasets::Split synthetic_split(int64_t n, int64_t seed) {
  k::Tensor labels = k::cast(k::random_uniform({n}, 0.0, 10.0, seed), k::i32);
  std::vector<int32_t> y = labels.to_vector<int32_t>();
  std::vector<float> pixels = k::random_uniform({n, 28, 28}, 0.0, 0.4, seed + 1).to_vector<float>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t row = 2 + (y[static_cast<size_t>(i)] / 5) * 12;
    int64_t col = 1 + (y[static_cast<size_t>(i)] % 5) * 5;
    for (int64_t r = row; r < row + 8; ++r)
      for (int64_t c = col; c < col + 5; ++c)
        pixels[static_cast<size_t>((i * 28 + r) * 28 + c)] = 1.f;
  }
  k::Tensor images = k::cast(k::round(k::constant(pixels, k::Shape{n, 28, 28}) * 255.f), k::u8);
  return {images, labels};
}

// The first n images as f32 in [0, 1], and their labels.
std::pair<k::Tensor, k::Tensor> first(const k::datasets::Split& split, int64_t n) {
  n = std::min(n, split.images.shape()[0]);
  k::Tensor x = k::cast(split.images.index({k::Slice(0, n)}), k::f32) / 255.f;
  return {x, split.labels.index({k::Slice(0, n)})};
}

double last(const k::History& h, const std::string& key) {
  return h.history.at(key).back();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc > 2) {
      std::cerr << "usage: models_tutorial [idx_dir]\n";
      return 2;
    }
    k::set_random_seed(4);

    // --- Regression: y = 2x − 1 from six points, one Dense unit, SGD on the squared error.
    k::Tensor xs = k::constant({{-1.f}, {0.f}, {1.f}, {2.f}, {3.f}, {4.f}});
    k::Tensor ys = k::constant({{-3.f}, {-1.f}, {1.f}, {3.f}, {5.f}, {7.f}});
    k::Sequential line({L::Dense(1, "", k::Shape{1})});
    line.compile("sgd", "mean_squared_error");
    line.fit(xs, ys, {.epochs = 500, .verbose = 0});
    float at_ten = line.predict(k::constant({{10.f}})).item<float>();
    std::printf("model.predict([10.0]) = %.2f\n", at_ten);
    check("the prediction for 10 is close to 19", std::abs(at_ten - 19.f) < 0.1f);

    // --- The same data through Dense(64), Dense(32), Dense(1).
    k::Sequential deeper({L::Dense(64, "", k::Shape{1}), L::Dense(32), L::Dense(1)});
    deeper.compile("sgd", "mean_squared_error");
    k::History dh = deeper.fit(xs, ys, {.epochs = 200, .verbose = 0});
    check("the deeper regression's loss fell below 0.01", last(dh, "loss") < 0.01);

    // --- Classifiers on Fashion-MNIST (or synthetic images of the same format).
    std::string dir = argc > 1 ? argv[1] : k::datasets::fashion_mnist::kDirectory;
    k::datasets::Split train, test;
    if (std::filesystem::exists(std::filesystem::path(dir) / "train-images-idx3-ubyte.gz") ||
        std::filesystem::exists(std::filesystem::path(dir) / "train-images-idx3-ubyte")) {
      std::tie(train, test) = k::datasets::mnist_format::load_data(dir);
    } else {
      train = synthetic_split(3000, 10);
      test = synthetic_split(1000, 20);
    }
    auto [x_train, y_train] = first(train, 3000);
    auto [x_test, y_test] = first(test, 1000);

    // Binary: the tutorial's ten sigmoid outputs, one yes/no per class, on one-hot labels.
    k::Sequential binary(
        {L::Flatten(k::Shape{28, 28}), L::Dense(128, "relu"), L::Dense(10, "sigmoid")});
    binary.compile("adam", "binary_crossentropy", {"binary_accuracy"});
    k::Tensor one_hot_train = k::one_hot(y_train, 10);
    k::History bh = binary.fit(x_train, one_hot_train, {.epochs = 2, .verbose = 0});
    check("the binary classifier's per-class accuracy is above 0.9",
          last(bh, "binary_accuracy") > 0.9);

    // Multi-class: softmax, with validation curves plotted as the notebook's matplotlib does.
    k::Sequential multi(
        {L::Flatten(k::Shape{28, 28}), L::Dense(128, "relu"), L::Dense(10, "softmax")});
    multi.compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
    k::History mh =
        multi.fit(x_train, y_train, {.epochs = 3, .validation_split = 0.2, .verbose = 0});
    std::vector<std::string> keys;
    for (const auto& [key, values] : mh.history)
      keys.push_back(key);
    std::cout << "history keys:";
    for (const std::string& key : keys)
      std::cout << " " << key;
    std::cout << "\n";
    mh.plot("models_tutorial_curves.svg");
    check("the curves were written", std::filesystem::file_size("models_tutorial_curves.svg") > 0);
    std::filesystem::remove("models_tutorial_curves.svg");
    std::vector<float> scores = multi.evaluate(x_test, y_test, 128);
    check("the multi-class test accuracy is above 0.6", scores[1] > 0.6f);

    // --- Transfer learning. A small convnet learns the ten classes and is saved as a Keras
    // HDF5 weights file ...
    auto convnet = [] {
      k::KerasTensor in = k::Input({28, 28, 1});
      k::KerasTensor h = L::Conv2D(8, {3, 3}, {1, 1}, "valid", "relu")(in);
      h = L::MaxPooling2D()(h);
      h = L::Flatten()(h);
      h = L::Dense(32, "relu", std::nullopt, true, "glorot_uniform", "zeros", "features")(h);
      return k::Model(in, L::Dense(10, "softmax")(h), "convnet");
    };
    k::Tensor images = k::reshape(x_train, {x_train.shape()[0], 28, 28, 1});
    k::Model pre_trained = convnet();
    pre_trained.compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
    pre_trained.fit(images, y_train, {.epochs = 2, .verbose = 0});
    const std::string weights_file = "models_tutorial_convnet.h5";
    pre_trained.save_weights(weights_file);

    // ... then a fresh copy (its layers are named conv2d_1, dense_5, ...: Keras's files match by
    // layer order) loads it, every layer is frozen, and a new head on the "features" layer learns
    // another task: is the item footwear (sandal 5, sneaker 7, ankle boot 9)?
    k::Model base = convnet();
    base.load_weights(weights_file);
    std::filesystem::remove(weights_file);
    k::Tensor probe = images.index({k::Slice(0, 8)});
    check("the loaded copy predicts as the saved model",
          k::reduce_max(k::abs(base.predict(probe) - pre_trained.predict(probe))).item<float>() ==
              0.f);
    for (auto& layer : base.layers())
      layer->trainable = false;
    k::KerasTensor features = base.get_layer("features").output();
    std::cout << "last layer output shape: " << k::detail::shape_text(features.shape()) << "\n";
    k::KerasTensor x = L::Dense(16, "relu")(features);
    x = L::Dropout(0.2)(x);
    x = L::Dense(1, "sigmoid")(x);
    k::Model model(base.input(), x, "transfer");
    model.compile(k::optimizers::RMSprop(1e-3), "binary_crossentropy", {"accuracy"});
    auto footwear = [](const k::Tensor& labels) {
      return k::cast(k::logical_or(k::logical_or(k::equal(labels, 5), k::equal(labels, 7)),
                                   k::equal(labels, 9)),
                     k::f32);
    };
    k::Tensor frozen_kernel = base.get_layer("features").weights()[0].value();
    k::History th = model.fit(images, footwear(y_train), {.epochs = 2, .verbose = 0});
    check("the frozen features did not move",
          k::reduce_max(k::abs(base.get_layer("features").weights()[0].value() - frozen_kernel))
                  .item<float>() == 0.f);
    std::vector<float> tscores =
        model.evaluate(k::reshape(x_test, {x_test.shape()[0], 28, 28, 1}), footwear(y_test), 128);
    check("the new head tells footwear apart (accuracy above 0.8)", tscores[1] > 0.8f);
    std::cout << "trainable weights of the transfer model: " << model.trainable_weights().size()
              << "\n";
    (void)th;

    // --- Avoiding overfitting: augmentation (a nested Sequential of random layers, active in
    // training only, inside the compiled step) and Dropout, on 28×28 images.
    k::Sequential data_augmentation({L::RandomFlip("horizontal_and_vertical", 7),
                                     L::RandomRotation(0.2, "reflect", "bilinear", 8)});
    k::Sequential augmented({
        L::Reshape({28, 28, 1}, k::Shape{28, 28}),
        data_augmentation,
        L::Conv2D(16, 3, {.padding = "same", .activation = "relu"}),
        L::MaxPooling2D(),
        L::Dropout(0.5),
        L::Flatten(),
        L::Dense(10, "softmax"),
    });
    augmented.compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
    augmented.fit(x_train, y_train, {.epochs = 2, .verbose = 0});
    std::vector<float> ascores = augmented.evaluate(x_test, y_test, 128);
    check("the augmented convnet learns (test accuracy above 0.5)", ascores[1] > 0.5f);

    // --- A forecaster: Conv1D + two LSTMs on a synthetic seasonal series, inputs [None, 1] (any
    // window length), trained sequence to sequence on windows of 20 steps.
    {
      const int64_t n = 1200, window = 20, split = 1000;
      std::vector<float> series(static_cast<size_t>(n));
      std::vector<float> noise = k::random_normal({n}, 0.0, 1.0, 41).to_vector<float>();
      for (int64_t t = 0; t < n; ++t) {
        double phase = std::fmod(static_cast<double>(t), 40.0) / 40.0;
        double season =
            phase < 0.4 ? std::cos(phase * 2 * std::numbers::pi) : 1 / std::exp(3 * phase);
        series[static_cast<size_t>(t)] =
            static_cast<float>(10 + 0.05 * t + 40 * season + 2 * noise[static_cast<size_t>(t)]);
      }
      auto windows = [&](int64_t begin, int64_t end, int64_t shift) {
        std::vector<float> out;
        for (int64_t s0 = begin; s0 + window + 1 <= end; ++s0)
          for (int64_t i = 0; i < window; ++i)
            out.push_back(series[static_cast<size_t>(s0 + i + shift)]);
        int64_t count = static_cast<int64_t>(out.size()) / window;
        return k::constant(out, k::Shape{count, window, 1});
      };
      k::Tensor wx = windows(0, split, 0), wy = windows(0, split, 1);
      k::Sequential forecaster({
          L::Conv1D(32, 5,
                    {.strides = 1,
                     .padding = "causal",
                     .activation = "relu",
                     .input_shape = {k::None, 1}}),
          L::LSTM(64, {.return_sequences = true}),
          L::LSTM(64, {.return_sequences = true}),
          L::Dense(30, "relu"),
          L::Dense(10, "relu"),
          L::Dense(1),
          L::Lambda([](const k::Tensor& t) { return t * 400.f; }),
      });
      forecaster.compile(k::optimizers::Adam(1e-3), "mae", {"mse"});
      forecaster.fit(wx, wy, {.epochs = 12, .batch_size = 32, .verbose = 0});
      // Validation: forecast step t from the 20 steps before it, for every t after the split.
      k::Tensor vx = windows(split - window, n, 0);
      k::Tensor forecast =
          forecaster.predict(vx, 64).index({k::Slice(), -1, 0});  // the last step's output
      std::vector<float> f = forecast.to_vector<float>();
      double mae = 0, naive = 0;
      for (size_t i = 0; i < f.size(); ++i) {
        size_t t = static_cast<size_t>(split) + i;
        mae += std::abs(f[i] - series[t]);
        naive += std::abs(series[t - 1] - series[t]);
      }
      mae /= static_cast<double>(f.size());
      naive /= static_cast<double>(f.size());
      std::printf("validation MAE %.2f, naive forecast %.2f\n", mae, naive);
      check("the forecaster beats the naive forecast", mae < naive);
    }

    // --- InceptionV3 as the notebook builds it (no pretrained weights here: a file you have
    // loads with base.load_weights("inception_v3_weights.h5")).
    k::clear_session();
    k::Model inception =
        k::applications::InceptionV3({.input_shape = k::Shape{150, 150, 3}, .include_top = false});
    std::cout << "InceptionV3 layers: " << inception.layers().size()
              << ", params: " << inception.count_params() << "\n";
    k::KerasTensor mixed7 = inception.get_layer("mixed7").output();
    std::cout << "mixed7 output shape: " << k::detail::shape_text(mixed7.shape()) << "\n";
    k::KerasTensor head = L::Flatten()(mixed7);
    head = L::Dense(1024, "relu")(head);
    head = L::Dropout(0.2)(head);
    head = L::Dense(1, "sigmoid")(head);
    k::Model tl(inception.input(), head);
    std::cout << "transfer model params: " << tl.count_params() << "\n";
  } catch (const k::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return all_ok ? 0 : 1;
}
