// The main job's two Fashion-MNIST models, shared by examples/fashion_mnist.cpp (which trains
// them), examples/dump_graphs.cpp (which draws them) and bench/keras_step_bench.cpp, and the
// training step that examples/aot_train_step.cpp compiles ahead of time and gpu_check's bundle
// (tools/gpu_check/bundle_builder.cpp) checks on a GPU.
#pragma once

#include <kiln/kiln.h>

#include <span>
#include <string>
#include <vector>

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

// A traced training step of `model` (built already) on raw Fashion-MNIST batches: u8 images
// [B, 28, 28] scaled to [0, 1] and u8 labels [B] in; the batch's mean sparse cross-entropy and
// the number of images it classified correctly out; `optimizer`'s update of the weights. The
// step refers to `model` and `optimizer`, which must outlive it.
template <class Optimizer>
auto train_step(kiln::Sequential& model, Optimizer& optimizer, std::string name) {
  namespace k = kiln;
  return k::function(
      [&model, &optimizer, loss_fn = k::losses::SparseCategoricalCrossentropy()](
          const k::Tensor& images, const k::Tensor& labels) {
        k::Tensor x = k::cast(images, k::f32) / 255.f;
        k::Tensor y = k::cast(labels, k::i32);
        k::GradientTape tape;
        k::Tensor probs = model(x, /*training=*/true);
        k::Tensor loss = loss_fn(y, probs);
        std::vector<k::Variable> vars = model.trainable_weights();
        optimizer.apply_gradients(tape.gradient(loss, std::span<const k::Variable>(vars)), vars);
        k::Tensor correct =
            k::reduce_sum(k::cast(k::equal(k::argmax(probs, 1, k::i32), y), k::f32));
        return std::vector<k::Tensor>{loss, correct};
      },
      std::move(name));
}

}  // namespace main_job
