#!/usr/bin/env bash
# Kiln against libtorch and the machine's ceilings, in one sitting: issue 16's table.
#
#   bash bench/compare.sh            # everything (about 15 minutes on 2 cores)
#   QUICK=1 bash bench/compare.sh    # fewer epochs and calls (about 5 minutes), for a smoke run
#
# Builds what it needs (Kiln in ./build; libtorch's side in ./build-torch, from Debian's
# libtorch-dev, which scripts/setup_bench.sh installs), then runs Kiln and libtorch one after the
# other for each measure and prints the table of docs/performance.md ("Kiln against libtorch"):
# medians, each measure as a ratio against libtorch's best configuration (1 thread, or 2 with
# OMP_WAIT_POLICY=passive) or against its ceiling (the FMA peak, memcpy). Kiln's training runs
# have KILN_CACHE=off (cold compiles); the warm row fills a cache directory of its own first.
# OPENBLAS_CORETYPE is unset for every run (this machine sets it to Haswell, which halves
# OpenBLAS on AVX-512). Raw outputs go to $OUT (default: a new folder under /tmp), named per run.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=${QUICK:-0}
if [ "$quick" = 1 ]; then
  mlp_epochs=2 conv_epochs=2 infer_calls=200
else
  mlp_epochs=4 conv_epochs=3 infer_calls=0  # 0: each program's default
fi
out=${OUT:-$(mktemp -d /tmp/kiln-compare.XXXXXX)}
mkdir -p "$out"
unset OPENBLAS_CORETYPE

echo "== setup and build (logs in $out)"
bash scripts/setup.sh > "$out/setup.log" 2>&1
bash scripts/setup_bench.sh >> "$out/setup.log" 2>&1
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > "$out/build.log" 2>&1
cmake --build build --target fashion_mnist compile_bench elementwise_bench aot_bench eager_bench \
  >> "$out/build.log" 2>&1
cmake -S . -B build-torch -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BENCH_LIBTORCH=ON \
  > "$out/build-torch.log" 2>&1
cmake --build build-torch --target fashion_mnist_torch eager_torch >> "$out/build-torch.log" 2>&1
torch=build-torch/bench/libtorch
[ -x "$torch/fashion_mnist_torch" ] || {
  echo "libtorch's side did not build (is libtorch-dev installed?): see $out/build-torch.log"
  exit 1
}

# Runs a command, keeping its output in $out/<name>.txt and its peak resident set (KiB) in
# $out/<name>.rss.
run() {
  local name=$1
  shift
  echo "-- $name: $*"
  /usr/bin/time -f "%M" -o "$out/$name.rss" "$@" > "$out/$name.txt" 2>&1 || {
    echo "failed: $name (see $out/$name.txt)"
    exit 1
  }
}
# The value of key=VALUE in the first line of $out/<name>.txt that has `match`.
field() { grep -m1 -- "$2" "$out/$1.txt" | tr ' ' '\n' | sed -n "s/^$3=//p"; }
# Google Benchmark's median of `field` (real_time, or a counter such as bytes_per_second) for
# benchmark `name` in the JSON file $out/<run>.json.
gbench() {
  python3 - "$out/$1.json" "$2" "$3" << 'EOF'
import json, sys
path, name, field = sys.argv[1:]
for b in json.load(open(path))["benchmarks"]:
    if b.get("run_name") == name and b.get("aggregate_name") == "median":
        print(b[field])
        break
else:
    sys.exit(f"no median of {name} in {path}")
EOF
}
torch1() { run "$1_t1" env OMP_NUM_THREADS=1 "${@:2}" --threads 1; }
torch2() { run "$1_t2" env OMP_WAIT_POLICY=passive "${@:2}" --threads 2; }
min() { python3 -c "import sys; print(min(float(a) for a in sys.argv[1:]))" "$@"; }
calc() { python3 -c "print(format($1, '.${2:-2}f'))"; }

date > "$out/sitting.txt"
uptime >> "$out/sitting.txt"
git log -1 --oneline >> "$out/sitting.txt" 2>/dev/null || true
echo "== sitting: $(tr '\n' ' ' < "$out/sitting.txt")"

