#!/usr/bin/env bash
# Start-up and imports of two builds of the same Python side by side (before and after a change),
# printed: median and minimum of RUNS rounds (30 by default) of one interleaved loop, a fresh
# process each time, for `-c pass`, `import socket`, a common import set and a set of cold imports
# (modules neither start-up nor that set loads). The sets follow the major version of the first
# binary: Python 2.7's (releases-2.7.toml's `hot` was recorded on its import set) or issue 19's.
#
# Usage: benches/startup-ab.sh BEFORE AFTER [MORE...]
#   e.g. benches/startup-ab.sh /tmp/old/stacklessco2.7-x86_64 result/bin/stacklessco2.7-x86_64
set -euo pipefail
RUNS=${RUNS:-30}
case "$RUNS" in ''|*[!0-9]*|0*) echo "benches/startup-ab.sh: RUNS must be a positive whole number, not '$RUNS'" >&2; exit 2 ;; esac
[ $# -ge 2 ] || { echo "usage: benches/startup-ab.sh BEFORE AFTER [MORE...]" >&2; exit 2; }
for b in "$@"; do
  [ -x "$b" ] || { echo "benches/startup-ab.sh: $b is not an executable" >&2; exit 2; }
done
/usr/bin/python3.11 - "$RUNS" "$@" <<'PY'
import statistics, subprocess, sys, time
runs, bins = int(sys.argv[1]), sys.argv[2:]
major = subprocess.run([bins[0], "-c", "import sys; print(sys.version_info[0])"], capture_output=True, text=True, check=True).stdout.strip()
if major == "2":
    common = "import socket, threading, json, email.parser, httplib, decimal"
    cold = "import asyncore, tarfile, csv, argparse, logging.handlers, unittest, xml.dom.minidom, zipfile"
else:
    common = "import asyncio, email.parser, http.client, json, decimal"
    cold = "import argparse, csv, logging.handlers, sqlite3, tarfile, tomllib, unittest, xml.dom.minidom, zipfile"
for what, code in (("-c pass", "pass"), ("import socket", "import socket"), ("import set", common), ("cold imports", cold)):
    times = {b: [] for b in bins}
    for _ in range(runs):
        for b in bins:
            t = time.perf_counter()
            subprocess.run([b, "-c", code], check=True)
            times[b].append(time.perf_counter() - t)
    first = statistics.median(times[bins[0]])
    for b in bins:
        m = statistics.median(times[b])
        print(f"{what:14} {m * 1e3:7.2f} ms (min {min(times[b]) * 1e3:6.2f}) {m / first:6.3f}x  {b}")
PY
