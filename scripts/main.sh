#!/usr/bin/env bash
# Sets everything up, builds, and runs the main job: the tutorials replayed in C++ (tensors,
# gradients), then Fashion-MNIST trained with the Keras-style API: the MLP 784-512-10 and the
# TensorFlow tutorial convnet, each evaluated on the test set (outputs in ./fashion_mnist_out).
# MLP_EPOCHS and CONVNET_EPOCHS set the epochs (defaults 15 and 12; 0 skips a model).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/examples/tensor_tutorial
./build/examples/gradients_tutorial
./build/examples/fashion_mnist "${MLP_EPOCHS:-15}" "${CONVNET_EPOCHS:-12}" fashion_mnist_out
# The trained MLP compiled ahead of time into a shared library, used by a plain C program that
# classifies the test set (docs/aot.md).
if [ -d fashion_mnist_out/mlp_model ]; then
  ./build/tools/kiln aot fashion_mnist_out/mlp_model -o fashion_mnist_out/aot/libfashion.so
  cc -std=c99 -O2 examples/aot_classify.c -Ifashion_mnist_out/aot -Lfashion_mnist_out/aot \
    -lfashion -lz -Wl,-rpath,'$ORIGIN' -o fashion_mnist_out/aot/classify
  fashion_mnist_out/aot/classify /usr/share/datasets/fashion-mnist
fi
# The MLP's training step compiled ahead of time, and a plain C program that trains with it.
./build/examples/aot_train_step fashion_mnist_out/aot
cc -std=c99 -O2 examples/aot_train.c -Ifashion_mnist_out/aot -Lfashion_mnist_out/aot \
  -lmnist_train -lz -Wl,-rpath,'$ORIGIN' -o fashion_mnist_out/aot/train
fashion_mnist_out/aot/train /usr/share/datasets/fashion-mnist 2 fashion_mnist_out/aot/trained.safetensors
