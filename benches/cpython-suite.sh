#!/usr/bin/env bash
# CPython's whole regression suite run by a release binary (issue 21): `python -m test -j2` with
# the pinned source's Lib/test (from the interpreter node, which keeps it) on PYTHONPATH, each test
# under a timeout, no optional resources (-u none: no network, no GUI). Prints the counts and the
# names of the modules that failed, were skipped or changed the environment; docs/packages.md
# explains each. The release binary has no test modules (_testcapi...): the tests that need them
# skip, as the counts show.
#
# Usage: benches/cpython-suite.sh [RELEASE [INTERPRETER]]   (default: python3.13-x86_64 cpython3.13-x86_64)
# The store is spy's usual one (SPY_STORE, or store/ beside the graph); SPY_STORE=target/tmp/e2e-store
# uses what the test suite built.
set -euo pipefail
cd "$(dirname "$0")/.."
release=${1:-python3.13-x86_64}
interp=${2:-cpython${release#python}}
cargo build --release -q
spy=$PWD/target/release/spy
out=$($spy realize --no-out-link -q "$release")
lib=$($spy realize --no-out-link -q "$interp")/lib
stdlib=$(ls -d "$lib"/python*)
work=$(mktemp -d /tmp/spy-suite-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/home" "$work/tests"
ln -s "$stdlib/test" "$work/tests/test"
log=${SUITE_LOG:-$work/suite.log}
start=$(date +%s)
set +e
(cd "$work" && env -i PATH=/usr/bin:/bin HOME="$work/home" PYTHONPATH="$work/tests" TERM=dumb \
  "$out/bin/$release" -m test -j2 -u none --timeout 1200 -q >"$log" 2>&1)
status=$?
set -e
echo "$release: python -m test -j2 finished with status $status in $(( $(date +%s) - start )) s (log: $log)"
/usr/bin/python3.11 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
tail = text[text.rfind("== Tests result") if "== Tests result" in text else max(0, len(text) - 20000):]
summary = text[text.rfind("Total duration"):] if "Total duration" in text else ""
for line in summary.splitlines()[:8]:
    print("  " + line)
# regrtest's closing lists: "N tests failed:", "N tests skipped:", "N tests altered the execution environment"...
for m in re.finditer(r"^(\d+ tests? [^\n:]+):\n((?:    .*\n)+)", text, re.M):
    names = " ".join(m.group(2).split())
    print(f"{m.group(1)}: {names}")
PY
