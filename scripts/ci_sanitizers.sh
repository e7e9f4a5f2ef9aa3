#!/usr/bin/env bash
# The sanitizer stages of CI (docs/testing.md), each runnable alone:
#   asan   clang 19 build with ASan + UBSan (build-asan), then the whole CTest suite in it
#   tsan   clang 19 build with TSan (build-tsan) of the concurrency tests, then those tests
# Usage: ci_sanitizers.sh [asan|tsan]...   (no argument: both)
# KILN_JOBS sets the build's parallel jobs; CTEST_JOBS the suite's (both default to the cores).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(asan tsan)
jobs=$(nproc 2>/dev/null || echo 2)

# The options shared with scripts/fuzz.sh; the suite also checks for use of a stack frame after
# it returned (which fuzz.sh leaves out: it costs memory and time on every call), and TSan's own.
source scripts/sanitizer_env.sh
export ASAN_OPTIONS=$ASAN_OPTIONS:detect_stack_use_after_return=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/sanitizers/tsan.supp

# The tests that run code on several threads (grep tests/ for std::thread, parallel_for, the
# thread pool, concurrent calls): executable, then a Catch2 test spec (names or [tags]).
tsan_tests=(
  "runtime_test:[runtime]"
  "function_test:concurrent calls trace once and share the cache"
  "aot_test:aot: separate instances run concurrently on several threads"
  "runtime_aot_model_test:kiln_aot_set_num_threads sizes the pool before its first use,kiln_aot_last_error(NULL) is per thread"
  "codegen_parallel_test:[parallel]"
  "codegen_gather_test:a large compiled gather runs in parallel and matches"
  "data_test:*prefetch*"
  "frontend_ops_test:name_scope nests per thread"
  "trace_test:traces nest per thread"
  "eager_test:eager ops on several threads share the cache"
  "codegen_module_test:kernels compiled on several threads compute what one module computes"
  "codegen_gemm_test:GEMM helpers are compiled once and shared by later functions"
)

stage_asan() {
  echo "== asan: building build-asan (clang 19, ASan + UBSan, libFuzzer targets)"
  bash scripts/sanitizer_build.sh asan
  echo "== asan: the whole suite"
  (cd build-asan && ctest --output-on-failure --timeout 1800 -j "${CTEST_JOBS:-$jobs}")
}

stage_tsan() {
  local targets=() seen=" "
  for entry in "${tsan_tests[@]}"; do
    local exe=${entry%%:*}
    [[ $seen == *" $exe "* ]] || targets+=("$exe")
    seen+="$exe "
  done
  echo "== tsan: building build-tsan (clang 19, TSan): ${targets[*]}"
  bash scripts/sanitizer_build.sh tsan "${targets[@]}"
  local failed=0
  for entry in "${tsan_tests[@]}"; do
    local exe=${entry%%:*} spec=${entry#*:}
    echo "== tsan: $exe \"$spec\""
    # -w NoTests: a spec that matches nothing (a renamed test) fails instead of passing.
    (cd build-tsan/tests && "./$exe" -w NoTests "$spec") || failed=1
  done
  return $failed
}

for stage in "${stages[@]}"; do
  case $stage in
    asan) stage_asan ;;
    tsan) stage_tsan ;;
    *) echo "ci_sanitizers: unknown stage '$stage' (asan or tsan)" >&2; exit 2 ;;
  esac
done
