#!/usr/bin/env bash
# tools/gpu_check (scripts/gpu_check.sh's program) without a GPU: `--mock` passes every check on
# the mock driver and mock cuBLASLt; with no driver, or the toolkit's stub, it reports why and
# exits 77 (skip); a bad argument exits 2; and it needs nothing but libc, libm, libpthread, libdl
# and the loader, so it runs on a GPU machine that has none of this build's libraries.
# Usage: gpu_check_test.sh GPU_CHECK [STUB_LIBCUDA]
set -u
program=$1
stub=${2:-}
status=0
fail() {
  echo "gpu_check_test: $*"
  status=1
}
[ -x "$program" ] || { echo "gpu_check_test: missing $program"; exit 2; }

out=$("$program" --mock 2>&1)
rc=$?
echo "$out" | tail -n 20
[ $rc -eq 0 ] || fail "gpu_check --mock exited $rc, not 0"
grep -q '^gpu_check: PASS (0 failed checks)' <<<"$out" || fail "gpu_check --mock reports no PASS"
grep -q 'f32 (FP32 compute)  1024 cases, 0 failed' <<<"$out" ||
  fail "gpu_check --mock did not run the 1024 FP32 GEMM cases"
grep -q 'f64                 1024 cases, 0 failed' <<<"$out" ||
  fail "gpu_check --mock did not run the 1024 f64 GEMM cases"
# No bundle lies next to the build's gpu_check: it says so (scripts/gpu_check.sh runs the staged
# one's --mock, which checks the bundle and runs its small GEMM libraries on the mock).
grep -q 'skipped: no bundle' <<<"$out" || fail "gpu_check --mock does not say it has no bundle"
grep -q '^phase 1 (the mock driver: not measurements):' <<<"$out" ||
  fail "gpu_check --mock prints no final table"

out=$(KILN_CUDA_DRIVER=/nonexistent/libcuda.so.1 "$program" 2>&1)
rc=$?
echo "$out" | tail -n 2
[ $rc -eq 77 ] || fail "gpu_check without a driver exited $rc, not 77"
grep -q '^gpu_check: SKIP: no driver: ' <<<"$out" || fail "gpu_check without a driver says not 'no driver'"

if [ -n "$stub" ] && [ -f "$stub" ]; then
  out=$(KILN_CUDA_DRIVER=$stub "$program" 2>&1)
  rc=$?
  [ $rc -eq 77 ] || fail "gpu_check on the stub libcuda exited $rc, not 77"
  grep -q '^gpu_check: SKIP: stub: ' <<<"$out" || fail "gpu_check on the stub says not 'stub'"
fi

"$program" --no-such-flag >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || fail "gpu_check --no-such-flag exited $rc, not 2"
"$program" --phase2 somewhere --no-phase2 >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || fail "gpu_check --phase2 DIR --no-phase2 exited $rc, not 2"

unexpected=$(ldd "$program" | awk '{ print $1 }' |
  grep -vE '^(linux-vdso\.so|libc\.so|libm\.so|libpthread\.so|libdl\.so|/lib64/ld-linux|/lib/ld-linux)')
[ -z "$unexpected" ] || fail "gpu_check needs more than libc/libm/libpthread/libdl: $unexpected"

[ $status -eq 0 ] && echo "gpu_check_test: ok"
exit $status
