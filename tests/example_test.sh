#!/usr/bin/env bash
# Runs an example program and checks that it succeeds and prints every line of an expected-lines
# file verbatim (the values the tutorial notebook it replays shows).
# Usage: example_test.sh PATH_TO_EXAMPLE EXPECTED_LINES_FILE
set -u
exe=$1
expected_file=$2
name=$(basename "$exe")
out=$("$exe" 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
  echo "$out"
  echo "$name exited with status $rc"
  exit 1
fi
status=0
count=0
while IFS= read -r line; do
  count=$((count + 1))
  if ! grep -qxF -- "$line" <<<"$out"; then
    echo "$name: missing line: $line"
    status=1
  fi
done <"$expected_file"
[ $status -eq 0 ] && echo "$name: all $count expected lines found"
[ $status -eq 0 ] || echo "$out"
exit $status
