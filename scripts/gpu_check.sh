#!/usr/bin/env bash
# The one prepared check of Kiln's CUDA runtime on a real GPU (issue 14, "On a real GPU").
#
#   bash scripts/gpu_check.sh                        # here: build and stage gpu_check_bundle/
#   bash scripts/gpu_check.sh --run-bundle DIR [ARGS] # on the GPU machine: run it, ARGS to gpu_check
#
# Here it builds tools/gpu_check in its own Release build folder (build-gpucheck/, only that
# target; it links only the static runtime and the C++ runtime statically, so the GPU machine
# needs no LLVM, libkiln or toolchain), checks that it needs nothing but libc/libm/libpthread/
# libdl and the loader, and runs `gpu_check --mock` once. Then phase 2's builder,
# tools/gpu_check/build_bundle.cpp (gpu_check_bundle, linked against libkiln, so built in the
# configured CUDA build folder $KILN_BUNDLE_BUILD, default build/, and run only here), compiles
# the AOT GPU libraries for $KILN_GPU_ARCH (default sm_90, the H100) with their inputs and the
# CPU's expected values into gpu_check_bundle/ (git-ignored), next to gpu_check. Every library
# must need only libc/libm/libpthread/libdl, the staged gpu_check --mock must pass (it reads the
# manifest, loads every library and checks its data files, and runs the small GEMM library, whose
# plan launches no kernel, on the mock cuBLASLt), and the bundle must stay under 60 MiB (the
# device tool carries 64 MiB; it is about 30 MiB). About a minute here with the build up to date.
#
# Then, with a lent GPU (the device tool's `run`; ~15 minutes per task in all):
#   run(command="bash scripts/gpu_check.sh --run-bundle gpu_check_bundle",
#       carry=["gpu_check_bundle"], timeout_s=300)
# It finds libcuda.so.1 and libcublasLt.so.13 there (KILN_CUDA_DRIVER / KILN_CUBLASLT), runs
# gpu_check (phase 2 runs because the manifest lies next to it), prints how long each part took,
# and copies the report to $OUT/gpu_check_report.txt and the final table to
# $OUT/gpu_check_table.txt when $OUT is set. Expect one to two minutes; 300 s leaves room for a
# rerun. Exit: gpu_check's (0 pass, 1 a check failed, 77 no usable driver), 2 for a bad bundle.
#
# Phase 1 (now) checks:
#   - the driver: driver_status() (reason, version, device count); each device's name, arch, SMs,
#     memory;
#   - copies: H2D/D2D/D2H round trips at odd sizes and offsets, a fill, and the bandwidth of
#     256 MiB H2D, D2H (pageable host memory) and D2D (the ceiling elementwise kernels are to be
#     compared against);
#   - cuBLASLt: cublasLtGetVersion, a handle in the driver's primary context with no cudart, and
#     for f32 (FP32 compute), f32 (TF32) and f64, every transpose pair x epilogue {none, bias,
#     relu, bias+relu} x M,N,K in {1,3,17,64} (all 64 combinations) and 128x784x512: the
#     heuristic's algorithm count and workspace sizes, the result against a CPU reference GEMM
#     (normalised error; FP32 <= 1e-5, TF32 <= 5e-3, f64 <= 1e-12), C==D in place with beta != 0,
#     beta = 0 with D full of NaN, operands at 16- (not 32-) byte aligned offsets inside one
#     buffer, and no byte outside D written;
#   - GEMM timings: cuBLASLt f32 FP32 and TF32 at 1024^3, 4096^3, 8192^3 (if memory allows) and
#     128x784x512, in TFLOP/s, the median of 15 samples after warm-up (steady_clock around
#     queued GEMMs + cuStreamSynchronize; no CUDA events in the driver table yet), each result
#     spot-checked against the CPU.
#
# Phase 2 (tools/gpu_check/phase2.h) runs the bundle's AOT GPU libraries (dlopen, NAME_create,
# NAME_run from host memory, NAME_run_device from device memory), every result against the CPU's
# (the JIT's here; f32 within atol + rtol·|want|, about 1e-4 relative, integers and bools
# exactly):
#   - the differential op suite as 7 libraries: elementwise, broadcast and unary math (exp, log,
#     tanh, erf, pow, ...); comparisons, logic, select and casts between every dtype; reductions
#     over rows, columns, a middle axis and all axes, argmax/argmin, softmax/log_softmax;
#     transposes, concat, slices, pad, gather, tile, one_hot, stack; conv2d, max/avg pooling and
#     their gradients; seeded random ops (the CPU's Philox numbers); matmuls small (a loop
#     kernel), with bias+ReLU (cuBLASLt's epilogue), transposed and batched;
#   - the main job's MLP (RMSprop) and convnet (SGD: no slots, to keep the bundle small)
#     training steps at batch 128, 3 steps: each step's loss and correct count, and 512 samples
#     of every weight afterwards (NAME_save_weights);
#   - a GEMM sweep relu(a·b + bias) at 1024³, 4096³ and 128x784x512, and a fused elementwise
#     chain over 64M f32 (operands generated there; sampled outputs against the CPU);
# and times them (median after warm-up): each GEMM's TFLOP/s against cuBLASLt alone at the same
# shape (phase 1), the chain's GB/s against the D2D copy (phase 1), the training steps' ms/step,
# with NAME_run_device (no host copies) and NAME_run (with them). A final table sums it up.
set -euo pipefail
cd "$(dirname "$0")/.."

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# The first file named $1 in the loader's cache or under the folders after it (never a stub).
find_library() {
  local name=$1 found dir
  shift
  found=$(ldconfig -p 2>/dev/null | awk -v n="$name" '$1 == n { print $NF; exit }')
  for dir in "$@"; do
    [ -z "$found" ] || break
    [ -d "$dir" ] && found=$(find "$dir/" -name "$name" -not -path '*/stubs/*' -print -quit 2>/dev/null)
  done
  echo "$found"
}

