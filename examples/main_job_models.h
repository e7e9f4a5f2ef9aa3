// The main job's two Fashion-MNIST models, shared by examples/fashion_mnist.cpp (which trains
// them), examples/dump_graphs.cpp (which draws them) and bench/keras_step_bench.cpp.
#pragma once

#include <kiln/kiln.h>

#include <string>

namespace main_job {

// The Keras basic-classification tutorial's MLP: Flatten, Dense 512 relu, Dense 10 softmax.
inline kiln::Sequential mlp(std::string name = "mlp") {
  namespace k = kiln;
  return k::Sequential(
      {
          k::layers::Flatten(/*input_shape=*/{28, 28}),
          k::layers::Dense(512, "relu"),
          k::layers::Dense(10, "softmax"),
      },
      std::move(name));
}

// The TensorFlow tutorial convnet: Conv2D 32 5×5 same relu, MaxPool 2, Conv2D 64 5×5 same relu,
// MaxPool 2, Flatten, Dense 1024 relu, Dropout 0.4, Dense 10 softmax.
inline kiln::Sequential convnet(std::string name = "convnet") {
  namespace k = kiln;
  return k::Sequential(
      {
          k::layers::Reshape({28, 28, 1}, /*input_shape=*/{28, 28}),
          k::layers::Conv2D(32, {5, 5}, {1, 1}, "same", "relu"),
          k::layers::MaxPooling2D({2, 2}),
          k::layers::Conv2D(64, {5, 5}, {1, 1}, "same", "relu"),
          k::layers::MaxPooling2D({2, 2}),
          k::layers::Flatten(),
          k::layers::Dense(1024, "relu"),
          k::layers::Dropout(0.4),
          k::layers::Dense(10, "softmax"),
      },
      std::move(name));
}

}  // namespace main_job
