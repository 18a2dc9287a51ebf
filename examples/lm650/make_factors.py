"""Seeded (untrained) doped-KP factors with the shape of the doped-KP paper's language model.

Two stacked LSTM layers, input 650, hidden 650. Every weight (w_ih and w_hh of both layers,
2600 x 650 each) is W = kron(A, B) + S with A 50 x 26, B 52 x 25 (`kpgen shapes 2600 650`,
first choice) and S a random sparse overlay of 62,504 non-zeros (3.70 % density), so that the
whole model stores 1/25 of the dense parameter count:

    dense  = 4 x 2600 x 650 + 4 x 2600 (b_ih, b_hh of 2 layers)  = 6,770,400
    stored = 4 x (50*26 + 52*25) + 4 x 62,504 + 4 x 2600          =   270,816  (25.0x)

No text corpus is usable offline here, so the factors are NOT trained: they are drawn from a
fixed-seed generator. They are scaled so that the LSTM stays in a sensible range: every row of
kron(A, B) has expected squared norm 1/2 and every row of S expected squared norm 1/2, so every
row of W has norm about 1, and with inputs uniform in [-1, 1) the gate pre-activations have a
standard deviation of about 0.6 (the script prints the measured figures).

numpy only; run with the trainer's venv:

    target/train-venv/bin/python examples/lm650/make_factors.py

Writes examples/lm650/factors/: the factors A, B and biases as float32 .npy, each overlay S as
its non-zeros in the file `scipy.sparse.save_npz(path, S.tocsr())` writes (written here with numpy
alone: members format, shape, data, indices, indptr), so no file is over 1 MB (336 KB for each S,
1.6 MB in all, where the full-size overlays took 26 MB; regenerate, do not commit),
factors/inputs.npy (3 sequences x 4
steps x 650 features, uniform in [-1, 1)) for `kpgen test --inputs`, and factors/calib.npy (16 more
such sequences) for `--calibrate`. `--full` writes each S as its full-size .npy instead (the
spec then names S_*.npy), to compare the two forms: kpgen generates the same code from both.
"""

import os
import sys

import numpy as np

SEED = 650
HIDDEN = 650
INPUT = 650
LAYERS = 2
A_SHAPE = (50, 26)
B_SHAPE = (52, 25)
NNZ = 62_504  # per 2600 x 650 matrix
SEQUENCES = 3
CALIB_SEQUENCES = 16
STEPS = 4


def dkp(rng):
    """One 2600 x 650 doped-KP weight: (A, B, S) with row norms of kron(A, B) + S about 1."""
    # INPUT == HIDDEN, so w_ih and w_hh are both 4H x 650.
    rows, cols = 4 * HIDDEN, INPUT
    # Var(A) = 1/(2 n1), Var(B) = 1/n2: E|row of kron(A, B)|^2 = n1 Var(A) * n2 Var(B) = 1/2.
    a = rng.standard_normal(A_SHAPE) / np.sqrt(2.0 * A_SHAPE[1])
    b = rng.standard_normal(B_SHAPE) / np.sqrt(B_SHAPE[1])
    assert A_SHAPE[0] * B_SHAPE[0] == rows and A_SHAPE[1] * B_SHAPE[1] == cols
    # S: NNZ distinct positions, values with E|row of S|^2 = 1/2.
    pos = rng.choice(rows * cols, size=NNZ, replace=False)
    per_row = NNZ / rows
    s = np.zeros(rows * cols)
    s[pos] = rng.standard_normal(NNZ) / np.sqrt(2.0 * per_row)
    return (
        a.astype(np.float32),
        b.astype(np.float32),
        s.reshape(rows, cols).astype(np.float32),
    )


