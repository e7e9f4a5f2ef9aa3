#!/usr/bin/env bash
# The runtime links no LLVM, no fmt, no JSON library and no IR (DESIGN.md): a C program linked
# against libkiln_runtime_static.a alone runs, and neither it nor the library needs or names
# anything from LLVM, fmt, nlohmann-json or kiln::ir.
# Usage: runtime_no_llvm_test.sh PROGRAM LIBKILN_RUNTIME_STATIC_A
set -u
program=$1
library=$2
status=0
fail() {
  echo "runtime_no_llvm: $*"
  status=1
}

for f in "$program" "$library"; do
  [ -f "$f" ] || { echo "runtime_no_llvm: missing $f"; exit 2; }
done

# It runs, with the pool size KILN_NUM_THREADS asks for, and shrugs off a bad value.
out=$(KILN_NUM_THREADS=3 "$program") || fail "$program failed"
echo "$out"
grep -q ' 3 threads' <<<"$out" || fail "KILN_NUM_THREADS=3 did not give 3 threads"
out=$(KILN_NUM_THREADS=lots "$program" 2>&1) || fail "$program failed with KILN_NUM_THREADS=lots"
grep -q 'ignoring KILN_NUM_THREADS="lots"' <<<"$out" || fail "no warning for KILN_NUM_THREADS=lots"

# No shared-library dependency on LLVM or fmt.
needed=$(readelf -d "$program" | grep NEEDED)
echo "$needed"
grep -iE 'llvm|fmt' <<<"$needed" && fail "$program needs LLVM or fmt (readelf -d, above)"
if command -v ldd >/dev/null; then
  ldd "$program" | grep -iE 'llvm|libfmt' && fail "$program loads LLVM or fmt (ldd, above)"
fi

# No symbol, defined or undefined, from LLVM, fmt or the IR.
forbidden='llvm::|LLVM|fmt::|nlohmann|kiln::ir::'
for f in "$library" "$program"; do
  symbols=$(nm -C "$f" 2>/dev/null) || fail "nm cannot read $f"
  [ -n "$symbols" ] || fail "nm found no symbols in $f"
  if grep -E "$forbidden" <<<"$symbols" | head -20 | grep .; then
    fail "$f names LLVM, fmt, nlohmann-json or IR symbols (above)"
  fi
done
grep -q 'kiln_rt_parallel_for' <<<"$(nm "$library")" || fail "$library lacks kiln_rt_parallel_for"

[ $status -eq 0 ] && echo "runtime_no_llvm: the runtime links no LLVM, fmt or IR"
exit $status