if [ "${1:-}" = "--run-bundle" ]; then
  bundle=${2:?usage: gpu_check.sh --run-bundle DIR [gpu_check arguments]}
  shift 2
  [ -x "$bundle/gpu_check" ] || { echo "gpu_check.sh: no $bundle/gpu_check (build it here first)"; exit 2; }
  start=$(now)
  echo "gpu_check.sh: $(cat "$bundle/README" 2>/dev/null | head -n 1)"
  echo "gpu_check.sh: on $(hostname), $(date -u '+%Y-%m-%d %H:%M UTC')"
  command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
      --format=csv,noheader 2>/dev/null | sed 's/^/gpu_check.sh: nvidia-smi: /' || true
  t=$(now)
  if [ -z "${KILN_CUDA_DRIVER:-}" ]; then
    driver=$(find_library libcuda.so.1 /usr/local/nvidia /usr/lib /usr/lib64 /usr/local/cuda)
    [ -n "$driver" ] && export KILN_CUDA_DRIVER=$driver
  fi
  if [ -z "${KILN_CUBLASLT:-}" ]; then
    cublaslt=$(find_library libcublasLt.so.13 /usr/local/cuda /opt /usr/lib /usr/local/lib)
    [ -n "$cublaslt" ] && export KILN_CUBLASLT=$cublaslt
  fi
  echo "gpu_check.sh: KILN_CUDA_DRIVER=${KILN_CUDA_DRIVER:-(unset: the loader searches)}" \
    "KILN_CUBLASLT=${KILN_CUBLASLT:-(unset: the loader searches)} (found in $(elapsed "$t"))"
  report=$(mktemp)
  table=()
  [ -n "${OUT:-}" ] && table=(--table "$OUT/gpu_check_table.txt")
  t=$(now)
  rc=0
  "$bundle/gpu_check" "${table[@]}" "$@" 2>&1 | tee "$report" || rc=${PIPESTATUS[0]}
  echo "gpu_check.sh: gpu_check exited $rc after $(elapsed "$t"); $(elapsed "$start") in all"
  if [ -n "${OUT:-}" ]; then
    cp "$report" "$OUT/gpu_check_report.txt"
    echo "gpu_check.sh: report in \$OUT/gpu_check_report.txt$([ -f "$OUT/gpu_check_table.txt" ] &&
      echo ', table in $OUT/gpu_check_table.txt')"
  fi
  rm -f "$report"
  exit "$rc"
fi

