#!/usr/bin/env bash
# Installs a built Kiln into a temporary prefix, checks the installed headers (no fmt or LLVM
# includes; each one compiles on its own against the prefix alone), runs the installed kiln
# command with a clean environment, builds a program with pkg-config, then configures, builds
# and runs tests/consumer (kiln::kiln and kiln::runtime_static) against it the way a user would.
# Usage: consumer_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln_consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

step() { echo "consumer: $*"; }

step "installing $build into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || {
  cat "$work/install.log"
  exit 1
}
[ -f "$prefix/include/kiln/kiln.h" ] || { echo "include/kiln/kiln.h was not installed"; exit 1; }
# What kiln::aot links into libraries, found next to the installed libkiln.
[ -n "$(find "$prefix" -name libkiln_runtime_static.a)" ] ||
  { echo "libkiln_runtime_static.a was not installed"; exit 1; }
[ -f "$prefix/include/kiln/runtime/aot_model.h" ] || { echo "aot_model.h was not installed"; exit 1; }

step "checking that installed headers include neither fmt nor LLVM"
if grep -rnE '#include [<"](fmt|llvm|llvm-c)/' "$prefix/include"; then
  echo "consumer: public headers must not include fmt or LLVM (see above)"
  exit 1
fi

step "checking that each installed header compiles on its own"
cxx=${CXX:-c++}
mkdir -p "$work/headers"
(cd "$prefix/include" && find kiln -name '*.h' | sort) >"$work/headers.txt"
failed=0
while IFS= read -r header; do
  tu=$work/headers/$(tr '/.' '__' <<<"$header").cpp
  printf '#include <%s>\n' "$header" >"$tu"
  if ! "$cxx" -std=c++20 -fsyntax-only -Wall -Wextra -I"$prefix/include" "$tu" 2>"$tu.log"; then
    echo "consumer: $header does not compile on its own:"
    head -20 "$tu.log"
    failed=1
  fi
done <"$work/headers.txt"
[ $failed -eq 0 ] || exit 1

step "running the installed bin/kiln with a clean environment (env -i)"
mkdir -p "$work/cli"
cat >"$work/cli/square.kiln" <<'IR'
func @square(%x: f32[4]) -> f32[4] {
  %0 = mul(%x, %x) : f32[4]
  return %0
}
IR
env -i "$prefix/bin/kiln" --version >"$work/cli/version.txt" 2>&1 || {
  cat "$work/cli/version.txt"
  exit 1
}
grep -qE '^kiln [0-9]+\.[0-9]+\.[0-9]+$' "$work/cli/version.txt" ||
  { echo "consumer: kiln --version printed: $(cat "$work/cli/version.txt")"; exit 1; }
env -i "$prefix/bin/kiln" dump "$work/cli/square.kiln" >"$work/cli/dump.txt" 2>&1 || {
  cat "$work/cli/dump.txt"
  exit 1
}
grep -q 'mul(%x, %x)' "$work/cli/dump.txt" || { cat "$work/cli/dump.txt"; exit 1; }
# aot finds the installed static runtime next to libkiln, and c++ on the default search path.
env -i "$prefix/bin/kiln" aot "$work/cli/square.kiln" -o "$work/cli/out/libsquare.so" \
  >"$work/cli/aot.txt" 2>&1 || {
  cat "$work/cli/aot.txt"
  exit 1
}
[ -f "$work/cli/out/libsquare.so" ] && [ -f "$work/cli/out/square.h" ] ||
  { echo "consumer: kiln aot wrote no library"; cat "$work/cli/aot.txt"; exit 1; }

step "building a program with pkg-config"
pc_flags=$(PKG_CONFIG_PATH="$(dirname "$(find "$prefix" -name kiln.pc)")" \
  pkg-config --cflags --libs kiln)
cat >"$work/cli/pc.cpp" <<'CPP'
#include <kiln/kiln.h>
#include <iostream>
int main() {
  kiln::Tensor x = kiln::constant(std::vector<float>{1, 2, 3});
  std::cout << kiln::version() << " " << kiln::reduce_sum(x * x).item<float>() << "\n";
}
CPP
# shellcheck disable=SC2086 # pkg-config's output is a list of words
"$cxx" "$work/cli/pc.cpp" $pc_flags -o "$work/cli/pc" >"$work/cli/pc.log" 2>&1 || {
  cat "$work/cli/pc.log"
  exit 1
}
libdir=$(dirname "$(find "$prefix" -name 'libkiln.so' | head -1)")
LD_LIBRARY_PATH=$libdir "$work/cli/pc" >"$work/cli/pc.txt"
grep -qE '^[0-9]+\.[0-9]+\.[0-9]+ 14$' "$work/cli/pc.txt" ||
  { echo "consumer: the pkg-config program printed: $(cat "$work/cli/pc.txt")"; exit 1; }

step "configuring tests/consumer against the installed package"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$src/tests/consumer" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$work/configure.log" || {
  cat "$work/configure.log"
  exit 1
}
step "building"
cmake --build "$work/build" >"$work/build.log" 2>&1 || {
  cat "$work/build.log"
  exit 1
}

step "running"
mkdir -p "$work/run"
cd "$work/run"
"$work/build/consumer"
"$work/build/runtime_user"
[ -s a.npy ] || { echo "consumer: a.npy was not written"; exit 1; }
[ -f aot/libpoly.so ] && [ -f aot/poly.h ] || { echo "consumer: aot/libpoly.so was not written"; exit 1; }
step "passed"
