// The main job: Fashion-MNIST classified with the Keras-style API, as in the TensorFlow
// tutorials. Trains two models on the 60,000 training images (the last 10 % held out for
// validation), evaluates each on the 10,000 test images, and writes its history (CSV, SVG
// curves), weights and saved inference model:
//   - the MLP 784-512-10 (RMSprop 1e-3), the Keras basic-classification tutorial's model;
//   - the TensorFlow tutorial convnet (Conv2D 32 5×5 same relu, MaxPool 2, Conv2D 64 5×5 same
//     relu, MaxPool 2, Flatten, Dense 1024 relu, Dropout 0.4, Dense 10; Adam 1e-3).
//
//   build/examples/fashion_mnist [mlp_epochs] [convnet_epochs] [output_dir]
//
// An epoch count of 0 skips that model.
#include <kiln/kiln.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "main_job_models.h"

namespace k = kiln;

namespace {

// Fits, evaluates and writes the outputs of one model; prints a one-line summary.
void train(k::Sequential& model, const std::string& tag, int64_t epochs, const k::Tensor& x_train,
           const k::Tensor& y_train, const k::Tensor& x_test, const k::Tensor& y_test,
           const std::string& out) {
  model.summary();
  k::History h =
      model.fit(x_train, y_train, {.epochs = epochs, .batch_size = 128, .validation_split = 0.1});
  std::vector<float> scores = model.evaluate(x_test, y_test, 256);
  double later = 0;  // seconds per epoch after the first, which traces and compiles
  for (size_t e = 1; e < h.seconds.size(); ++e)
    later += h.seconds[e];
  double per_epoch = h.seconds.size() > 1 ? later / double(h.seconds.size() - 1) : h.seconds[0];
  std::cout << tag << ": test loss " << scores[0] << ", test accuracy " << scores[1] << " after "
            << h.seconds.size() << " epochs; " << per_epoch << " s per epoch (first "
            << h.seconds[0] << " s)\n";
  h.to_csv(out + "/" + tag + "_history.csv");
  h.plot(out + "/" + tag + "_curves.svg");
  model.save_weights(out + "/" + tag + ".safetensors");
  model.save(out + "/" + tag + "_model");
  std::cout << "wrote " << out << "/" << tag << "_history.csv, " << tag << "_curves.svg, " << tag
            << ".safetensors and " << tag << "_model/\n";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int64_t mlp_epochs = argc > 1 ? std::atoll(argv[1]) : 15;
    int64_t convnet_epochs = argc > 2 ? std::atoll(argv[2]) : 12;
    std::string out = argc > 3 ? argv[3] : "fashion_mnist_out";
    if (mlp_epochs < 0 || convnet_epochs < 0 || argc > 4) {
      std::cerr << "usage: fashion_mnist [mlp_epochs >= 0] [convnet_epochs >= 0] [output_dir]\n";
      return 2;
    }
    std::filesystem::create_directories(out);

    auto [train_set, test_set] = k::datasets::fashion_mnist::load_data();
    // The images as f32 in [0, 1]. The division runs in the cast's buffer (an eager elementwise
    // op on a temporary computes in place), and the u8 images go once converted: the program
    // keeps one copy of the data, as libtorch's side (which reads floats) does.
    k::Tensor x_train = k::cast(train_set.images, k::f32) / 255.f, y_train = train_set.labels;
    train_set.images = {};
    k::Tensor x_test = k::cast(test_set.images, k::f32) / 255.f, y_test = test_set.labels;
    test_set.images = {};
    std::cout << "train " << x_train.shape() << ", test " << x_test.shape() << "\n";

    if (mlp_epochs > 0) {
      k::Sequential mlp = main_job::mlp();
      mlp.compile(k::optimizers::RMSprop(1e-3), k::losses::SparseCategoricalCrossentropy(),
                  {"accuracy"});
      train(mlp, "mlp", mlp_epochs, x_train, y_train, x_test, y_test, out);
    }
    if (convnet_epochs > 0) {
      k::set_random_seed(1);
      k::Sequential convnet = main_job::convnet();
      convnet.compile(k::optimizers::Adam(1e-3), k::losses::SparseCategoricalCrossentropy(),
                      {"accuracy"});
      train(convnet, "convnet", convnet_epochs, x_train, y_train, x_test, y_test, out);
    }
  } catch (const k::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
