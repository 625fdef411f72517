#!/usr/bin/env bash
# Benchmark of issue "Python nodes and the final link", printed:
#  - size of each single-file binary (executable part and stdlib ZIP, from its manifest);
#  - `-c pass` start-up, median of 30 runs, against the host's /usr/bin/python3.11 (Debian's dynamic
#    build, never a pyenv shim) in the same interleaved loop, with and without site (-S), and the
#    import set of issue 19 (`import asyncio, email.parser, http.client, json, decimal`), for
#    python3.11 and python3.13; and a set of cold imports, modules that start-up and the import set
#    do not load (CPython 3: from zstd blocks, releases-3.toml);
#  - no-op `spy realize python3.11-x86_64` (median of 10) and its peak RSS (GNU time -v);
#  - with --cold: realize python3.11-x86_64 into an empty store (sources from a local mirror made of
#    the project store's sources, so no download is timed), wall time and spy's peak RSS.
#
# Usage: benches/python.sh [--cold] [TARGET_SHORT...]   (default: x86_64, and i686 if built;
#        RUNS=N: rounds of each interleaved start-up loop, 30 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
case "$RUNS" in ''|*[!0-9]*|0*) echo "benches/python.sh: RUNS must be a positive whole number, not '$RUNS'" >&2; exit 2 ;; esac
cold=0
[ "${1:-}" = "--cold" ] && { cold=1; shift; }
targets=${*:-x86_64 i686}
cargo build --release -q
spy=$PWD/target/release/spy
host=/usr/bin/python3.11
tmp=$(mktemp -d /tmp/spy-bench-XXXXXX)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

bins=()
for t in $targets; do
  for release in "python3.11-$t" "python3.13-$t"; do
  if [ "$t" = x86_64 ] || $spy realize --no-out-link -q --offline "$release" >/dev/null 2>&1; then
    out=$($spy realize --no-out-link -q "$release")
    bins+=("$out/bin/$release")
    $host - "$out/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); b = m["binary"]; z = b["stdlib_zip"]
print(f"size {m['release']}: {b['size'] / 1e6:.1f} MB = executable {b['executable_size'] / 1e6:.1f} MB"
      f" + stdlib ZIP {z['size'] / 1e6:.1f} MB ({z['entries']} members, {z['compression']});"
      f" {len(m['modules']['builtin'])} built-in modules")
PY
  fi
  done
done

RUNS=$RUNS $host - "$host" "${bins[@]}" <<'PY'
import os, statistics, subprocess, sys, time
exes = sys.argv[1:]
rounds = int(os.environ["RUNS"])
imports = "import asyncio, email.parser, http.client, json, decimal"
cold = "import argparse, csv, logging.handlers, sqlite3, tarfile, tomllib, unittest, xml.dom.minidom, zipfile"
for what, args in (("-c pass", ["-c", "pass"]), ("-S -c pass", ["-S", "-c", "pass"]), ("import set", ["-c", imports]),
                   ("cold imports", ["-c", cold])):
    runs = {e: [] for e in exes}
    for _ in range(rounds):
        for e in exes:
            t = time.perf_counter()
            subprocess.run([e, *args], check=True)
            runs[e].append(time.perf_counter() - t)
    base = statistics.median(runs[exes[0]])
    for e in exes:
        m = statistics.median(runs[e])
        print(f"start-up {what:12} {m * 1000:6.2f} ms  ({m / base:.2f}x host)  {e}")
PY

times=()
for i in $(seq 10); do
  s=$(date +%s%N); $spy realize --no-out-link -q python3.11-x86_64 >/dev/null; e=$(date +%s%N)
  times+=($(( (e - s) / 1000 )))
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 5p)
/usr/bin/time -v -o "$tmp/noop.txt" $spy realize --no-out-link -q python3.11-x86_64 >/dev/null
echo "no-op realize python3.11-x86_64: median $((median / 1000)).$(( (median % 1000) / 100 )) ms, peak RSS $(awk -F': ' '/Maximum resident/ {print $2}' "$tmp/noop.txt") KiB"

if [ $cold = 1 ]; then
  mkdir -p "$tmp/mirror" && cp store/.spy/sources/* "$tmp/mirror/"
  s=$(date +%s)
  SPY_MIRRORS="$tmp/mirror" /usr/bin/time -v -o "$tmp/cold.txt" \
    $spy --store "$tmp/store" realize -q -j2 --no-out-link --offline python3.11-x86_64 >/dev/null
  echo "cold realize python3.11-x86_64 (empty store, -j2): $(( $(date +%s) - s )) s; peak RSS of the largest process $(awk -F': ' '/Maximum resident/ {print $2}' "$tmp/cold.txt") KiB (a compiler; spy's own stays near its no-op figure)"
fi
