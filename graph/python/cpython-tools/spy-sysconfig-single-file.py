
# Appended by spy (graph/python/cpython-tools/spy-cpython.sh). Read from a single file's ZIP, this
# module names _spy_no_c_extensions as the C compiler: a C extension cannot be loaded by a static
# executable, and that module says so and what to do instead of failing on a missing Python.h.
# On disk (an interpreter in the store, which builds packages with spy's own compiler) the
# values stay as configure found them.
def _spy_compiler_stand_in():
    import os, sys
    here = globals().get("__file__") or ""
    if not here or os.path.isfile(here):
        return
    exe = sys.executable or "python"
    if '"' in exe or "\\" in exe:
        exe = "python"
    command = '"%s" -m _spy_no_c_extensions' % exe
    for key in ("CC", "CXX", "LDSHARED", "LDCXXSHARED", "BLDSHARED"):
        if key in build_time_vars:
            build_time_vars[key] = command
_spy_compiler_stand_in()
del _spy_compiler_stand_in