echo "== training epochs (Fashion-MNIST, batch 128, validation_split 0.1)"
run kiln_mlp env KILN_CACHE=off build/examples/fashion_mnist "$mlp_epochs" 0 "$out/kiln_mlp_out"
torch1 torch_mlp "$torch/fashion_mnist_torch" --model mlp --epochs "$mlp_epochs"
torch2 torch_mlp "$torch/fashion_mnist_torch" --model mlp --epochs "$mlp_epochs"
run kiln_conv env KILN_CACHE=off build/examples/fashion_mnist 0 "$conv_epochs" "$out/kiln_conv_out"
torch1 torch_conv "$torch/fashion_mnist_torch" --model convnet --epochs "$conv_epochs"
torch2 torch_conv "$torch/fashion_mnist_torch" --model convnet --epochs "$conv_epochs"

# "mlp: test loss ..., test accuracy ... after N epochs; X s per epoch (first Y s)"
kiln_epoch() { sed -n "s/^$2: .*; \([0-9.e+-]*\) s per epoch (first \([0-9.e+-]*\) s).*/\1 \2/p" "$out/$1.txt"; }
read -r k_mlp k_mlp_first < <(kiln_epoch kiln_mlp mlp)
read -r k_conv k_conv_first < <(kiln_epoch kiln_conv convnet)
t_mlp=$(min "$(field torch_mlp_t1 model=mlp median_epoch_s)" "$(field torch_mlp_t2 model=mlp median_epoch_s)")
t_conv=$(min "$(field torch_conv_t1 model=convnet median_epoch_s)" \
  "$(field torch_conv_t2 model=convnet median_epoch_s)")

echo "== batch-1 inference"
run kiln_aot build/bench/aot_bench "$out/aot"
infer_args=(--infer)
[ "$infer_calls" != 0 ] && infer_args+=(--calls "$infer_calls")
torch1 torch_infer "$torch/fashion_mnist_torch" --model convnet "${infer_args[@]}"
torch2 torch_infer "$torch/fashion_mnist_torch" --model convnet "${infer_args[@]}"
k_infer=$(sed -n 's/^convnet .*steady per call: aot *\([0-9.]*\) us.*/\1/p' "$out/kiln_aot.txt")
t_infer=$(python3 -c "
import re, sys
best = min(float(m) for f in sys.argv[1:] for m in re.findall(r'mode=infer .*median_us=([0-9.]+)', open(f).read()))
print(best)" "$out/torch_infer_t1.txt" "$out/torch_infer_t2.txt")

echo "== compile time (the MLP's training step), cold and from a warm cache"
reps=$([ "$quick" = 1 ] && echo 3 || echo 5)
bench_args=(--benchmark_filter=BM_MlpFirstCall --benchmark_repetitions="$reps"
  --benchmark_report_aggregates_only=true --benchmark_out_format=json)
# Cold is each process's first compile. The GEMM helpers (part bodies, micro-kernels) come
# prebuilt with libkiln for this machine (KILN_PREBUILT_HELPERS); the "without" row compiles them
# too, and later compiles in one process link those the first compiled ("same process").
for i in $(seq 1 "$reps"); do
  for mode in on off; do
    run "compile_cold_${mode}_$i" env KILN_CACHE=off KILN_PREBUILT_HELPERS=$mode \
      build/bench/compile_bench --benchmark_filter='^BM_MlpFirstCall/' \
      --benchmark_min_time=0.001 --benchmark_out_format=json \
      --benchmark_out="$out/compile_cold_${mode}_$i.json"
  done
done
run compile_same env KILN_CACHE=off KILN_PREBUILT_HELPERS=off build/bench/compile_bench \
  "${bench_args[@]}" \
  --benchmark_out="$out/compile_same.json"
rm -rf "$out/cache"
run compile_warm env -u KILN_CACHE KILN_CACHE_DIR="$out/cache" build/bench/compile_bench \
  "${bench_args[@]}" --benchmark_out="$out/compile_warm.json"
# (The warm run's first repetition compiles and fills the cache; the median is of hits.)
first_call_median() {
  python3 -c "
import json, statistics, sys
times = [b['real_time'] for f in sys.argv[1:] for b in json.load(open(f))['benchmarks']
         if b.get('run_name') == 'BM_MlpFirstCall/real_time']
print(format(statistics.median(times), '.1f'))" "$@"
}
cold_ms=$(first_call_median "$out"/compile_cold_on_*.json)
cold_off_ms=$(first_call_median "$out"/compile_cold_off_*.json)
same_ms=$(calc "$(gbench compile_same BM_MlpFirstCall/real_time real_time)" 1)
warm_ms=$(calc "$(gbench compile_warm BM_MlpFirstCall/real_time real_time)" 1)

echo "== fused elementwise chain (16M f32) and memcpy"
for t in 1 2; do
  run "chain_t$t" env KILN_NUM_THREADS=$t build/bench/elementwise_bench \
    --benchmark_filter='BM_ChainFunction|BM_Memcpy' --benchmark_repetitions="$reps" \
    --benchmark_report_aggregates_only=true --benchmark_out_format=json \
    --benchmark_out="$out/chain_t$t.json"
done

echo "== eager GradientTape step"
run kiln_eager build/bench/eager_bench
torch1 torch_eager "$torch/eager_torch"
torch2 torch_eager "$torch/eager_torch"
k_eager=$(field kiln_eager "bench=step impl=kiln" median_ms)
t_eager=$(min "$(field torch_eager_t1 "bench=step impl=libtorch" median_ms)" \
  "$(field torch_eager_t2 "bench=step impl=libtorch" median_ms)")

# Peak resident set of the MLP runs (dataset included on both sides: same program shape).
k_rss=$(($(cat "$out/kiln_mlp.rss") / 1024))
t_rss=$(($(min "$(cat "$out/torch_mlp_t1.rss")" "$(cat "$out/torch_mlp_t2.rss")" | cut -d. -f1) / 1024))

# The full name (arguments and /real_time included) of the benchmark starting with $2.
chain_name() {
  python3 - "$out/$1.json" "$2" << 'EOF'
import json, sys
path, prefix = sys.argv[1:]
names = [b["run_name"] for b in json.load(open(path))["benchmarks"] if b["run_name"].startswith(prefix)]
print(names[0] if names else sys.exit(f"no {prefix} in {path}"))
EOF
}
conv_flop=4.4e12  # per epoch: 10.5 GFLOP a step, 422 steps (docs/performance.md)
echo
echo "== Kiln against libtorch ($(head -1 "$out/sitting.txt"); outputs in $out)"
printf '| %-52s | %-12s | %-12s | %-7s | %-8s |\n' measure Kiln libtorch ratio target
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..54})" "$(printf -- '-%.0s' {1..14})" \
  "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..9})" "$(printf -- '-%.0s' {1..10})"
