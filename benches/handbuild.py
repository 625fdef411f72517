#!/usr/bin/env python3
"""The "by hand" baseline of benches/package-set.sh: builds a closure the way a person with a
shell script would -- one node after another, no sandbox, no hashing, no store -- running exactly
the steps of the recipes (sources unpacked with tar, patches applied, phases run by bash with the
same variables), with `make -j2` inside each build.

Input: the JSON of `spy graph --format json NODE` for one or more nodes (sources must be fetched:
their cached paths are read from it). Usage: handbuild.py WORKDIR GRAPH.json...
"""
import json
import os
import shutil
import subprocess
import sys
import time

PHASES = ["configure", "build", "check", "install", "fixup"]


def main():
    work = os.path.abspath(sys.argv[1])
    nodes = {}
    for path in sys.argv[2:]:
        with open(path) as f:
            for n in json.load(f)["nodes"]:
                nodes[n["key"]] = n
    order, seen = [], set()

    def visit(key):
        if key in seen:
            return
        seen.add(key)
        for d in nodes[key]["deps"]:
            visit(d)
        order.append(key)

    for key in sorted(nodes):
        visit(key)

    shutil.rmtree(work, ignore_errors=True)
    outs = {}
    t0 = time.monotonic()
    for key in order:
        n = nodes[key]
        out = os.path.join(work, "out", n["name"])
        build = os.path.join(work, "build", n["name"])
        os.makedirs(out)
        os.makedirs(build)
        outs[key] = out
        if n["kind"] == "bootstrap":
            os.makedirs(os.path.join(out, "bin"))
            for t in n["tools"]:
                os.symlink(t["path"], os.path.join(out, "bin", t["name"]))
            continue
        env = {"HOME": "/nonexistent", "TZ": "UTC", "LC_ALL": "C", "LANG": "C",
               "SOURCE_DATE_EPOCH": "315532800", "TMPDIR": "/tmp", "TERM": "dumb",
               "SHELL": "/bin/bash", "MAKEFLAGS": "-j2"}
        env.update(n["env"])
        src_dir = build
        for i, s in enumerate(n["sources"]):
            if s["unpack"]:
                dest = os.path.join(build, f".unpack-{i}")
                os.makedirs(dest)
                subprocess.run(["tar", "xf", s["cached"], "-C", dest], check=True)
                entries = os.listdir(dest)
                if len(entries) == 1 and os.path.isdir(os.path.join(dest, entries[0])):
                    path = os.path.join(build, entries[0])
                    os.rename(os.path.join(dest, entries[0]), path)
                    os.rmdir(dest)
                else:
                    path = os.path.join(build, f"source-{i}")
                    os.rename(dest, path)
                if i == 0:
                    src_dir = path
            else:
                path = os.path.join(build, s["file"])
                shutil.copy(s["cached"], path)
            env[s["var"]] = path
        bins = []
        for bootstrap in (False, True):
            for d in nodes[key]["deps"]:
                if (nodes[d]["kind"] == "bootstrap") == bootstrap and os.path.isdir(os.path.join(outs[d], "bin")):
                    bins.append(os.path.join(outs[d], "bin"))
        env["PATH"] = ":".join(bins) or "/usr/bin:/bin"
        for d in n["deps"]:
            env[nodes[d]["var"]] = outs[d]
        env.update({"out": out, "SPY_BUILD_TOP": build, "SPY_SRC_DIR": src_dir,
                    "SPY_TARGET": n["target"], "SPY_NAME": n["name"], "SPY_VERSION": n["version"],
                    "SPY_JOBS": "2", "SPY_STORE": os.path.join(work, "out")})
        script = ["set -eo pipefail", "umask 022", 'cd "$SPY_SRC_DIR"']
        for p in n["patches"]:
            script.append(f"patch -p1 --forward --batch -i '{p}'")
        for phase in PHASES:
            if phase in n["phases"]:
                script.append(f'cd "$SPY_SRC_DIR"\n{n["phases"][phase]}')
        log = open(os.path.join(work, f"{n['name']}.log"), "w")
        started = time.monotonic()
        r = subprocess.run(["/bin/bash", "-c", "\n".join(script)], env=env, stdout=log, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            sys.exit(f"hand build of {key} failed; see {log.name}")
        print(f"  by hand: {key} {time.monotonic() - started:.1f}s", file=sys.stderr)
    print(f"{time.monotonic() - t0:.1f}")


if __name__ == "__main__":
    main()