[ $# -eq 0 ] || { echo "usage: gpu_check.sh [--run-bundle DIR [gpu_check arguments]]"; exit 2; }
start=$(now)
build=build-gpucheck
log=$build/gpu_check_build.log
mkdir -p "$build"
t=$(now)
# Tests, examples and benchmarks off: only the runtime and gpu_check are built.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_TESTS=OFF \
  -DKILN_BUILD_EXAMPLES=OFF -DKILN_BUILD_BENCH=OFF > "$log" 2>&1 || { cat "$log"; exit 1; }
# Through the shared build lock where there is one (several engineers share this machine).
lock=()
command -v flock >/dev/null && lock=(flock /tmp/kiln-build.lock)
"${lock[@]}" cmake --build "$build" --target gpu_check >> "$log" 2>&1 ||
  { tail -n 50 "$log"; exit 1; }
echo "gpu_check.sh: built $build/tools/gpu_check in $(elapsed "$t")"

program=$build/tools/gpu_check
unexpected=$(ldd "$program" | awk '{ print $1 }' |
  grep -vE '^(linux-vdso\.so|libc\.so|libm\.so|libpthread\.so|libdl\.so|/lib64/ld-linux|/lib/ld-linux)' || true)
if [ -n "$unexpected" ]; then
  echo "gpu_check.sh: $program needs more than libc/libm/libpthread/libdl: $unexpected"
  exit 1
fi

t=$(now)
"$program" --mock > "$build/mock_report.txt" 2>&1 ||
  { cat "$build/mock_report.txt"; echo "gpu_check.sh: gpu_check --mock failed"; exit 1; }
echo "gpu_check.sh: gpu_check --mock passed in $(elapsed "$t")"

# Phase 2's builder links libkiln (LLVM), so it is built where the rest of Kiln is: a configured
# build folder with the CUDA toolkit (its ptxas and fatbinary build the libraries).
bundle_build=${KILN_BUNDLE_BUILD:-build}
arch=${KILN_GPU_ARCH:-sm_90}
if [ ! -f "$bundle_build/CMakeCache.txt" ]; then
  echo "gpu_check.sh: $bundle_build is not a configured build folder (set KILN_BUNDLE_BUILD, or"
  echo "  cmake -S . -B $bundle_build -G Ninja -DCMAKE_BUILD_TYPE=Release)"
  exit 1
fi
grep -q '^KILN_ENABLE_CUDA:BOOL=ON' "$bundle_build/CMakeCache.txt" ||
  { echo "gpu_check.sh: $bundle_build was configured without CUDA (KILN_ENABLE_CUDA)"; exit 1; }
t=$(now)
"${lock[@]}" cmake --build "$bundle_build" --target gpu_check_bundle >> "$log" 2>&1 ||
  { tail -n 50 "$log"; exit 1; }
echo "gpu_check.sh: built $bundle_build/tools/gpu_check_bundle in $(elapsed "$t")"

rm -rf gpu_check_bundle
t=$(now)
KILN_CACHE=off "$bundle_build/tools/gpu_check_bundle" gpu_check_bundle --gpu-arch "$arch" ||
  { echo "gpu_check.sh: building the phase-2 libraries failed"; exit 1; }
echo "gpu_check.sh: phase-2 libraries for $arch built in $(elapsed "$t")"
cp "$program" gpu_check_bundle/
for library in gpu_check_bundle/*.so; do
  unexpected=$(readelf -d "$library" | awk '/\(NEEDED\)/ { gsub(/[][]/, "", $NF); print $NF }' |
    grep -vE '^(libc\.so|libm\.so|libpthread\.so|libdl\.so|ld-linux)' || true)
  if [ -n "$unexpected" ]; then
    echo "gpu_check.sh: $library needs more than libc/libm/libpthread/libdl: $unexpected"
    exit 1
  fi
done
cat > gpu_check_bundle/README <<EOF
Kiln gpu_check bundle (scripts/gpu_check.sh), built $(date -u '+%Y-%m-%d %H:%M UTC') from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' with local changes'): the GPU checks of Kiln's CUDA runtime, one static program, and phase 2's AOT libraries for $arch (manifest.txt).
Run on a GPU machine: bash scripts/gpu_check.sh --run-bundle gpu_check_bundle
EOF
# The staged bundle as the GPU machine will see it, on the mock driver: the manifest, every
# library's symbols and files, and the small GEMM library run (the others need a GPU or LLVM).
t=$(now)
gpu_check_bundle/gpu_check --mock > "$build/bundle_mock_report.txt" 2>&1 ||
  { cat "$build/bundle_mock_report.txt"; echo "gpu_check.sh: the staged bundle fails --mock"; exit 1; }
echo "gpu_check.sh: gpu_check_bundle/gpu_check --mock passed in $(elapsed "$t")" \
  "($(grep -c 'not run here' "$build/bundle_mock_report.txt") libraries checked without running)"
bytes=$(du -sb gpu_check_bundle | cut -f1)
if [ "$bytes" -ge $((60 << 20)) ]; then
  echo "gpu_check.sh: gpu_check_bundle/ is $((bytes >> 20)) MiB, over the 60 MiB budget (the device tool carries 64 MiB)"
  exit 1
fi
echo "gpu_check.sh: staged gpu_check_bundle/ ($(du -sh gpu_check_bundle | cut -f1), $(ls gpu_check_bundle/*.so | wc -l) libraries) in $(elapsed "$start")"
echo "gpu_check.sh: next, with a lent GPU: run(command=\"bash scripts/gpu_check.sh --run-bundle" \
  "gpu_check_bundle\", carry=[\"gpu_check_bundle\"], timeout_s=300)"
