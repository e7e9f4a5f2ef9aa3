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
# Keras HDF5 files as Keras itself writes them, through h5py (tests/keras_h5_fixtures.py; Debian's
# python3-h5py, which PATH's python3 may lack): every string encoding, the whole-model layout,
# chunked attribute lists, compressed datasets and Keras 3's layout.
h5=fuzz/corpus/keras_h5_fuzz
/usr/bin/python3 tests/keras_h5_fixtures.py keras $h5/h5py.h5 + keras $h5/h5py_fixed.h5 \
  strings=fixed + keras $h5/h5py_utf8.h5 strings=utf8 + keras $h5/h5py_full.h5 full \
  + keras $h5/h5py_chunk.h5 chunk + keras $h5/h5py_deflate_be.h5 deflate bigendian \
  + keras $h5/h5py_keras20_f64.h5 keras20 f64 + keras $h5/h5py.weights.h5 keras3
find fuzz/corpus -type f | sort | xargs ls -l | awk '{print $5, $9}'
