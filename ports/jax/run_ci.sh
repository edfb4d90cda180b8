#!/usr/bin/env bash
# CI for the JAX port (issue 27): recompute every golden case with JAX from its inputs, check the
# candidate with `darlc verify --tier f64`, then check that every planted mistake of
# ports/jax/mutations.txt is rejected. Needs python3 with jax (CPU), numpy, safetensors and a
# built darlc (DARLC, default target/release/darlc). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../.."
DARLC=${DARLC:-target/release/darlc}
REF=fixtures/golden
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# One on-disk cache of compiled kernels for the clean run and every mutation rerun.
export DARLC_JAX_CACHE="$WORK/jax_cache"
t0=$(date +%s)
python3 ports/jax/darlc_jax.py --reference "$REF" --out "$WORK/cand"
if ! "$DARLC" verify --reference "$REF" --candidate "$WORK/cand" --tier f64 >"$WORK/verify.log" 2>&1; then
  grep -E "FAIL|verify" "$WORK/verify.log" | head -40
  echo "JAX port: darlc verify --tier f64 FAILED" >&2
  exit 1
fi
tail -1 "$WORK/verify.log"
t1=$(date +%s)
echo "JAX port: all cases pass the f64 tier ($((t1 - t0)) s)"
failed=0
while read -r mut prefixes; do
  case "$mut" in '' | '#'*) continue ;; esac
  rm -rf "$WORK/mut"
  cp -r "$WORK/cand" "$WORK/mut"
  DARLC_JAX_MUTATION="$mut" python3 ports/jax/darlc_jax.py --reference "$REF" --out "$WORK/mut" \
    --only "$prefixes"
  if "$DARLC" verify --reference "$REF" --candidate "$WORK/mut" --tier f64 >"$WORK/mut.log" 2>&1; then
    echo "mutation $mut: NOT rejected" >&2
    failed=1
  else
    echo "mutation $mut: rejected ($(grep -c ' FAIL (' "$WORK/mut.log") tensors fail, e.g. $(grep ' FAIL (' "$WORK/mut.log" | head -1 | awk '{print $1, $2, "max_abs", $5}'))"
  fi
done <ports/jax/mutations.txt
echo "JAX port CI: $(($(date +%s) - t0)) s in total"
exit $failed
