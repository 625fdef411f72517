# The build steps every CPython recipe shares (graph/python/cpython2.7.toml, cpython3.11.toml,
# slpython3.7.toml), sourced by their phases:  . "$cpython_tools/lib/spy-cpython.sh"
# Each recipe keeps only what differs: version, source, patches, module list, configure options,
# the reasons modules are missing (PY_MISSING_REASONS), and where its headers come from.

# The static libraries of the package set, in the order their flags are given; those the recipe
# does not depend on are skipped. A library a CPython recipe starts to depend on is added here.
SPY_CPYTHON_LIBRARIES="zlib bzip2 xz zstd ncurses readline libedit sqlite libffi expat openssl"

# Sets SPY_DEP_CPPFLAGS, SPY_DEP_LDFLAGS and SPY_DEP_PKG_CONFIG_PATH for the libraries among the
# recipe's direct dependencies (the build exports each one's entry as $<name>). The recipe decides
# which of them configure sees.
spy_cpython_dep_flags() {
  local name dir
  SPY_DEP_CPPFLAGS="" SPY_DEP_LDFLAGS="" SPY_DEP_PKG_CONFIG_PATH=""
  for name in $SPY_CPYTHON_LIBRARIES; do
    dir="${!name:-}"
    [ -n "$dir" ] || continue
    SPY_DEP_CPPFLAGS="$SPY_DEP_CPPFLAGS -I$dir/include"
    SPY_DEP_LDFLAGS="$SPY_DEP_LDFLAGS -L$dir/lib"
    SPY_DEP_PKG_CONFIG_PATH="$SPY_DEP_PKG_CONFIG_PATH:$dir/lib/pkgconfig"
  done
  SPY_DEP_PKG_CONFIG_PATH="${SPY_DEP_PKG_CONFIG_PATH#:}"
}

# unicodedata's database and the CJK codecs' mappings (1.7 MB of tables) stay deflated in the
# binary until their module is first imported (spy-lazy-tables.pl): 2.7, 3.7 and 3.x name them
# alike. Run on the source tree before configure.
#   spy_cpython_lazy_tables [cjk]
# With `cjk`, the CJK codecs' mappings only: 2.7 keeps unicodedata's tables as they are, since its
# whole module is in a lazy code group (lazy-code.json), whose zstd compresses them to 187 KB
# where deflate left 248 KB.
spy_cpython_lazy_tables() {
  local tool="$cpython_tools/lib/spy-lazy-tables.pl" loc
  if [ "${1:-}" != cjk ]; then
    perl "$tool" hook Modules/unicodedata.c '^(?:PyInit_unicodedata|initunicodedata)\(void\)\n\{\n'
    perl "$tool" tables Modules/unicodedata_db.h Modules/unicodename_db.h
  fi
  perl "$tool" hook Modules/cjkcodecs/cjkcodecs.h '^\s*(?:PyInit__codecs_|init_codecs_)##loc\(void\)\s*\\\n\s*\{\s*\\\n'
  for loc in cn hk jp kr tw; do
    perl "$tool" tables --defines Modules/cjkcodecs/cjkcodecs.h "Modules/cjkcodecs/mappings_$loc.h"
  done
}

# The link kit: what graph/python/pyext/spy-relink needs to link this interpreter again with
# packages' extension modules (flavors). Run in the build tree after make.
#   spy_cpython_link_kit VERSION LIBRARY 'LDFLAGS as make expands them' 'LIBS as make expands them'
spy_cpython_link_kit() {
  local version="$1" library="$2" ldflags="$3" libs="$4" kit="$out/lib/spy-link" main a
  mkdir -p "$kit"
  main=Programs/python.o
  [ -f "$main" ] || main=Modules/python.o
  cp "$library" "$main" Modules/config.c "$kit/"
  # The flags as the Makefile has them after configure (the make variables differ by version).
  cat > spy-link.mk <<MK
spy-link-env: ; @printf '%s\n' 'PY_LDFLAGS="$ldflags"' 'PY_LIBS="$libs"'
MK
  {
    echo "PY_EXECUTABLE=python$version"
    echo "PY_VERSION=$version"
    echo "PY_LIBRARY=$library"
    make --no-print-directory -s -f Makefile -f spy-link.mk spy-link-env
  } > "$kit/link.env"
  # Libraries of the build tree the link names relatively (libmpdec.a...) go into the kit.
  for a in $(sed -n 's/^PY_LIBS=//p' "$kit/link.env" | grep -o '[^ "]*/[^ "]*[.]a' | grep -v '^/' || true); do
    cp "$a" "$kit/"
    sed -i "s|$a|$kit/$(basename "$a")|" "$kit/link.env"
  done
  cat "$kit/link.env"
}

