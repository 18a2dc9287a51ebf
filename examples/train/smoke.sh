#!/usr/bin/env bash
# Trainer smoke test for CI: trains examples/train/recipes/smoke.yaml (every
# weight kind: dense, kp with 2 and 3 factors, hybrid kp, dkp, doped hybrid and
# doped 3-factor kp, lowrank, pruned; LSTM + GRU + FastGRNN; synthetic data) for
# 2 epochs on 8 sequences into a temporary directory, then re-checks the export
# with the independent numpy reference. Then a hybrid-KP sweep (dense_rows 0 and
# 4) and a 2-seed study of recipes/smoke_sweep.yaml, one epoch each. About 15-30 s on 2 cores, mostly JAX
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
         l0_w_ih_C.npy l0_w_hh_rows.npy l0_w_hh_S.npz l1_w_ih_U.npy l1_w_hh.npz l2_w_rows.npy l2_u_C.npy \
         l2_u_S.npz l3_w_U.npy; do
    [ -f "$out/$f" ] || { echo "smoke: missing $f" >&2; exit 1; }
done
spec_has() { grep -qF "$1" "$out/spec.yaml"; }
{ spec_has 'w_ih: {kron: [l0_w_ih_A.npy, l0_w_ih_B.npy, l0_w_ih_C.npy]}' &&
  spec_has 'w_hh: {kron: [l0_w_hh_A.npy, l0_w_hh_B.npy], dense_rows: l0_w_hh_rows.npy, dope: {shape: [' &&
  spec_has 'values: l0_w_hh_S.npz:values, rows: l0_w_hh_S.npz:rows, cols: l0_w_hh_S.npz:cols}}' &&
  spec_has 'w_hh: {sparse: {shape: [' && spec_has 'values: l1_w_hh.npz:values, rows: l1_w_hh.npz:rows' && spec_has 'w_ih: {lowrank: [l1_w_ih_U.npy, l1_w_ih_V.npy]}' &&
  spec_has 'w: {kron: [l2_w_A.npy, l2_w_B.npy], dense_rows: l2_w_rows.npy}' &&
  spec_has 'u: {kron: [l2_u_A.npy, l2_u_B.npy, l2_u_C.npy], dope: {shape: [' &&
  spec_has 'values: l2_u_S.npz:values, rows: l2_u_S.npz:rows, cols: l2_u_S.npz:cols}}'; } \
    || { echo "smoke: unexpected spec.yaml:" >&2; cat "$out/spec.yaml" >&2; exit 1; }
if [ -n "${KPGEN:-}" ]; then
    for p in f32 int8 int16; do
        "$KPGEN" test "$out/spec.yaml" --precision $p --inputs "$out/test_x.npy" \
            --lengths "$out/test_len.npy" --labels "$out/test_y.npy" --no-dense --host "${CC:-cc}"
    done
fi
# The hybrid-KP sweep and the seed study, one epoch each.
"$py" "$here/train.py" "$here/recipes/smoke_sweep.yaml" --subset 8 --sweep-dense-rows 0,4 --out "$out/sweep"
"$py" - "$out/sweep" <<'PY'
import json, os, sys
d = sys.argv[1]
sweep = json.load(open(os.path.join(d, "sweep.json")))["sweep"]
assert [e["dense_rows"] for e in sweep] == [0, 4], sweep
assert sweep[1]["params_stored"] > sweep[0]["params_stored"], sweep
spec = open(os.path.join(d, "r4", "spec.yaml")).read()
assert "dense_rows: l0_w_ih_rows.npy" in spec and "dense_rows: l0_w_hh_rows.npy, dope:" in spec, spec
assert "dense_rows" not in open(os.path.join(d, "r0", "spec.yaml")).read()
PY
"$py" "$here/reference.py" "$out/sweep/r4"
"$py" "$here/seeds.py" "$here/recipes/smoke_sweep.yaml" --seeds 2 --subset 8 --out "$out/seeds.json"
"$py" - "$out/seeds.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["examples"]["smoke_sweep"]
assert len(e["accuracy_full_split"]) == 2 and e["params_stored"] > 0, e
PY
echo "smoke: OK"