def save_csr(path, s):
    """What scipy.sparse.save_npz(path, csr_matrix(s)) writes, with numpy alone: CSR, column
    indices sorted within each row, int32 indices."""
    rows, cols = np.nonzero(s)  # row-major order: sorted by row, then column
    indptr = np.zeros(s.shape[0] + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=s.shape[0]), out=indptr[1:])
    np.savez_compressed(
        path,
        indices=cols.astype(np.int32),
        indptr=indptr,
        format=b"csr",
        shape=np.array(s.shape, dtype=np.int64),
        data=s[rows, cols],
    )


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "factors")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)

    weights = []
    for layer in range(LAYERS):
        mats = {}
        for name in ("ih", "hh"):
            a, b, s = dkp(rng)
            np.save(os.path.join(out, f"A_{name}{layer}.npy"), a)
            np.save(os.path.join(out, f"B_{name}{layer}.npy"), b)
            if "--full" in sys.argv[1:]:
                np.save(os.path.join(out, f"S_{name}{layer}.npy"), s)
            else:
                save_csr(os.path.join(out, f"S_{name}{layer}.npz"), s)
            mats[name] = np.kron(a.astype(np.float64), b.astype(np.float64)) + s
        biases = {}
        for name in ("ih", "hh"):
            bias = (0.05 * rng.standard_normal(4 * HIDDEN)).astype(np.float32)
            np.save(os.path.join(out, f"b_{name}{layer}.npy"), bias)
            biases[name] = bias.astype(np.float64)
        weights.append((mats, biases))

    x = rng.uniform(-1.0, 1.0, size=(SEQUENCES, STEPS, INPUT)).astype(np.float32)
    np.save(os.path.join(out, "inputs.npy"), x)
    # Separate calibration sequences for --precision int8/int16 (drawn after everything above,
    # so they do not change the factors or inputs.npy).
    calib = rng.uniform(-1.0, 1.0, size=(CALIB_SEQUENCES, STEPS, INPUT)).astype(np.float32)
    np.save(os.path.join(out, "calib.npy"), calib)

    # A plain numpy forward pass (PyTorch gate order i, f, g, o), only to report the ranges.
    row_norms = [np.linalg.norm(m[k], axis=1) for m, _ in weights for k in ("ih", "hh")]
    print(
        f"row norms of W: min {min(r.min() for r in row_norms):.3f} "
        f"mean {np.mean([r.mean() for r in row_norms]):.3f} "
        f"max {max(r.max() for r in row_norms):.3f}"
    )
    h = [np.zeros((SEQUENCES, HIDDEN)) for _ in range(LAYERS)]
    c = [np.zeros((SEQUENCES, HIDDEN)) for _ in range(LAYERS)]
    pre_all = [[] for _ in range(LAYERS)]
    for t in range(STEPS):
        inp = x[:, t, :].astype(np.float64)
        for layer, (mats, biases) in enumerate(weights):
            pre = inp @ mats["ih"].T + h[layer] @ mats["hh"].T + biases["ih"] + biases["hh"]
            pre_all[layer].append(pre)
            i, f, g, o = np.split(pre, 4, axis=1)
            c[layer] = sigmoid(f) * c[layer] + sigmoid(i) * np.tanh(g)
            h[layer] = sigmoid(o) * np.tanh(c[layer])
            inp = h[layer]
    for layer in range(LAYERS):
        pre = np.stack(pre_all[layer])
        print(
            f"layer {layer}: gate pre-activation std {pre.std():.3f}, "
            f"|pre| > 3 (saturated): {100.0 * np.mean(np.abs(pre) > 3.0):.2f} %, "
            f"final |h| mean {np.abs(h[layer]).mean():.3f} max {np.abs(h[layer]).max():.3f}"
        )
    kp = LAYERS * 2 * (A_SHAPE[0] * A_SHAPE[1] + B_SHAPE[0] * B_SHAPE[1])
    bias = LAYERS * 2 * 4 * HIDDEN
    stored = kp + LAYERS * 2 * NNZ + bias
    dense = LAYERS * 2 * 4 * HIDDEN * INPUT + bias
    print(
        f"stored parameters {stored:,} (KP {kp:,}, overlay {LAYERS * 2 * NNZ:,}, biases {bias:,}); "
        f"dense {dense:,} ({4 * dense:,} B float32); compression {dense / stored:.2f}x"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
