#!/usr/bin/env bash
# Trainer smoke test for CI: trains examples/train/recipes/smoke.yaml (every
# weight kind: dense, kp, dkp, lowrank, pruned; LSTM + GRU; synthetic data) for
# 2 epochs on 8 sequences into a temporary directory, then re-checks the export
# with the independent numpy reference. About 15-30 s on 2 cores, mostly JAX
# start-up and JIT compilation.
#
#   PYTHON=/path/to/venv/bin/python examples/train/smoke.sh
#
# With $KPGEN set to a kpgen binary, the KP factor shapes come from
# `$KPGEN shapes` (as in any training run), and the export also goes through
# `$KPGEN test ... --host ${CC:-cc}`: generated C and Rust run natively on the
# test set and must match kpgen's reference (about 2 s more; no QEMU needed).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python3}"
out="$(mktemp -d "${TMPDIR:-/tmp}/kpgen_smoke.XXXXXX")"
trap 'rm -rf "$out"' EXIT

"$py" "$here/train.py" "$here/recipes/smoke.yaml" --epochs 2 --subset 8 --out "$out"
"$py" "$here/reference.py" "$out"
for f in spec.yaml metrics.json test_x.npy test_len.npy test_y.npy test_logits.npy calib_x.npy calib_len.npy \
         l0_w_ih_A.npy l0_w_hh_S.npy l1_w_ih_U.npy l1_w_hh.npy l2_w_U.npy; do
    [ -f "$out/$f" ] || { echo "smoke: missing $f" >&2; exit 1; }
done
grep -q 'sparse: l1_w_hh.npy' "$out/spec.yaml" && grep -q 'lowrank: \[l1_w_ih_U.npy, l1_w_ih_V.npy\]' "$out/spec.yaml" \
    || { echo "smoke: unexpected spec.yaml:" >&2; cat "$out/spec.yaml" >&2; exit 1; }
if [ -n "${KPGEN:-}" ]; then
    for p in f32 int8; do
        "$KPGEN" test "$out/spec.yaml" --precision $p --inputs "$out/test_x.npy" \
            --lengths "$out/test_len.npy" --labels "$out/test_y.npy" --no-dense --host "${CC:-cc}"
    done
fi
echo "smoke: OK"
