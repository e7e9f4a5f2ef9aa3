#!/usr/bin/env bash
# Remakes the fuzzers' seed corpora in fuzz/corpus/ with Kiln's own writers
# (fuzz/corpus_writer.cpp, built in build-asan). Run it after a file format changes, and commit
# the result. Regression inputs (fuzz/corpus/<target>/regression-*) are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/sanitizer_build.sh asan fuzz_corpus_writer
for dir in fuzz/corpus/*/; do
  [ -d "$dir" ] && find "$dir" -type f ! -name 'regression-*' -delete
done
LSAN_OPTIONS=suppressions=tests/sanitizers/lsan.supp build-asan/fuzz/fuzz_corpus_writer fuzz/corpus
find fuzz/corpus -type f | sort | xargs ls -l | awk '{print $5, $9}'
