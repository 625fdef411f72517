"""The C compiler of a spy single-file Python, as sysconfig names it (CC, CXX, LDSHARED).

A single file is one static executable: it has no dynamic loader, so it could never import the
`.so` a C extension build makes, and no Python.h lies beside it. Without this, pip's build of
such a package ends in `Python.h: No such file or directory`, which says neither why nor what to
do. This module is what the build runs instead of gcc: it names the package being built (from
the PKG-INFO, setup.cfg or pyproject.toml of the directory pip and setup.py build in) and the
way that works, compiling the package into the interpreter with spy, then fails the build.

Installed as _spy_no_c_extensions.py by graph/python/cpython-tools/spy-cpython.sh, which also
points sysconfig's compiler at it (only when the stdlib is read from the single file's ZIP:
interpreters in the store build packages with spy's compiler). Python 2.7 to 3.x.
"""
import os
import re
import sys


def _read(name):
    try:
        with open(name) as f:
            return f.read(65536)
    except (IOError, OSError, UnicodeDecodeError):
        return ""


def package():
    """(name, version) of the package in the current directory; either may be None."""
    text = _read("PKG-INFO")
    name = re.search(r"^Name:[ \t]*(\S+)", text, re.M)
    version = re.search(r"^Version:[ \t]*(\S+)", text, re.M)
    if name:
        return name.group(1), version.group(1) if version else None
    for f in ("pyproject.toml", "setup.cfg"):
        m = re.search(r"""^name[ \t]*=[ \t]*["']?([A-Za-z0-9._-]+)""", _read(f), re.M)
        if m:
            return m.group(1), None
    return None, None


def release():
    """The release this interpreter is (its file's own name: python3.13-x86_64), seen through a
    venv's link to it."""
    exe = os.path.basename(os.path.realpath(sys.executable or ""))
    if re.match(r"^[a-z]+[0-9]+\.[0-9]+-[A-Za-z0-9_-]+$", exe):
        return exe
    return "python%d.%d-x86_64" % sys.version_info[:2]


def main():
    name, version = package()
    spec = name or "PACKAGE"
    if name and version:
        spec = "%s==%s" % (name, version)
    what = name or "this package"
    sys.stderr.write(
        "\nerror: %s has C code to compile, and this Python cannot load C extension modules: it is "
        "one static executable made by spy, with no dynamic loader (and no Python.h beside it).\n"
        "Compile the package into the interpreter instead:\n"
        "    spy realize %s --with %s\n"
        "(pure-Python packages install with pip as usual.)\n\n" % (what, release(), spec)
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
