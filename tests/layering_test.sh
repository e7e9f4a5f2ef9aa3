#!/usr/bin/env bash
# Checks DESIGN.md's dependency rules by reading include lines: each folder may include only
# the folders it may depend on, LLVM only from codegen/, and runtime/ stays free of ir/ and LLVM.
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