row() { printf '| %-52s | %-12s | %-12s | %-7s | %-8s |\n' "$@"; }
row "convnet epoch, s (median after the first)" "$(calc "$k_conv")" "$(calc "$t_conv")" \
  "$(calc "$k_conv / $t_conv")" "<= 0.66"
row "  its share of the 491 GFLOP/s FMA peak" \
  "$(calc "$conv_flop / $k_conv / 491e9 * 100" 0)%" "$(calc "$conv_flop / $t_conv / 491e9 * 100" 0)%" \
  "" ">= 45%"
row "MLP epoch, s" "$(calc "$k_mlp" 3)" "$(calc "$t_mlp" 3)" "$(calc "$k_mlp / $t_mlp")" "<= 0.6"
row "batch-1 convnet inference, us (Kiln: AOT library)" "$(calc "$k_infer" 0)" "$(calc "$t_infer" 0)" \
  "$(calc "$k_infer / $t_infer")" "<= 0.8"
row "MLP training step compile, cold, ms" "$cold_ms" "" "" "<= 150"
row "  without the prebuilt GEMM helpers, ms" "$cold_off_ms" "" "" ""
row "  a later compile in the same process, ms" "$same_ms" "" "" ""
row "convnet: first epoch minus a later one, s" "$(calc "$k_conv_first - $k_conv" 1)" "" "" "<= 1"
row "MLP step compile, second process (warm cache), ms" "$warm_ms" "" "" "<= 20"
row "peak RSS training the MLP, MB" "$k_rss" "$t_rss" "$(calc "$k_rss / $t_rss")" "< 1"
for t in 1 2; do
  f=$(gbench "chain_t$t" "$(chain_name "chain_t$t" BM_ChainFunction)" bytes_per_second)
  m=$(gbench "chain_t$t" "$(chain_name "chain_t$t" BM_Memcpy)" bytes_per_second)
  row "fused chain via kiln::function ÷ memcpy, $t thread(s)" "$(calc "$f / 1e9" 1) GB/s" \
    "memcpy $(calc "$m / 1e9" 1)" "$(calc "$f / $m")" ">= 0.6"
done
row "eager GradientTape MLP step, ms" "$k_eager" "$t_eager" "$(calc "$k_eager / $t_eager")" ""
