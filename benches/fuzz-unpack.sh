#!/usr/bin/env bash
# Fuzzes the unpackers for a fixed budget: tar (plain, gzip, xz, bzip2), zip, noise behind each
# format's magic (crates/spy-unpack/tests/fuzz_unpack.rs), cache archives and cache metadata
# parsing (crates/spy-cache/tests/fuzz_cache.rs). Every input is unpacked next to a canary that an
# escape would reach; a panic, a change outside the destination or a forbidden file inside it
# fails the harness (proptest then shrinks the input and prints it).
#
#   SPY_FUZZ_CASES=20000 benches/fuzz-unpack.sh     inputs per harness (default 10000)
#   SPY_FUZZ_SEED=N                                 seed (default: random, printed to replay)
#
# Prints each harness's counts, then the totals of inputs and panics; exits 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPY_FUZZ_CASES=${SPY_FUZZ_CASES:-10000}
export SPY_FUZZ_SEED=${SPY_FUZZ_SEED:-$(( (RANDOM << 15) | RANDOM ))}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "fuzz-unpack: $SPY_FUZZ_CASES inputs per harness, seed $SPY_FUZZ_SEED"
start=$(date +%s)
status=0
cargo nextest run -p spy-unpack -p spy-cache --no-fail-fast --no-capture \
  -E 'binary(fuzz_unpack) | binary(fuzz_cache)' >"$log" 2>&1 || status=$?
grep '^fuzz-unpack ' "$log" || true
if [ "$status" != 0 ]; then
  echo "--- failures ---"
  grep -E 'panicked at|Test failed|minimal failing input' -A12 "$log" | head -80 || tail -40 "$log"
fi
awk -v secs=$(( $(date +%s) - start )) '
  /^fuzz-unpack / { inputs += $3; panics += $5; harnesses++ }
  END { printf "fuzz-unpack total: %d inputs, %d panics, %d harnesses, %d s\n", inputs, panics, harnesses, secs }
' "$log"
harnesses=$(grep -c '^fuzz-unpack ' "$log" || true)
if [ "$status" != 0 ] || [ "$harnesses" != 5 ]; then
  echo "fuzz-unpack: FAILED (exit $status, $harnesses of 5 harnesses reported)"
  exit 1
fi
