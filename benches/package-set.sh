#!/usr/bin/env bash
# Benchmark of issue "The real package set, part 1": the cold wall time of realizing every x86_64
# library with `spy realize -j2`, against the same steps run by a plain sequential script
# (benches/handbuild.py, `make -j2` inside each build), in one run. Sources come from a local
# mirror for both, so neither measures downloads. Prints the two times, the ratio, and spy's peak RSS.
#
# Usage: benches/package-set.sh [TARGET_SHORT]   (default x86_64)
set -euo pipefail
cd "$(dirname "$0")/.."
short=${1:-x86_64}
libs="zlib bzip2 xz openssl ncurses readline sqlite libffi expat libevent"
nodes=$(for l in $libs; do printf '%s-%s ' "$l" "$short"; done)

cargo build --release -q
spy=$PWD/target/release/spy
tmp=$(mktemp -d /tmp/spy-bench-XXXXXX)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

# Sources once, into a mirror (by sha256), from the project store or the network.
$spy fetch -q $nodes
mkdir -p "$tmp/mirror"
cp store/.spy/sources/* "$tmp/mirror/"

echo "spy realize -j2, cold store, $nodes" >&2
start=$(date +%s.%N)
SPY_MIRRORS="$tmp/mirror" /usr/bin/time -v -o "$tmp/time.txt" \
  $spy --store "$tmp/store" realize -q -j2 --no-out-link --offline $nodes > /dev/null &
# GNU time reports the largest process of the tree (a compiler); spy's own peak is its VmHWM.
own=0
while kill -0 $! 2>/dev/null; do
  for pid in $(pgrep -f "^$spy --store $tmp/store realize" || true); do
    hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
    [ "${hwm:-0}" -gt "$own" ] && own=$hwm
  done
  sleep 0.5
done
wait $!
spy_s=$(echo "$(date +%s.%N) - $start" | bc)
rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tmp/time.txt")

for n in $nodes; do $spy --store "$tmp/store" graph --format json "$n" > "$tmp/graph-$n.json"; done
echo "by hand, sequential" >&2
hand_s=$(python3 benches/handbuild.py "$tmp/hand" "$tmp"/graph-*.json)

printf 'spy realize -j2 (cold, %s libraries + toolchain): %.1f s\n' "$short" "$spy_s"
printf 'by-hand sequential script, same steps:             %.1f s\n' "$hand_s"
printf 'ratio spy / by hand:                               %.2f\n' "$(echo "$spy_s / $hand_s" | bc -l)"
printf 'peak RSS of the process tree (GNU time -v):        %s KiB\n' "$rss"
printf 'peak RSS of spy itself (VmHWM, sampled):           %s KiB\n' "$own"