# Compiles the standard library the way zipimport reads it: each .pyc beside its source.
#   spy_cpython_compile_stdlib PYTHON STDLIB
# PYTHON is the interpreter of the same version (the build's own, or the build Python of a cross
# build). The excluded files are test data that is not valid Python on purpose (in test/, and from
# 3.13 on in test/tokenizedata/ and test/test_future_stmt/).
spy_cpython_compile_stdlib() {
  local py="$1" stdlib="$2" exclude='(lib2to3/tests/data/|/bad_coding|/badsyntax_)' version
  version=$("$py" -E -S -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  # What `patch` left beside a file it applied with an offset is not part of the library.
  find "$stdlib" \( -name '*.orig' -o -name '*.rej' \) -type f -delete
  # lib2to3 reads its grammars from pickles beside Grammar.txt, named for the interpreter's exact
  # version; inside the single file it can read them but never write them, so they are made here,
  # by this interpreter (or, cross-built, by the build Python of the same version).
  if [ -f "$stdlib/lib2to3/Grammar.txt" ]; then
    "$py" -E -S -c 'import os, sys
sys.path.insert(0, sys.argv[1])
from lib2to3.pgen2 import driver
for g in ("Grammar.txt", "PatternGrammar.txt"):
    driver.load_grammar(os.path.join(sys.argv[1], "lib2to3", g), save=True, force=True)
' "$stdlib"
    ls "$stdlib"/lib2to3/*.pickle
  fi
  # ensurepip's wheels, recompressed whole (spy-pack-wheels.py; the single-file patches inflate
  # them): xz, or for 2.7, which has no lzma module, zstd, with relink-tools' compressor built
  # here against the zstd node.
  if [ -d "$stdlib/ensurepip/_bundled" ]; then
    local packing=xz
    if [ "${version%%.*}" = 2 ]; then
      packing=zstd
      (. "$toolchain/env.sh" && $CC -O2 -I"$zstd/include" -o spy-zstd-pack \
        "$relink_tools/share/spy-relink/spy-lazy-pack.c" "$zstd/lib/libzstd.a")
      export SPY_ZSTD_PACK="$PWD/spy-zstd-pack"
    fi
    "$py" -E -S "$cpython_tools/lib/spy-pack-wheels.py" "$stdlib/ensurepip/_bundled" "$packing"
  fi
  # A C extension built for the single file could never be loaded by it (a static executable has
  # no dynamic loader): its sysconfig names a stand-in compiler that says so and what to do.
  cp "$cpython_tools/lib/spy-no-c-extensions.py" "$stdlib/_spy_no_c_extensions.py"
  local data
  for data in "$stdlib"/_sysconfigdata*.py; do
    cat "$cpython_tools/lib/spy-sysconfig-single-file.py" >> "$data"
  done
  if [ "${version%%.*}" = 2 ]; then
    # 2.7's .pyc record their source's mtime. The build's own .pyc go, and every source gets
    # SOURCE_DATE_EPOCH as its mtime (patched files and _sysconfigdata.py would otherwise carry
    # the time of the build: `spy check` found it), so the .pyc are the same in every build.
    find "$stdlib" -name '*.py[co]' -type f -delete
    find "$stdlib" -name '*.py' -type f -exec touch -d "@$SOURCE_DATE_EPOCH" {} +
    # `-d ''`: names relative to the stdlib (os.py, email/utils.py), as for 3.x, instead of the
    # build's store path, which carried cpython2.7's id into every .pyc of every flavor.
    "$py" -E -S -m compileall -q -d '' -x "$exclude" "$stdlib"
    return
  fi
  # Timestamp-based caches of what the build's python imported are not part of the output;
  # unchecked-hash .pyc read no timestamp. Names in the .pyc are relative to the stdlib, so no
  # build path is baked in.
  find "$stdlib" -name __pycache__ -type d -prune -exec rm -rf {} +
  local flags=(-q -b --invalidation-mode unchecked-hash -x "$exclude")
  local minor="${version#*.}"
  # (Before 3.9, `-d ''` gives the same relative names: no store path in 3.7's .pyc either.)
  if [ "$minor" -ge 9 ]; then flags+=(-s "$stdlib"); else flags+=(-d ''); fi
  # One process, in compileall's sorted order, with a fixed hash seed (which -E would ignore: the
  # environment is cleared of what -E guards against instead). marshal marks an object as shared
  # by its reference count, which depends on what the same process compiled before, so on how
  # `-j` splits the work: 3.7's .pyc differed from build to build that way, and 3.13's too
  # (`spy check` found test_tkinter/test_text.pyc 15 bytes shorter in a rebuild; from 3.12 on
  # the interpreter keeps code constants it has seen, so refcounts carry from file to file:
  # argparse.pyc and weakref.pyc come out differently with -j2 than in one process). Before 3.10
  # marshal also wrote frozenset constants (`x in {"a", "b"}`) in their hash order. It costs a
  # few seconds per build.
  #
  # From 3.11 on, .pyc carry each instruction's columns (PEP 657), for the carets under a
  # traceback's source line. A single file holds no sources (but with --py-sources), so no
  # traceback through the stdlib shows those carets: the stdlib is compiled without them (-X
  # no_debug_ranges, what PYTHONNODEBUGRANGES does), a quarter of its deflated .pyc (python3.11:
  # 5.50 -> 4.17 MB; issue 19). Test suites keep them (CPython's tests check the carets under their
  # own lines); no single file holds them.
  py_fixed_env() { env -u PYTHONPATH -u PYTHONHOME -u PYTHONSTARTUP PYTHONHASHSEED=0 "$py" -S "$@"; }
  if [ "$minor" -ge 11 ]; then
    local tests=()
    mapfile -t tests < <(find "$stdlib" -type d \( -name test -o -name tests -o -name idle_test \) -prune | LC_ALL=C sort)
    py_fixed_env -X no_debug_ranges -m compileall "${flags[@]}" -x "$exclude|/(test|tests|idle_test)/" "$stdlib"
    if [ ${#tests[@]} -gt 0 ]; then
      py_fixed_env -m compileall "${flags[@]}" "${tests[@]}"
    fi
    return
  fi
  py_fixed_env -m compileall "${flags[@]}" "$stdlib"
}

# modules.json: the built-in modules, and each module left out with its reason (for the manifest).
#   spy_cpython_modules_json PYTHON [--inittab Modules/config.c] [--setup-stdlib FILE TEXT]
# See spy-cpython-modules.py.
spy_cpython_modules_json() {
  local py="$1"
  shift
  "$py" -E -S "$cpython_tools/lib/spy-cpython-modules.py" "$out/modules.json" "$@"
}
