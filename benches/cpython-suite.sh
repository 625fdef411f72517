#!/usr/bin/env bash
# CPython's whole regression suite run by a single file (issue 21): `python -m test -j2`, each test
# under a timeout, no optional resources (-u none: no network, no GUI). The binary is the release
# of that Python (python3.13-x86_64 by default) made with its test modules built in
# (overlays/cpython-test-modules.toml, overlays/stackless-test-modules.toml) and
# overlays/cpython-suite.toml (the `test` package and the sources in its ZIP, so the interpreters
# the suite starts again with -I still import `test`; the suite itself reads the interpreter node's
# tree, since regrtest lists directories). Prints the counts and the modules that failed, were
# skipped or changed the environment; docs/packages.md explains each.
#
# Usage: benches/cpython-suite.sh [3.13|3.11|2.7|stackless3.7|stackless2.7] [TEST_MODULE...]
# (SPY_STORE=target/tmp/e2e-store uses what the tests built; SUITE_LOG=FILE keeps regrtest's output
# there; test modules named after the version run alone, verbosely, to check a row of
# docs/packages.md). 2.7 and Stackless 2.7 run their release as it is (no test-modules variant:
# tests that need _testcapi skip), with `test` from the interpreter node on PYTHONPATH (2.7 has no
# -I, so its child interpreters see it).
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-3.13}
case "$version" in
  3.13|3.11) release=python$version; interpreter=cpython$version; pyver=$version
    overlays=(--overlay overlays/cpython-test-modules.toml) ;;
  2.7) release=python2.7; interpreter=cpython2.7; pyver=2.7 ;;
  stackless3.7) release=stackless3.7; interpreter=slpython3.7; pyver=3.7
    overlays=(--overlay overlays/stackless-test-modules.toml) ;;
  stackless2.7) release=stackless2.7; interpreter=slpython2.7; pyver=2.7 ;;
  *) echo "usage: $0 [3.13|3.11|2.7|stackless3.7|stackless2.7] [TEST_MODULE...]" >&2; exit 2 ;;
esac
shift || true
modules=("$@")
release=$release-x86_64
cargo build --release -q
spy=$PWD/target/release/spy
if [ "$pyver" = 2.7 ]; then
  out=$($spy realize --no-out-link -q "$release")
  cpython=$($spy realize --no-out-link -q "$interpreter-x86_64")
  run=(-m test.regrtest -j2)   # 2.7 knows no `-u none`: no resource is enabled by default
  [ ${#modules[@]} -gt 0 ] && run=(-m test.regrtest -v "${modules[@]}")
else
  out=$($spy realize --no-out-link -q "${overlays[@]}" --overlay overlays/cpython-suite.toml "$release")
  # regrtest lists test directories with os.listdir, which a ZIP does not answer: the suite's own
  # process imports `test` from the interpreter node's tree (PYTHONPATH), the ones it starts with
  # -I from the ZIP.
  cpython=$($spy realize --no-out-link -q "${overlays[@]}" "$interpreter-x86_64")
  run=(-m test -j2 -u none --timeout 1200)
  [ ${#modules[@]} -gt 0 ] && run+=(-v "${modules[@]}")
fi
work=$(mktemp -d /tmp/spy-suite-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/home" "$work/tests"
ln -s "$cpython/lib/python$pyver/test" "$work/tests/test"
log=${SUITE_LOG:-$work/suite.log}
# A shell that starts this script in the background leaves SIGINT ignored, and an ignored signal
# stays ignored across exec: CPython then installs no KeyboardInterrupt handler, and cases of
# test_signal, test_threading and test_generators fail for that alone. The release puts SIGINT back
# to its default before it execs the suite.
sigint_default=(-c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])')
start=$(date +%s)
set +e
# The suite runs under a child subreaper: regrtest starts each worker in a session of its own,
# and a worker that times out exits and leaves its children running (test_threading's `-I` child
# spun on for an hour after a run). Orphans come back to the subreaper, which kills whatever is
# left of them when the suite ends.
reap='
import ctypes, os, signal, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
status = subprocess.call(sys.argv[1:])
def children():
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[1] == str(os.getpid()):
                    yield int(pid)
        except (OSError, IndexError):
            pass
while True:
    left = list(children())
    if not left:
        break
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
sys.exit(status if status >= 0 else 128 - status)
'
(cd "$work" && exec /usr/bin/python3.11 -c "$reap" env -i PATH=/usr/bin:/bin HOME="$work/home" TERM=dumb \
  PYTHONPATH="$work/tests" "$out/bin/$release" "${sigint_default[@]}" "$out/bin/$release" "${run[@]}" >"$log" 2>&1)
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
