#!/usr/bin/env bash
# Configures and builds one of Kiln's clang 19 sanitizer builds (docs/testing.md):
#   asan  build-asan: ASan + UBSan over everything, plus the libFuzzer targets (fuzz/)
#   tsan  build-tsan: TSan
# Usage: sanitizer_build.sh asan|tsan [TARGET...]   (no targets: everything)
# KILN_JOBS sets the parallel jobs (default: the number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: sanitizer_build.sh asan|tsan [TARGET...]}
shift
case $kind in
  asan) options=(-DKILN_SANITIZE=address,undefined -DKILN_BUILD_FUZZ=ON) ;;
  tsan) options=(-DKILN_SANITIZE=thread -DKILN_BUILD_FUZZ=OFF) ;;
  *) echo "sanitizer_build: unknown build '$kind' (asan or tsan)" >&2; exit 2 ;;
esac
bash scripts/setup.sh  # clang-19 and libclang-rt-19-dev among the rest; quick when all is there
dir=build-$kind
mkdir -p "$dir"
jobs=${KILN_JOBS:-$(nproc 2>/dev/null || echo 2)}
# -O1 with line tables: readable sanitizer stacks, quick to compile, not too slow to run.
# NDEBUG as in Release, so the code checked is the code users run.
flags="-O1 -gline-tables-only -DNDEBUG"
cmake -S . -B "$dir" -G Ninja -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="$flags" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" -DKILN_BUILD_BENCH=OFF "${options[@]}" \
  >"$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; exit 1; }
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$dir" -j "$jobs" "${targets[@]}"
