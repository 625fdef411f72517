# The steps of a Linux target's toolchain that do not depend on the compiler behind its `gcc`
# wrapper: sourced by toolchain.toml's phases, and by overlays that swap the compiler
# (overlays/zig-toolchain.toml), so each writes only its own wrapper.
# Expects $out, $musl, $linux_headers, $stage0 and $TRIPLE, $OPENSSL_TARGET from the recipe.

# include/ and lib/: our musl's headers with the kernel's, and its crt files and libraries. Store
# entries are read-only: copies must not keep their modes. musl's gcc specs stay behind (they
# name musl's own entry; a wrapper that wants them writes its own).
spy_toolchain_libc() {
  mkdir -p "$out/bin" "$out/include" "$out/lib"
  cp -R --no-preserve=mode "$musl/include/." "$out/include/"
  cp -R --no-preserve=mode "$linux_headers/include/." "$out/include/"
  local f
  for f in "$musl/lib/"*; do
    case "$(basename "$f")" in musl-gcc.specs) ;; *) cp -R --no-preserve=mode "$f" "$out/lib/" ;; esac
  done
}

# Everything around the `gcc` wrapper the caller wrote in $out/bin/gcc:
#   spy_toolchain_finish BUILD_CC
# BUILD_CC compiles the helper programs that run during a build, on the build machine.
spy_toolchain_finish() {
  local build_cc="$1" t
  chmod 755 "$out/bin/gcc"
  cat > "$out/bin/cpp" <<WRAPPER
#!/bin/sh
exec "$out/bin/gcc" -E "\$@"
WRAPPER
  chmod 755 "$out/bin/cpp"
  ln -s gcc "$out/bin/cc"
  ln -s gcc "$out/bin/$TRIPLE-gcc"
  ln -s gcc "$out/bin/$TRIPLE-cc"
  # The setup hook recipes source (`. "$toolchain/env.sh"`): which compiler, which triple, and the
  # host compiler for helper programs. Native builds: build = host, so configure runs its test
  # programs (they run on this machine).
  cat > "$out/env.sh" <<ENV
export CC=gcc CPP=cpp AR=ar RANLIB=ranlib NM=nm STRIP=strip
export SPY_TRIPLE=$TRIPLE
export BUILD_CC=$build_cc
export OPENSSL_TARGET=$OPENSSL_TARGET
export CONFIGURE_TRIPLE="--build=$TRIPLE --host=$TRIPLE"
ENV
  # ar always makes deterministic archives (zero times, owners and modes): a `U` modifier, which
  # ncurses asks for with `u`, becomes `D` without `u`, which D does not allow (measured by
  # `spy check --closure`: ncurses' archives held the build time of every member).
  cat > "$out/bin/ar" <<WRAPPER
#!/bin/sh
case "\$1" in
  --*|@*) ;;
  *U*) m=\$(printf '%s' "\$1" | tr -d u | tr U D); shift; set -- "\$m" "\$@" ;;
esac
exec $stage0/bin/ar "\$@"
WRAPPER
  chmod 755 "$out/bin/ar"
  ln -s ar "$out/bin/$TRIPLE-ar"
  for t in ranlib nm strip ld objcopy objdump readelf as; do
    ln -s "$stage0/bin/$t" "$out/bin/$t"
    ln -s "$stage0/bin/$t" "$out/bin/$TRIPLE-$t"
  done
}

# After install: the wrappers build and run a static program (the compiler's -v output of the link
# is left in link.txt for the caller's own checks), and ar stays deterministic.
spy_toolchain_check() {
  cat > t.c <<'C'
#include <stdio.h>
#include <linux/mman.h>
int main(void) { printf("ok %d\n", (int)sizeof(void *)); return 0; }
C
  "$out/bin/gcc" -O2 -v -o t t.c 2> link.txt
  ./t
  "$out/bin/gcc" -c -o t.o t.c
  "$out/bin/ar" -curvU one.a t.o
  touch -d @1000000000 t.o
  "$out/bin/ar" curvU two.a t.o
  cmp one.a two.a
}
