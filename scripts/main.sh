#!/usr/bin/env bash
# Sets everything up, builds, and runs the main job: the tutorials replayed in C++ (tensors,
# gradients), then Fashion-MNIST trained with the Keras-style API (the MLP 784-512-10; outputs
# in ./fashion_mnist_out). FASHION_EPOCHS sets the number of epochs (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/examples/tensor_tutorial
./build/examples/gradients_tutorial
./build/examples/fashion_mnist "${FASHION_EPOCHS:-15}" fashion_mnist_out
