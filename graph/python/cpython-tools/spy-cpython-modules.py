# Writes modules.json for a CPython build (run by a Python of the same version, 2.7 or 3.x):
# {"builtin": [...], "missing": {name: reason}}, the manifest's record of what is in the binary.
#
#   python spy-cpython-modules.py OUT [--inittab CONFIG_C] [--setup-stdlib FILE TEXT]
#
# builtin: sys.builtin_module_names of the running Python, or, for a cross build whose interpreter
# cannot run here, the names in CONFIG_C's inittab. missing: the modules configure commented out in
# FILE (Modules/Setup.stdlib, 3.11+: reason TEXT; test modules: "test-only"), then the recipe's
# own reasons (PY_MISSING_REASONS, a JSON object), each only if the module is not built in.
import json, os, re, sys

TEST_ONLY = "test-only module, kept out of the release binary"

def main(argv):
    out, args = argv[0], argv[1:]
    inittab = setup_stdlib = None
    while args:
        if args[0] == "--inittab" and len(args) >= 2:
            inittab, args = args[1], args[2:]
        elif args[0] == "--setup-stdlib" and len(args) >= 3:
            setup_stdlib, args = (args[1], args[2]), args[3:]
        else:
            sys.exit("spy-cpython-modules: unknown argument %r" % args[0])
    if inittab:
        table = open(inittab).read().split("_PyImport_Inittab[] = {", 1)[1].split("{0, 0}", 1)[0]
        builtin = sorted(set(re.findall(r'^\s*[{]"([A-Za-z0-9_.]+)",', table, re.M)))
        assert len(builtin) > 50 and "_ssl" in builtin, builtin
    else:
        builtin = sorted(sys.builtin_module_names)
    missing = {}
    if setup_stdlib:
        path, text = setup_stdlib
        for line in open(path):
            m = re.match(r"^#([A-Za-z_][A-Za-z0-9_]*) ", line)
            if m:
                name = m.group(1)
                test = name.startswith("_test") or name in ("_ctypes_test", "_xxtestfuzz")
                missing[name] = TEST_ONLY if test else text
    reasons = json.loads(os.environ.get("PY_MISSING_REASONS") or "{}")
    for name, why in sorted(reasons.items()):
        missing[name] = TEST_ONLY if why == "test-only" else why
    for name in builtin:
        missing.pop(name, None)
    json.dump({"builtin": builtin, "missing": dict(sorted(missing.items()))}, open(out, "w"), indent=1)

main(sys.argv[1:])
