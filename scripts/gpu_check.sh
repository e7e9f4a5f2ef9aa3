#!/usr/bin/env bash
# The one prepared check of Kiln's CUDA runtime on a real GPU (issue 14, "On a real GPU").
#
#   bash scripts/gpu_check.sh                        # here: build and stage gpu_check_bundle/
#   bash scripts/gpu_check.sh --run-bundle DIR [ARGS] # on the GPU machine: run it, ARGS to gpu_check
#
# Here it builds tools/gpu_check in its own Release build folder (build-gpucheck/, only that
# target; it links only the static runtime and the C++ runtime statically, so the GPU machine
# needs no LLVM, libkiln or toolchain), checks that it needs nothing but libc/libm/libpthread/
# libdl and the loader, runs `gpu_check --mock` once, and stages it in gpu_check_bundle/
# (git-ignored, a few MiB, well under the 64 MiB the device tool carries).
#
# Then, with a lent GPU (the device tool's `run`; ~15 minutes per task in all):
#   run(command="bash scripts/gpu_check.sh --run-bundle gpu_check_bundle",
#       carry=["gpu_check_bundle"], timeout_s=300)
# It finds libcuda.so.1 and libcublasLt.so.13 there (KILN_CUDA_DRIVER / KILN_CUBLASLT), runs
# gpu_check, prints how long each part took, and copies the report to $OUT/gpu_check_report.txt
# when $OUT is set. Expect well under a minute; 300 s leaves room for a rerun. Exit: gpu_check's
# (0 pass, 1 a check failed, 77 no usable driver), 2 for a bad bundle.
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
# Later phases add, as AOT libraries built here and carried in the bundle: the PTX kernels run
# through launch plans (the differential op suite as one library, each result against the CPU;
# fused elementwise GB/s against the D2D copy above), the GEMMs of compiled functions against
# cuBLASLt alone, and MLP and convnet training steps (results against the CPU, step times).
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
  t=$(now)
  rc=0
  "$bundle/gpu_check" "$@" 2>&1 | tee "$report" || rc=${PIPESTATUS[0]}
  echo "gpu_check.sh: gpu_check exited $rc after $(elapsed "$t"); $(elapsed "$start") in all"
  if [ -n "${OUT:-}" ]; then
    cp "$report" "$OUT/gpu_check_report.txt"
    echo "gpu_check.sh: report in \$OUT/gpu_check_report.txt"
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

rm -rf gpu_check_bundle
mkdir gpu_check_bundle
cp "$program" gpu_check_bundle/
cat > gpu_check_bundle/README <<EOF
Kiln gpu_check bundle (scripts/gpu_check.sh), built $(date -u '+%Y-%m-%d %H:%M UTC') from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' with local changes'): the GPU checks of Kiln's CUDA runtime, one static program.
Run on a GPU machine: bash scripts/gpu_check.sh --run-bundle gpu_check_bundle
EOF
echo "gpu_check.sh: staged gpu_check_bundle/ ($(du -sh gpu_check_bundle | cut -f1)) in $(elapsed "$start")"
echo "gpu_check.sh: next, with a lent GPU: run(command=\"bash scripts/gpu_check.sh --run-bundle" \
  "gpu_check_bundle\", carry=[\"gpu_check_bundle\"], timeout_s=300)"
