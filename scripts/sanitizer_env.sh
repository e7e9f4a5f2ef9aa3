#!/usr/bin/env bash
# The sanitizer options every run in a sanitizer build shares (sourced by scripts/ci_sanitizers.sh
# and scripts/fuzz.sh, which add their own): every report fails the program that made it, leaks
# are checked at exit, and tests/sanitizers/lsan.supp lists LLVM's own process-lifetime
# allocations (and nothing of Kiln's).
sanitizer_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ASAN_OPTIONS=detect_leaks=1:strict_init_order=1:check_initialization_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$sanitizer_root/tests/sanitizers/lsan.supp:print_suppressions=0
unset sanitizer_root
