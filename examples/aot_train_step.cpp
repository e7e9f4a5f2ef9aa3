// Compiles the main job's MLP training step ahead of time into a shared library that a plain C
// program trains from (examples/aot_train.c): the step takes a batch of raw Fashion-MNIST bytes
// (u8 images [B, 28, 28], u8 labels [B]), scales the images, runs the model, the sparse
// cross-entropy loss and an RMSprop update, and returns the batch's mean loss and the number of
// images it classified correctly. The weights and RMSprop's slots live in the library's model
// instance.
//
//   build/examples/aot_train_step OUT_DIR [BATCH=128]   # writes OUT_DIR/libmnist_train.so, .h
#include <kiln/kiln.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "main_job_models.h"

namespace k = kiln;

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s OUT_DIR [BATCH]\n", argv[0]);
    return 2;
  }
  const int64_t batch = argc == 3 ? std::atoll(argv[2]) : 128;
  if (batch <= 0) {
    std::fprintf(stderr, "BATCH must be a positive integer\n");
    return 2;
  }
  try {
    k::set_random_seed(1);
    k::Sequential mlp = main_job::mlp();
    mlp(k::zeros({1, 28, 28}));  // builds the weights
    k::optimizers::RMSprop rmsprop(1e-3);
    auto step = main_job::train_step(mlp, rmsprop, "mnist_train");
    const k::aot::Library lib = k::aot::compile(
        step, {k::TensorSpec({batch, 28, 28}, k::u8), k::TensorSpec({batch}, k::u8)},
        {.name = "mnist_train", .out_dir = argv[1]});
    std::printf("wrote %s and %s\n", lib.library.c_str(), lib.header.c_str());
    return 0;
  } catch (const k::Error& e) {
    std::fprintf(stderr, "aot_train_step: %s\n", e.what());
    return 1;
  }
}
