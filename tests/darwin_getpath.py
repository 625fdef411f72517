"""The darwin getpath.py (as patched for the single file), run by the host's Python 3.11 in
CPython's own mock namespace (Lib/test/test_getpath.py) with os_name = "darwin", the way macOS
would run it. Usage: darwin_getpath.py CPYTHON_ENTRY  (tests/darwin.rs)."""
import importlib.util
import os
import shutil
import sys
import tempfile
import unittest

entry = sys.argv[1]
# test_getpath reads ../../../Modules/getpath.py beside itself when it is there: lay that out.
root = tempfile.mkdtemp()
os.makedirs(os.path.join(root, "Lib", "test"))
os.makedirs(os.path.join(root, "Modules"))
shutil.copy(os.path.join(entry, "lib/python3.11/test/test_getpath.py"), os.path.join(root, "Lib", "test"))
shutil.copy(os.path.join(entry, "share/spy/getpath.py"), os.path.join(root, "Modules"))
spec = importlib.util.spec_from_file_location("spy_test_getpath", os.path.join(root, "Lib/test/test_getpath.py"))
tg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tg)
assert b"spy_loaded_executable" in tg.SOURCE, "not the darwin-patched getpath.py"
# getpath.c's hasappendedzip, mocked: the files a test names have a ZIP.
for ns in (tg.MockPosixNamespace, tg.MockNTNamespace):
    ns.hasappendedzip = lambda self, path: path in self.get("_spy_zips", ())

# CPython's own layouts (Windows, Linux, macOS frameworks, venvs, build trees) are unchanged.
result = unittest.TextTestRunner(stream=sys.stdout, verbosity=0).run(
    unittest.defaultTestLoader.loadTestsFromTestCase(tg.MockGetPathTests))
assert result.wasSuccessful(), "the patches changed one of CPython's getpath layouts"

SINGLE = "/opt/spy/python3.11-darwin-arm64"


def darwin(argv0, loaded, links=(), xfiles=(), env_path="", single=SINGLE, prefix="/opt/spy"):
    """`loaded` is what _NSGetExecutablePath says; the single file is `single`."""
    ns = tg.MockPosixNamespace(os_name="darwin", argv0=argv0, PREFIX="/usr/local",
                               real_executable=loaded, ENV_PATH=env_path)
    ns.add_known_xfile(single)
    ns["_spy_zips"] = {single}
    for x in xfiles:
        ns.add_known_xfile(x)
    for link, target in links:
        ns.add_known_link(link, target)
    got = tg.getpath(ns, ["module_search_paths", "prefix", "executable", "stdlib_dir"])
    assert got["module_search_paths"] == [single], (argv0, loaded, got)
    assert (got["prefix"], got["stdlib_dir"]) == (prefix, single), got
    return got["executable"]


# By its path; by name through PATH; through a symlink (sys.executable keeps the spelling used);
# and with an argv[0] naming another Python (exec -a): the file dyld loaded wins, as
# /proc/self/exe does on Linux.
assert darwin(SINGLE, SINGLE) == SINGLE
assert darwin("python3.11-darwin-arm64", SINGLE, env_path="/opt/spy") == SINGLE
assert darwin("/usr/local/bin/py", "/usr/local/bin/py", links=[("/usr/local/bin/py", SINGLE)],
              xfiles=["/usr/local/bin/py"]) == "/usr/local/bin/py"
assert darwin("/usr/bin/python3", SINGLE, xfiles=["/usr/bin/python3"]) == SINGLE
# Installed as <prefix>/bin/<name>, as python-build-standalone lays Python out: bin/'s parent is the
# prefix (site-packages, sysconfig and pip agree with an installed Python's).
IN_BIN = "/opt/py/bin/python3.11-darwin-arm64"
assert darwin(IN_BIN, IN_BIN, single=IN_BIN, prefix="/opt/py") == IN_BIN
print("darwin getpath: ok")
