#!/usr/bin/env bash
# Runs examples/tensor_tutorial and checks that it succeeds and prints the notebook's key values
# (each expected line must appear verbatim). tests/tutorial_test.cpp checks the same numbers.
# Usage: tensor_tutorial_test.sh PATH_TO_tensor_tutorial
set -u
exe=$1
out=$("$exe" 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
  echo "$out"
  echo "tensor_tutorial exited with status $rc"
  exit 1
fi
expected=(
  "kiln.Tensor([2 3 4 5], shape=(4,), dtype=int32)"
  "<kiln.Variable 'Variable' shape=(2, 2) dtype=float32, numpy="
  " [-4. -8.]]>"
  " [-15. -22.]], shape=(2, 2), dtype=float32)"
  "kiln.Tensor(1.0, shape=(), dtype=float32)"
  "kiln.Tensor([2. 4.], shape=(2,), dtype=float32)"
  " [1.0986123 1.3862944]], shape=(2, 2), dtype=float32)"
  "kiln.Tensor([1.2       5.        3.1415927], shape=(3,), dtype=float32)"
  "int64"
  "(1, 2, 1, 4, 1)  -->  (1, 2, 4)"
  "[0.89025915 0.67199826 0.24740142 0.7576265  0.24776322 0.1602782 ]"
  "[[0.89025915 0.67199826], [0.24740142 0.7576265 ], [0.24776322 0.1602782 ]]"
  "[[2 3 4 5], [6 7 8 8]]"
  "[1. 1. 1. 0. 0.]"
  "matmul(x, y, transpose_a=True) shape: (6, 6)"
  "(1001,) first [0.   0.03 0.06] last 30.0"
  "10! = 3628800, 20! = 2432902008176640000, 30! = 2.652529e+32"
  "tensor tutorial: done"
)
status=0
for line in "${expected[@]}"; do
  if ! grep -qxF -- "$line" <<<"$out"; then
    echo "tensor_tutorial: missing line: $line"
    status=1
  fi
done
[ $status -eq 0 ] && echo "tensor_tutorial: all ${#expected[@]} expected lines found"
exit $status
