"""Float64 numpy reference forward pass, read straight from a kpgen spec.

Independent of the JAX training code on purpose: it only sees spec.yaml and
the .npy files, so it checks the export as well as the maths.

    python examples/train/reference.py examples/basic_motions/kp

recomputes the logits of test_x.npy and compares them with test_logits.npy.
Needs only numpy and pyyaml.
"""

import os
import sys

import numpy as np
import yaml


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


ACT = {
    "none": lambda v: v,
    "relu": lambda v: np.maximum(v, 0.0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softmax": lambda v: np.exp(v - v.max()) / np.exp(v - v.max()).sum(),
}


def _tensor(entry, base):
    """A spec tensor: a path, {kron: [A, B, ...]} (np.kron left to right, two or more
    factors) with optional dense_rows: U (W = [U ; kron]) and dope: S (+ S), {lowrank: [U, V]}
    (W = U @ V) or {sparse: S} (W = S, zeros pruned); S a full-size path or the explicit form
    {shape, values, rows, cols} with `file.npz:member` arrays."""
    def load(p, dtype=np.float32):
        path, _, member = p.partition(":")
        a = np.load(os.path.join(base, path))
        if member:
            a = a[member]
        assert a.dtype == dtype, f"{p}: {a.dtype}, expected {dtype}"
        return a.astype(np.float64) if dtype == np.float32 else a

    def sparse(s):  # a path, or kpgen's explicit form {shape, values, rows, cols}
        if isinstance(s, str):
            return load(s)
        assert set(s) == {"shape", "values", "rows", "cols"}, f"bad sparse form {s!r}"
        W = np.zeros(tuple(s["shape"]))
        W[load(s["rows"], np.int32), load(s["cols"], np.int32)] = load(s["values"])
        return W

    if isinstance(entry, str):
        return load(entry)
    forms = [k for k in ("kron", "lowrank", "sparse") if k in entry]
    if len(forms) != 1 or set(entry) - {"kron", "dope", "dense_rows", "lowrank", "sparse"} or (
            ("dope" in entry or "dense_rows" in entry) and forms != ["kron"]):
        raise ValueError(f"bad weight entry {entry!r}")
    if "lowrank" in entry:
        U, V = (load(p) for p in entry["lowrank"])
        assert U.ndim == V.ndim == 2 and U.shape[1] == V.shape[0], (U.shape, V.shape)
        return U @ V
    if "sparse" in entry:
        return sparse(entry["sparse"])
    factors = [load(p) for p in entry["kron"]]
    assert len(factors) >= 2, f"kron needs two or more factors: {entry!r}"
    W = factors[0]
    for F in factors[1:]:
        W = np.kron(W, F)
    if "dense_rows" in entry:
        U = load(entry["dense_rows"])
        assert U.ndim == 2 and U.shape[1] == W.shape[1], (U.shape, W.shape)
        W = np.vstack([U, W])
    if "dope" in entry:
        W = W + sparse(entry["dope"])
    return W


def load_spec(path):
    base = os.path.dirname(os.path.abspath(path))
    with open(path) as f:
        spec = yaml.safe_load(f)
    layers = []
    for l in spec["layers"]:
        t = {k: _tensor(v, base) for k, v in l.items()
             if k not in ("kind", "units", "activation")}
        layers.append((l["kind"], l["units"], l.get("activation", "none"), t))
    return spec, layers


def run(layers, x):
    """Logits for one sequence x (steps x features), valid steps only."""
    rec = [l for l in layers if l[0] != "dense"]
    state = [(np.zeros(u), np.zeros(u)) for _, u, _, _ in rec]
    for xt in x:
        h_in = xt.astype(np.float64)
        for j, (kind, H, _, t) in enumerate(rec):
            h, c = state[j]
            if kind == "lstm":
                z = t["w_ih"] @ h_in + t["b_ih"] + t["w_hh"] @ h + t["b_hh"]
                i, f, g, o = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                h = _sigmoid(o) * np.tanh(c)
            elif kind == "gru":
                gi = t["w_ih"] @ h_in + t["b_ih"]
                gh = t["w_hh"] @ h + t["b_hh"]
                r = _sigmoid(gi[:H] + gh[:H])
                z = _sigmoid(gi[H:2 * H] + gh[H:2 * H])
                n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
                h = (1.0 - z) * n + z * h
            elif kind == "fastgrnn":
                pre = t["w"] @ h_in + t["u"] @ h
                z = _sigmoid(pre + t["b_z"])
                h_tilde = np.tanh(pre + t["b_h"])
                zeta = _sigmoid(np.ravel(t["zeta"])[0])
                nu = _sigmoid(np.ravel(t["nu"])[0])
                h = (zeta * (1.0 - z) + nu) * h_tilde + z * h
            else:
                raise ValueError(kind)
            state[j] = (h, c)
            h_in = h
    y = state[-1][0]
    for kind, _, act, t in layers[len(rec):]:
        y = ACT[act](t["w"] @ y + t["b"])
    return y


def logits(spec_path, x, lengths):
    _, layers = load_spec(spec_path)
    return np.stack([run(layers, x[i, : lengths[i]]) for i in range(len(x))])


def check(directory, tol=1e-5):
    """Recompute test logits from the exported files; returns (max_diff, accuracy)."""
    ld = lambda n: np.load(os.path.join(directory, n))
    x, lengths, y, want = ld("test_x.npy"), ld("test_len.npy"), ld("test_y.npy"), ld("test_logits.npy")
    got = logits(os.path.join(directory, "spec.yaml"), x, lengths)
    diff = float(np.abs(got - want).max())
    acc = float((got.argmax(axis=1) == y).mean())
    return diff, acc, diff <= tol


if __name__ == "__main__":
    ok = True
    for d in sys.argv[1:] or ["."]:
        diff, acc, good = check(d)
        ok &= good
        print(f"{d}: max |logit diff| = {diff:.3g}, accuracy = {acc:.4f} {'OK' if good else 'MISMATCH'}")
    sys.exit(0 if ok else 1)
