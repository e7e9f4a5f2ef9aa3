#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, in build-asan: clang 19, ASan + UBSan) and runs each for
# a bounded time on its seed corpus (fuzz/corpus/<target>/). Fails on any crash, sanitizer
# report, leak, timeout (a hang: one input over 10 s) or memory blow-up (docs/fuzzing.md).
# Usage: fuzz.sh [SECONDS] [TARGET...]   (default: 30 s each, every target: one per folder of
# fuzz/corpus, which is named after its target)
# New inputs the fuzzer finds go to build-asan/fuzz/work/<target>/ (not into the repository);
# a failing input is saved as build-asan/fuzz/artifacts/<target>/crash-... (or leak-, timeout-,
# oom-).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for folder in fuzz/corpus/*/; do
    folder=${folder%/}
    targets+=("${folder##*/}")
  done
fi

bash scripts/sanitizer_build.sh asan "${targets[@]}"

# The options scripts/ci_sanitizers.sh uses too, without its detect_stack_use_after_return (it
# costs memory and time on every call); libFuzzer's own -detect_leaks=1 is given below.
source scripts/sanitizer_env.sh

failed=()
for target in "${targets[@]}"; do
  work=build-asan/fuzz/work/$target
  artifacts=build-asan/fuzz/artifacts/$target
  mkdir -p "$work" "$artifacts"
  echo "== fuzz: $target for ${seconds}s"
  # The first corpus folder receives new inputs; the committed seeds are only read.
  if ! build-asan/fuzz/"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
      -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$artifacts/" \
      "$work" "fuzz/corpus/$target" >"$artifacts/log.txt" 2>&1; then
    tail -60 "$artifacts/log.txt"
    echo "== fuzz: $target FAILED (log: $artifacts/log.txt; input: $(ls -t "$artifacts" | grep -v log.txt | head -1))"
    failed+=("$target")
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|INFO: seed corpus" "$artifacts/log.txt" | tr '\n' ' '
    echo
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: every target ran ${seconds}s without a finding"
