#!/usr/bin/env bash
# python3.11-x86_64 built both ways, from empty stores: with the host's gcc (the default graph) and
# with overlays/zig-toolchain.toml (zig as the compiler, our musl). Prints each cold build's wall
# time and peak RSS, whether the single files differ, and then runs the same test module
# (tests/python.rs, python3_11_x86_64: static single file, empty root, empty argv0, CA bundles,
# line editing without terminfo, CPython's test subset) against each store.
#
#   benches/zig-toolchain.sh [--no-tests]      # about an hour on two cores
#
# Sources come from the repository store's source cache (`spy fetch python3.11-x86_64` first), so
# the times are builds only. The stores are kept under target/bench-zig/ for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
tests=yes
[ "${1:-}" = --no-tests ] && tests=no
cargo build --release -q
spy=$PWD/target/release/spy
$spy fetch python3.11-x86_64 >/dev/null
root=$PWD/target/bench-zig
rm -rf "$root"
declare -A wall rss bin
for way in gcc zig; do
  store=$root/$way
  mkdir -p "$store/.spy"
  cp -al "$(dirname "$($spy path stage0-x86_64)")/.spy/sources" "$store/.spy/"
  overlay=()
  [ "$way" = zig ] && overlay=(--overlay overlays/zig-toolchain.toml)
  /usr/bin/time -f '%e %M' -o "$root/$way.time" \
    "$spy" --store "$store" "${overlay[@]}" realize -q -j2 --no-out-link python3.11-x86_64 > "$root/$way.path"
  read -r wall[$way] rss[$way] < "$root/$way.time"
  bin[$way]=$(cat "$root/$way.path")/bin/python3.11-x86_64
  printf '%-4s cold build: %7.1f s, peak RSS %6.1f MiB (spy and its children)\n' "$way" "${wall[$way]}" "$(echo "${rss[$way]} / 1024" | bc -l)"
done
for way in gcc zig; do
  printf '%-4s binary: %s bytes, sha256 %s\n' "$way" "$(stat -c %s "${bin[$way]}")" "$(sha256sum "${bin[$way]}" | cut -c1-16)"
done
printf 'zig/gcc build time ratio: %.2f\n' "$(echo "${wall[zig]} / ${wall[gcc]}" | bc -l)"
[ "$tests" = yes ] || exit 0
for way in gcc zig; do
  overlays=""
  [ "$way" = zig ] && overlays=$PWD/overlays/zig-toolchain.toml
  echo "== tests/python.rs python3_11_x86_64, $way"
  SPY_E2E_STORE=$root/$way SPY_OVERLAYS=$overlays cargo nextest run --test python python3_11_x86_64 2>&1 | tail -n 12
done
