#!/usr/bin/env bash
# Fuzzes recipe and overlay loading and the canonical form for a fixed budget
# (crates/spy-plan/tests/fuzz_recipes.rs): random TOML-ish recipes and overlays with hostile
# values, the repository's own recipes mutated, and valid recipes written in two random styles
# (which must give one canonical form). A panic, a loaded graph with an invalid name or entry
# name, or two canonical forms for one recipe fails the harness (proptest shrinks the input and
# prints it).
#
#   SPY_FUZZ_CASES=20000 benches/fuzz-recipes.sh    inputs per harness (default 10000)
#   SPY_FUZZ_SEED=N                                 seed (default: random, printed to replay)
#
# Prints each harness's counts, then the totals of inputs and panics; exits 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPY_FUZZ_CASES=${SPY_FUZZ_CASES:-10000}
export SPY_FUZZ_SEED=${SPY_FUZZ_SEED:-$(( (RANDOM << 15) | RANDOM ))}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "fuzz-recipes: $SPY_FUZZ_CASES inputs per harness, seed $SPY_FUZZ_SEED"
start=$(date +%s)
status=0
cargo nextest run -p spy-plan --release --no-fail-fast --no-capture -E 'binary(fuzz_recipes)' >"$log" 2>&1 || status=$?
grep '^fuzz-recipes ' "$log" || true
if [ "$status" != 0 ]; then
  echo "--- failures ---"
  grep -E 'panicked at|Test failed|minimal failing input' -A12 "$log" | head -80 || tail -40 "$log"
fi
awk -v secs=$(( $(date +%s) - start )) '
  /^fuzz-recipes / { inputs += $3; panics += $5; harnesses++ }
  END { printf "fuzz-recipes total: %d inputs, %d panics, %d harnesses, %d s\n", inputs, panics, harnesses, secs }
' "$log"
harnesses=$(grep -c '^fuzz-recipes ' "$log" || true)
if [ "$status" != 0 ] || [ "$harnesses" != 4 ]; then
  echo "fuzz-recipes: FAILED (exit $status, $harnesses of 4 harnesses reported)"
  exit 1
fi
