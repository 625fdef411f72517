#!/usr/bin/env bash
# Benchmark of the Stackless issue, printed:
#  - size of each Stackless single file (executable part and stdlib ZIP, from its manifest) next to
#    StaticPython's stacklessco2.7 (7.8 MB, 32-bit);
#  - `-c pass` start-up, median of 30 runs, against the host's /usr/bin/python3.11 (Debian's
#    dynamic build, never a pyenv shim) in the same interleaved loop;
#  - with --rebuild: realize of stacklessco2.7-x86_64 on top of a built package set (an overlay
#    gives slpython2.7 a new id, so Stackless, its packages, the relink and the fuse step build
#    again while the toolchain and libraries are reused), wall time and peak RSS (GNU time -v).
#
# The Stackless clone and staticpython/ come from ../shared/sources (or $SPY_TEST_SOURCES); the store is $SPY_STORE
# (default: the project's store/).
# Usage: benches/stackless.sh [--rebuild] [TARGET_SHORT...]   (default: x86_64, and i686 if built)
set -euo pipefail
cd "$(dirname "$0")/.."
rebuild=0
[ "${1:-}" = "--rebuild" ] && { rebuild=1; shift; }
targets=${*:-x86_64 i686}
sources=${SPY_TEST_SOURCES:-$PWD/../shared/sources}
cargo build --release -q
# One mirror: staticpython/ in it (the packages of stacklessco2.7 no registry carries) is searched too.
spy="$PWD/target/release/spy --mirror $sources"
host=/usr/bin/python3.11
tmp=$(mktemp -d /tmp/spy-bench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

bins=()
for t in $targets; do
  for f in stackless2.7 stacklessco2.7 stackless3.7 stacklessxl3.7; do
    if [ "$t" = x86_64 ] || $spy realize --no-out-link -q --offline "$f-$t" >/dev/null 2>&1; then
      out=$($spy realize --no-out-link -q "$f-$t")
      bins+=("$out/bin/$f-$t")
      $host - "$out/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); b = m["binary"]; z = b["stdlib_zip"]
print(f"size {m['release']:24} {b['size'] / 1e6:5.1f} MB = executable {b['executable_size'] / 1e6:.1f} MB"
      f" + stdlib ZIP {z['size'] / 1e6:.1f} MB ({z['entries']} members); {b['size'] / 7.8e6:.2f}x StaticPython's"
      f" stacklessco2.7 (7.8 MB); {len(m['modules']['builtin'])} built-in modules")
PY
    fi
  done
done

$host - "$host" "${bins[@]}" <<'PY'
import statistics, subprocess, sys, time
exes = sys.argv[1:]
runs = {e: [] for e in exes}
for _ in range(30):
    for e in exes:
        t = time.perf_counter()
        subprocess.run([e, "-c", "pass"], check=True)
        runs[e].append(time.perf_counter() - t)
base = statistics.median(runs[exes[0]])
for e in exes:
    m = statistics.median(runs[e])
    print(f"start-up -c pass {m * 1000:6.2f} ms  ({m / base:.2f}x host)  {e}")
PY

if [ $rebuild = 1 ]; then
  printf '[nodes."slpython2.7".env]\nSPY_BENCH_REBUILD = "%s"\n' "$(date +%s%N)" > "$tmp/rebuild.toml"
  s=$(date +%s)
  /usr/bin/time -v -o "$tmp/rebuild.txt" $spy realize -q -j2 --no-out-link --overlay "$tmp/rebuild.toml" \
    stacklessco2.7-x86_64 >/dev/null
  echo "realize stacklessco2.7-x86_64 on a built package set (-j2): $(( $(date +%s) - s )) s;" \
    "peak RSS of the largest process $(awk -F': ' '/Maximum resident/ {print $2}' "$tmp/rebuild.txt") KiB"
fi
