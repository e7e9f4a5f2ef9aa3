// The main job: Fashion-MNIST classified with the Keras-style API, as in the TensorFlow
// tutorials. Trains the MLP 784-512-10 (RMSprop, sparse cross-entropy), evaluates it on the
// 10,000 test images, and writes its history (CSV, SVG curves) and weights.
//
//   build/examples/fashion_mnist [epochs] [output_dir]
#include <kiln/kiln.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

namespace k = kiln;

int main(int argc, char** argv) {
  try {
    int64_t epochs = argc > 1 ? std::atoll(argv[1]) : 5;
    std::string out = argc > 2 ? argv[2] : "fashion_mnist_out";
    if (epochs <= 0) {
      std::cerr << "usage: fashion_mnist [epochs > 0] [output_dir]\n";
      return 2;
    }
    std::filesystem::create_directories(out);

    auto [train, test] = k::datasets::fashion_mnist::load_data();
    k::Tensor x_train = k::cast(train.images, k::f32) / 255.f, y_train = train.labels;
    k::Tensor x_test = k::cast(test.images, k::f32) / 255.f, y_test = test.labels;
    std::cout << "train " << x_train.shape() << ", test " << x_test.shape() << "\n";

    k::Sequential model({
        k::layers::Flatten(/*input_shape=*/k::Shape{28, 28}),
        k::layers::Dense(512, "relu"),
        k::layers::Dense(10, "softmax"),
    });
    model.compile(k::optimizers::RMSprop(1e-3), k::losses::SparseCategoricalCrossentropy(),
                  {"accuracy"});
    model.summary();
    k::History h =
        model.fit(x_train, y_train, {.epochs = epochs, .batch_size = 128, .validation_split = 0.1});
    std::vector<float> scores = model.evaluate(x_test, y_test);
    std::cout << "test loss " << scores[0] << ", test accuracy " << scores[1] << "\n";
    double seconds = 0;
    for (double s : h.seconds)
      seconds += s;
    std::cout << "seconds per epoch " << seconds / double(h.seconds.size()) << "\n";
    h.to_csv(out + "/mlp_history.csv");
    h.plot(out + "/mlp_curves.svg");
    std::cout << "wrote " << out << "/mlp_history.csv and " << out << "/mlp_curves.svg\n";
  } catch (const k::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
