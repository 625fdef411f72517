#!/bin/sh
# Smoke test of a darwin single-file Python, for a maintainer with a Mac (there is none where spy
# is built and tested; docs/darwin.md). Copy the release files to the Mac, then:
#
#   sh darwin-smoke.sh ./python3.11-darwin-arm64 [./python3.11-darwin-arm64.manifest.json]
#
# (`spy release python3.11-darwin-arm64 --out DIR` writes both; the manifest may also be the
# store's manifest.json.) It checks the signature, that the binary links nothing but libSystem,
# that it starts with an empty environment from an empty directory, finds its standard library in
# its own file, and imports every module the manifest lists as built in, then exercises ssl, sqlite3,
# ctypes, curses' terminfo, threads and a deep recursion. Exit 0 when all passed.
set -u
bin=${1:?usage: darwin-smoke.sh BINARY [MANIFEST]}
manifest=${2:-$bin.manifest.json}
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
fail=0
pass() { printf 'ok    %s\n' "$1"; }
bad() { printf 'FAIL  %s\n' "$1"; fail=1; }
check() { what=$1; shift; if "$@" >/tmp/spy-smoke.$$ 2>&1; then pass "$what"; else bad "$what"; sed 's/^/      /' /tmp/spy-smoke.$$; fi; }

[ "$(uname -s)" = Darwin ] || { echo "darwin-smoke.sh: run this on macOS" >&2; exit 2; }
[ -x "$bin" ] || { echo "darwin-smoke.sh: $bin is not an executable file" >&2; exit 2; }
[ -f "$manifest" ] || { echo "darwin-smoke.sh: no manifest at $manifest" >&2; exit 2; }

# Downloaded files carry a quarantine flag that would stop an ad-hoc signed binary.
xattr -d com.apple.quarantine "$bin" 2>/dev/null || true
check "code signature valid (codesign --verify --strict)" codesign --verify --strict --verbose=2 "$bin"
check "links only libSystem" sh -c "otool -L '$bin' | tail -n +2 | grep -v /usr/lib/libSystem.B.dylib | grep . && exit 1 || exit 0"
check "minimum macOS 11.0" sh -c "otool -l '$bin' | grep -A4 LC_BUILD_VERSION | grep -q 'minos 11.0'"

empty=$(mktemp -d)
run() { (cd "$empty" && env -i "$bin" -I "$@"); }
check "starts from an empty directory with an empty environment" run -c 'pass'
check "the standard library comes from the binary itself" run -c "
import sys, os
me = os.path.realpath('$bin')
assert sys.path[-1] == os.path.realpath(sys.executable) == me, (sys.path, sys.executable, me)
import json, encodings
assert json.__file__.startswith(me + '/'), json.__file__
"
modules=$(run -c "import json; print(' '.join(json.load(open('$manifest'))['modules']['builtin']))")
check "imports every built-in module the manifest lists" run -c "
import importlib, sys
names = '$modules'.split()
assert names, 'the manifest lists no modules'
missing = [n for n in names if n not in sys.builtin_module_names]
assert not missing, missing
for n in names:
    importlib.import_module(n)
print(len(names), 'modules')
"
check "ssl: OpenSSL and a TLS context" run -c "import ssl; print(ssl.OPENSSL_VERSION); ssl.create_default_context()"
check "sqlite3 in memory" run -c "import sqlite3; c = sqlite3.connect(':memory:'); assert c.execute('select 1+1').fetchone() == (2,)"
check "ctypes: libffi call and callback" run -c "
import ctypes
libc = ctypes.CDLL('/usr/lib/libSystem.B.dylib')
assert libc.abs(-5) == 5
CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
a = (ctypes.c_int * 4)(3, 1, 4, 2)
libc.qsort(a, 4, ctypes.sizeof(ctypes.c_int), CMP(lambda x, y: x[0] - y[0]))
assert list(a) == [1, 2, 3, 4], list(a)
"
check "curses knows xterm without a terminfo directory" run -c "
import curses, os
os.environ['TERM'] = 'xterm-256color'
curses.setupterm('xterm-256color', 1)
assert curses.tigetnum('colors') == 256
"
check "threads and a deep recursion (16 MiB main stack)" run -c "
import sys, threading
sys.setrecursionlimit(100000)
def down(n): return 0 if n == 0 else 1 + down(n - 1)
assert down(20000) == 20000
t = threading.Thread(target=down, args=(500,)); t.start(); t.join()
"
check "hashlib, zlib, bz2, lzma, decimal, expat" run -c "
import hashlib, zlib, bz2, lzma, decimal, xml.parsers.expat
assert hashlib.sha256(b'').hexdigest().startswith('e3b0c442')
for m in (zlib, bz2, lzma):
    assert m.decompress(m.compress(b'spy')) == b'spy'
print(decimal.Decimal(1) / 7)
"
check "runs as the only file of a copied directory" sh -c "d=\$(mktemp -d) && cp '$bin' \"\$d/python\" && env -i \"\$d/python\" -I -c 'import os, sys; print(sys.version)'"
rm -rf "$empty" /tmp/spy-smoke.$$
[ "$fail" = 0 ] && echo "all passed" || echo "some checks failed"
exit "$fail"
