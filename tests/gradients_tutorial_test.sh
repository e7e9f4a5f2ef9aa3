#!/usr/bin/env bash
# Runs examples/gradients_tutorial and checks that it succeeds and prints the notebook's key
# values (each expected line must appear verbatim); the accuracy must be at least 0.95.
# Usage: gradients_tutorial_test.sh PATH_TO_gradients_tutorial
set -u
exe=$1
out=$("$exe" 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
  echo "$out"
  echo "gradients_tutorial exited with status $rc"
  exit 1
fi
expected=(
  "dy/dx at 5: kiln.Tensor(95.0, shape=(), dtype=float32)"
  "dy/dx at 5 (kiln::function): kiln.Tensor(95.0, shape=(), dtype=float32)"
  "SGD, 40 steps: f(x) = 3.375"
  "RMSprop, 20 steps: f(x) = 3.375"
  "gradients tutorial: done"
)
for line in "${expected[@]}"; do
  if ! grep -qF -- "$line" <<<"$out"; then
    echo "$out"
    echo "missing line: $line"
    exit 1
  fi
done
accuracy=$(sed -n 's/.*accuracy \([0-9.]*\).*/\1/p' <<<"$out")
if ! awk -v a="$accuracy" 'BEGIN { exit !(a >= 0.95) }'; then
  echo "$out"
  echo "accuracy $accuracy is below 0.95"
  exit 1
fi
