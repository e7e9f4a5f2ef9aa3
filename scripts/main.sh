#!/usr/bin/env bash
# Sets everything up, builds, and runs the main job: the tensor tutorial replayed in C++.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/examples/tensor_tutorial
