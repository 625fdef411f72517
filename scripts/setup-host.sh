#!/usr/bin/env bash
# Prepares a Debian machine for spy: the stage-0 host tools, deb-src entries (so sources can come
# through `apt-get source`), and cargo-nextest for the test suite. Idempotent; run as root (or with
# sudo available).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# deb-src entries: copies of the machine's own Debian entries with `Types: deb-src`. Only stanzas
# signed by the Debian archive key are copied, so third-party repositories without sources are left out.
SRC_LIST=/etc/apt/sources.list.d/spy-deb-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src ' /etc/apt/sources.list; then
  tmp=$(mktemp)
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    grep -q 'debian-archive-keyring' "$f" || continue
    sed -e 's/^Types:.*$/Types: deb-src/' "$f" >> "$tmp"
    echo >> "$tmp"
  done
  if [ -s /etc/apt/sources.list ]; then
    grep -E '^deb ' /etc/apt/sources.list | sed -e 's/^deb /deb-src /' > "${tmp}.list" || true
    if [ -s "${tmp}.list" ]; then $SUDO cp "${tmp}.list" /etc/apt/sources.list.d/spy-deb-src.list; fi
  fi
  if [ -s "$tmp" ]; then $SUDO cp "$tmp" "$SRC_LIST"; fi
  rm -f "$tmp" "${tmp}.list"
fi

# Other Debian suites' sources too, each the same entry as the machine's main Debian one with the
# suite changed: Debian 11 ("bullseye") has the last Python 2.7 (2.7.18); Debian 13 ("trixie") and
# unstable ("sid") carry the current CPython, OpenSSL 3.5 and the newest libraries.
main=$(grep -ls 'debian-archive-keyring' /etc/apt/sources.list.d/*.sources | head -n1 || true)
for suite in bullseye trixie sid; do
  list=/etc/apt/sources.list.d/spy-deb-src-$suite.sources
  if [ -n "$main" ] && [ ! -e "$list" ]; then
    tmp=$(mktemp)
    # Only the first stanza (the main archive), as deb-src for the suite.
    awk 'BEGIN { RS = ""; ORS = "\n\n" } NR == 1 { print }' "$main" \
      | sed -e 's/^Types:.*$/Types: deb-src/' -e "s/^Suites:.*\$/Suites: $suite/" > "$tmp"
    $SUDO cp "$tmp" "$list"
    rm -f "$tmp"
  fi
done

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Stage 0 of the graph (graph/bootstrap/stage0.toml) and what the tests use (nginx: the WebDAV
# binary cache of tests/cache.rs; diffoscope: `spy check` reports; python3-venv: the CycloneDX
# validator of tests/reproducible.rs; zstd: unpacking release archives; python3.11-dev: tests/darwin.rs
# compiles the darwin getpath's C check against the host's Python headers; chromium and a font:
# tests/browse.rs looks at `spy serve`'s pages in a headless browser).
$SUDO apt-get install -y -qq --no-install-recommends \
  bash coreutils gcc g++ gcc-multilib binutils make patch perl m4 pkg-config \
  sed grep mawk findutils diffutils tar gzip bzip2 xz-utils hostname debianutils \
  ncurses-bin tcl cmake git time python3-pip ca-certificates tmux openssl util-linux \
  nginx diffoscope-minimal python3.11-dev python3-venv zstd strace \
  chromium fonts-dejavu-core >/dev/null

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
