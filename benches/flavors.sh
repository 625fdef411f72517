#!/usr/bin/env bash
# Benchmark of issue "Flavors and overlays", printed:
#  - size of each flavor's single file (executable + stdlib ZIP, from its manifest);
#  - start-up, median of 20 runs in one interleaved loop: `-c pass` for the plain and the co
#    flavor of each Python, and `import gevent` / `import Crypto.Cipher.AES` in the co flavors;
#  - the cost of an overlay on a built store: realizing python3.11-x86_64 with overlays/psutil.toml
#    (one package build and one relink; CPython and the libraries are reused), wall time.
#
# Usage: benches/flavors.sh [TARGET_SHORT]   (default x86_64; realizes what is missing first)
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-x86_64}
cargo build --release -q
spy=$PWD/target/release/spy
host=/usr/bin/python3.11
bins=()
for r in python3.11 pythonco3.11 python2.7 pythonco2.7; do
  out=$($spy realize --no-out-link -q "$r-$t")
  bins+=("$out/bin/$r-$t")
  $host - "$out/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); b = m["binary"]; z = b["stdlib_zip"]
pk = [c["name"] for c in m["components"] if c["role"] == "package"]
print(f"size {m['release']}: {b['size'] / 1e6:.1f} MB = executable {b['executable_size'] / 1e6:.1f} MB"
      f" + ZIP {z['size'] / 1e6:.1f} MB ({z['entries']} members); packages: {', '.join(pk) or '-'}")
PY
done
$host - "${bins[@]}" <<'PY'
import statistics, subprocess, sys, time
plain3, co3, plain2, co2 = sys.argv[1:]
cases = [(plain3, "pass"), (co3, "pass"), (co3, "import gevent"), (co3, "import Crypto.Cipher.AES"),
         (plain2, "pass"), (co2, "pass"), (co2, "import gevent"), (co2, "import Crypto.Cipher.AES")]
times = {c: [] for c in cases}
for _ in range(20):
    for exe, code in cases:
        t = time.perf_counter()
        subprocess.run([exe, "-c", code], check=True)
        times[(exe, code)].append(time.perf_counter() - t)
for (exe, code), ts in times.items():
    print(f"start-up {exe.rsplit('/', 1)[1]:<22} -c {code!r:<28} {statistics.median(ts) * 1000:6.1f} ms")
PY
overlaid=$($spy path --overlay overlays/psutil.toml "python3.11-$t")
state="cold: psutil built and one relink"
[ -e "$overlaid" ] && state="already in the store: a no-op (remove it with spy gc to time the build)"
start=$(date +%s.%N)
$spy realize --no-out-link -q --overlay overlays/psutil.toml "python3.11-$t" >/dev/null
end=$(date +%s.%N)
echo "overlay: python3.11-$t with overlays/psutil.toml, $state: $($host -c 'import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))' "$start" "$end") s"
