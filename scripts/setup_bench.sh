#!/usr/bin/env bash
# Optional: the libraries benchmarks compare against (Kiln itself never needs them).
set -euo pipefail
# libopenblas-dev: gemm_bench's reference; libtorch-dev: bench/libtorch/fashion_mnist_torch.
packages=(libopenblas-dev libtorch-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
