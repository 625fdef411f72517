#!/usr/bin/env bash
# What the bytes of a single-file Python are (issue 19): for each release given, the file's size,
# its executable part and its stdlib ZIP; the executable's bytes by component, from the linker's map
# that spy-relink keeps (lib/link-sizes.json of the flavor node: sections kept by --gc-sections,
# summed by static library and store entry); what its lazy code groups hold, raw and compressed
# (lib/lazy-code.json); the ZIP's bytes by top-level package. Prints a
# markdown table docs/packages.md takes.
#
# Usage: benches/size.sh [RELEASE...]   (default: python3.13-x86_64 python3.11-x86_64
#        stacklessco2.7-x86_64; SPY_STORE=target/tmp/e2e-store uses what the tests built)
set -euo pipefail
cd "$(dirname "$0")/.."
releases=${*:-python3.13-x86_64 python3.11-x86_64 stacklessco2.7-x86_64}
cargo build --release -q
spy=$PWD/target/release/spy
for release in $releases; do
  out=$($spy realize --no-out-link -q "$release")
  target=${release##*-}
  interp=$(/usr/bin/python3.11 -c 'import json, sys; print(json.load(open(sys.argv[1]))["interpreter"]["name"])' "$out/manifest.json")
  flavor=$($spy path "$interp-$target")
  /usr/bin/python3.11 - "$out" "$flavor" <<'PY'
import collections, json, os, re, sys, zipfile
out, flavor = sys.argv[1], sys.argv[2]
m = json.load(open(os.path.join(out, "manifest.json")))
b = m["binary"]
z = b["stdlib_zip"]
mb = lambda n: f"{n / 1e6:.2f} MB"
print(f"\n## {m['release']}: {mb(b['size'])} = executable {mb(b['executable_size'])} + stdlib ZIP {mb(z['size'])}")
sizes_path = os.path.join(flavor, "lib", "link-sizes.json")
if os.path.exists(sizes_path):
    by_entry = collections.Counter()
    for key, n in json.load(open(sizes_path)).items():
        entry, _, _ = key.partition(" ")
        # `openssl-3.5.7 libcrypto.a` -> openssl; `cpython3.13-3.13.15 libpython3.13.a` -> cpython3.13
        name = re.sub(r"-[0-9][^ ]*$", "", entry) if entry else "(no store entry: " + key + ")"
        by_entry[name] += n
    total = sum(by_entry.values())
    print(f"\nexecutable, {mb(total)} of sections kept (the rest: ELF headers, symbol-free tables):\n")
    print("| component | bytes | share |\n|---|---:|---:|")
    for name, n in by_entry.most_common():
        print(f"| {name} | {n:,} | {100 * n / total:.1f}% |")
else:
    print(f"\n({sizes_path} missing: the flavor was linked before spy-relink kept its map)")
lazy_path = os.path.join(flavor, "lib", "lazy-code.json")
if os.path.exists(lazy_path):
    groups = [g for g in json.load(open(lazy_path)) if g["bytes"]]
    raw, packed = sum(g["bytes"] for g in groups), sum(g["compressed"] for g in groups)
    print(f"\nlazy code groups (compressed in the file until imported; spy-relink), {mb(raw)} -> {mb(packed)}:\n")
    print("| group | modules | bytes | compressed |\n|---|---|---:|---:|")
    for g in sorted(groups, key=lambda g: -g["bytes"]):
        mods = ", ".join(g["modules"][:3]) + (f" (+{len(g['modules']) - 3})" if len(g["modules"]) > 3 else "")
        print(f"| {g['group']} | {mods} | {g['bytes']:,} | {g['compressed']:,} |")
by_top = collections.Counter()
for info in zipfile.ZipFile(os.path.join(out, b["path"])).infolist():
    top = info.filename.split("/")[0]
    by_top[top if "/" in info.filename else "(top-level modules)"] += info.compress_size
print(f"\nstdlib ZIP ({z['entries']} members, {z['compression']}), the largest parts:\n")
print("| part | bytes (compressed) |\n|---|---:|")
for name, n in by_top.most_common(12):
    print(f"| {name} | {n:,} |")
PY
done
