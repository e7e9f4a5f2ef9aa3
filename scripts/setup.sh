#!/usr/bin/env bash
# Installs what Kiln needs from Debian's packages (graphviz: `kiln dump --format svg/html`;
# chromium: the headless-browser test of the HTML page; clang-19 and libclang-rt-19-dev: the
# sanitizer and fuzzing stages of CI; libhdf5-dev: Keras .h5 weight files, python3-h5py: the tests'
# cross-checks of them). Idempotent:
# does nothing slow when all is there.
set -euo pipefail

packages=(build-essential cmake ninja-build llvm-19-dev libfmt-dev catch2 libbenchmark-dev
          zlib1g-dev nlohmann-json3-dev libcli11-dev dataset-fashion-mnist graphviz chromium
          clang-19 libclang-rt-19-dev libhdf5-dev python3-h5py)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
