#!/usr/bin/env bash
# Checks DESIGN.md's dependency rules by reading include lines: each folder may include only
# the folders it may depend on, LLVM only from codegen/, runtime/ stays free of ir/ and LLVM, and
# the rooms of frontend/ (core/, formats/, keras/) keep their order (see below).
set -u
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 2

declare -A allowed=(
  [ir]="ir"
  [passes]="ir passes"
  [runtime]="runtime"
  [codegen]="ir passes runtime codegen"
  [frontend]="ir passes runtime codegen frontend"
  [tools]="ir passes runtime codegen frontend tools"
)

status=0
for module in "${!allowed[@]}"; do
  [ -d "$module" ] || continue
  while IFS= read -r line; do
    file=${line%%:*}
    target=$(sed -E 's/.*#include [<"]kiln\/([a-z_]+)\/.*/\1/' <<<"$line")
    if [[ " ${allowed[$module]} " != *" $target "* ]]; then
      echo "layering: $file includes kiln/$target/, but $module/ may depend only on: ${allowed[$module]}"
      status=1
    fi
  done < <(grep -rnE '#include [<"]kiln/[a-z_]+/' "$module" --include='*.h' --include='*.cpp' --include='*.def')
  if [ "$module" != codegen ]; then
    if grep -rnE '#include [<"](llvm|llvm-c)/' "$module" --include='*.h' --include='*.cpp'; then
      echo "layering: only codegen/ may include LLVM headers (see above)"
      status=1
    fi
  fi
done
# The rooms of frontend/ (docs/architecture.md, README's layout) and who may include whom:
#
#   frontend/core/     Tensor, the ops, apply (the one path of every op), name scopes and error
#                      decoration, tracing, kiln::function, GradientTape, Variable, eager kernels.
#                      May include only core/ of the frontend: the tensor core knows nothing of
#                      Keras or of file formats.
#   frontend/formats/  files: .npy, safetensors, IDX, TensorBoard event records, atomic writes,
#                      markup escaping. May include formats/ and, of core, only the Tensor handle
#                      (core/tensor.h) and error decoration (core/op_error.h): a format reads and
#                      writes tensors, it never runs ops, traces or touches Keras.
#   frontend/keras/    layers, models, optimizers, losses, metrics, callbacks, data, datasets,
#                      saved models. May include core/, formats/ and keras/.
#   frontend/          kiln.h (the umbrella), version, aot (compiles functions and Models, runs
#                      the linker through process.h): on top of all three rooms; no room may
#                      include these.
declare -A room_allowed=(
  [core]="core"
  [formats]="formats core/tensor.h core/op_error.h"
  [keras]="core formats keras"
)
for room in "${!room_allowed[@]}"; do
  [ -d "frontend/$room" ] || continue
  while IFS= read -r line; do
    file=${line%%:*}
    target=$(sed -E 's/.*#include [<"]kiln\/frontend\/([^">]+)[">].*/\1/' <<<"$line")
    target_room=${target%%/*}
    [ "$target_room" = "$target" ] && target_room=""  # a file at frontend/ itself
    ok=0
    for rule in ${room_allowed[$room]}; do
      if [ "$rule" = "$target" ] || [ "$rule" = "$target_room" ]; then ok=1; fi
    done
    if [ $ok -eq 0 ]; then
      echo "layering: $file includes kiln/frontend/$target, but frontend/$room/ may include only: ${room_allowed[$room]}"
      status=1
    fi
  done < <(grep -rnE '#include [<"]kiln/frontend/' "frontend/$room" --include='*.h' --include='*.cpp')
done
# libhdf5 stays behind one file (frontend/formats/hdf5.cpp): no hid_t in a header, so HDF5's
# headers never reach Kiln's public ones (libkiln links it PRIVATE; users need no HDF5).
if grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](hdf5|H5[A-Za-z_]*)\.h[">]' \
  ir passes runtime codegen frontend tools --include='*.h' --include='*.cpp' --include='*.def' |
  grep -v '^frontend/formats/hdf5\.cpp:'; then
  echo "layering: only frontend/formats/hdf5.cpp may include HDF5's headers (see above)"
  status=1
fi
# kiln/kiln.h is the user's umbrella header: it includes every layer, so a lower layer that
# includes it depends on all of them (and on itself). Only the programs on top (tools/, tests/,
# bench/, examples/, docs/, fuzz/) may; the header itself lives in frontend/.
for module in ir passes runtime codegen frontend; do
  [ -d "$module" ] || continue
  if grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]kiln/kiln\.h[">]' "$module" \
    --include='*.h' --include='*.cpp' --include='*.def'; then
    echo "layering: $module/ includes kiln/kiln.h (above); include the headers it needs instead"
    status=1
  fi
done
[ $status -eq 0 ] && echo "layering: all include lines follow DESIGN.md"
exit $status
