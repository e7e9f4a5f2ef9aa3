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

# Where a replayed failure's report says it failed: its first stack frame outside the sanitizers,
# libFuzzer and libc (memcpy, malloc ... called from the frame that matters).
first_frame() {
  grep -E '^ +#[0-9]+ ' "${1:--}" | grep -vE 'fuzzer::|__sanitizer|__interceptor_|__asan|__lsan|__ubsan| in (malloc|calloc|realloc|free|operator new|mem[a-z]+|str[a-z]+|__mem[a-z_]+|__str[a-z_]+) |libc\.so|sysdeps/' | head -1
}

# keras_h5_fuzz reads .h5 files in process (docs/fuzzing.md), where libhdf5's own crashes and
# hangs on malformed files, which users' loads survive in a child process, would end the run: it
# runs in fork mode past them, and then each failing input is replayed and counts only when the
# report's first frame (first_frame) is not in libhdf5. Leaks are not checked there: libhdf5
# leaks on its own error paths (a failed H5Fopen of a malformed file), which a report's stack
# cannot tell from Kiln's; the corpus replay of the sanitizer stage checks them.
libhdf5_failures_only() {
  local target=$1 artifacts=$2 since=$3 ok=0
  for input in $(find "$artifacts" -maxdepth 1 -type f -newer "$since" \
      \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \)); do
    if ASAN_OPTIONS=${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0} build-asan/fuzz/"$target" \
        -timeout=10 -rss_limit_mb=4096 -detect_leaks=0 "$input" >"$input.txt" 2>&1; then
      # A job of fork mode that died outside an input leaves an empty or innocent one.
      echo "== fuzz: $target: $input does not fail on its own"
      mkdir -p "$artifacts/unreproduced"
      mv "$input" "$input.txt" "$artifacts/unreproduced/"
      continue
    fi
    frame=$(first_frame "$input.txt")
    # An overflow of a buffer Kiln made and handed to libhdf5 (too small for what it asked for)
    # is Kiln's, though libhdf5 made the access: the buffer's allocation stack says whose it is.
    owner=$(sed -n '/allocated by/,$p' "$input.txt" | first_frame)
    if [[ $frame != *libhdf5* || ( -n $owner && $owner != *libhdf5* ) ]]; then
      echo "== fuzz: $target: a finding in Kiln: $input (report: $input.txt)"
      echo "$frame${owner:+ (buffer: $owner)}"
      ok=1
    else
      echo "== fuzz: $target: libhdf5's own failure (the child process contains it): $input"
      mkdir -p "$artifacts/libhdf5"
      mv "$input" "$input.txt" "$artifacts/libhdf5/"
    fi
  done
  return $ok
}

failed=()
for target in "${targets[@]}"; do
  work=build-asan/fuzz/work/$target
  artifacts=build-asan/fuzz/artifacts/$target
  mkdir -p "$work" "$artifacts"
  echo "== fuzz: $target for ${seconds}s"
  if [ "$target" = keras_h5_fuzz ]; then
    touch "$artifacts/.start"
    ASAN_OPTIONS=${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0} build-asan/fuzz/"$target" \
      -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -detect_leaks=0 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "fuzz/corpus/$target" \
      >"$artifacts/log.txt" 2>&1 || true
    if ! grep -q "INFO: fuzzed for" "$artifacts/log.txt"; then
      tail -30 "$artifacts/log.txt"
      echo "== fuzz: $target did not run its time (log: $artifacts/log.txt)"
      failed+=("$target")
    elif libhdf5_failures_only "$target" "$artifacts" "$artifacts/.start"; then
      grep -E "^#[0-9]+: cov" "$artifacts/log.txt" | tail -1
    else
      failed+=("$target")
    fi
    continue
  fi
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
