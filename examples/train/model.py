"""RNN classifiers with dense, KP, doped-KP, low-rank and pruned weight matrices (JAX).

A model is a stack of recurrent layers (lstm | gru | fastgrnn) followed by
dense layers applied to the last valid hidden state. Every weight matrix is
independently one of:

    dense   W
    kp      W = kron(A, B)            (np.kron convention)
    dkp     W = kron(A, B) + S        (S full size, magnitude-masked to sparse)
    lowrank W = U @ V                 (U rows x r, V r x cols)
    pruned  W = W0 * mask             (magnitude pruning to a target density)

The cell equations match what kpgen generates (see examples/train/README.md);
reference.py re-implements them in float64 numpy from the exported files.
"""

import json
import math
import os
import subprocess
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

GATES = {"lstm": 4, "gru": 3, "fastgrnn": 1}


# --------------------------------------------------------------------------
# Factor shapes
# --------------------------------------------------------------------------

def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def kp_shapes_py(M, N):
    """kpgen's factor rule for an M x N matrix -> (m1, n1, m2, n2).

    Among m1*m2 = M, n1*n2 = N with neither factor the whole matrix: fewest
    parameters among those whose rank bound reaches min(M, N); otherwise the
    highest rank bound, then fewest parameters. Ties: fewest MACs, then the
    smallest (m1, n1) so the answer is unique.
    """
    best = None
    for m1 in _divisors(M):
        for n1 in _divisors(N):
            m2, n2 = M // m1, N // n1
            if (m1, n1) == (1, 1) or (m2, n2) == (1, 1):
                continue
            params = m1 * n1 + m2 * n2
            rank = min(m1, n1) * min(m2, n2)
            macs = min(m2 * n1 * (n2 + m1), m1 * n2 * (n1 + m2))
            full = rank >= min(M, N)
            key = (0, 0, params, macs, m1, n1) if full else (1, -rank, params, macs, m1, n1)
            if best is None or key < best[0]:
                best = (key, (m1, n1, m2, n2))
    if best is None:
        raise ValueError(f"{M}x{N} has no non-trivial Kronecker factorization")
    return best[1]


def kp_shapes(M, N):
    """Ask the kpgen binary when $KPGEN is set, so both sides agree by construction."""
    exe = os.environ.get("KPGEN")
    if exe:
        out = subprocess.run([exe, "shapes", str(M), str(N), "--json"],
                             check=True, capture_output=True, text=True).stdout
        d = json.loads(out)
        return (int(d["m1"]), int(d["n1"]), int(d["m2"]), int(d["n2"]))
    return kp_shapes_py(M, N)


# --------------------------------------------------------------------------
# Model description
# --------------------------------------------------------------------------

@dataclass
class MatrixCfg:
    kind: str  # dense | kp | dkp | lowrank | pruned
    rows: int
    cols: int
    shapes: tuple = None  # (m1, n1, m2, n2) for kp / dkp
    dkp: dict = field(default_factory=dict)  # density, schedule, dropout (dkp only)
    rank: int = None  # lowrank only
    prune: dict = field(default_factory=dict)  # density, schedule (pruned only)


@dataclass
class LayerCfg:
    kind: str  # lstm | gru | fastgrnn | dense
    units: int
    inputs: int
    matrices: dict  # field name -> MatrixCfg
    activation: str = "none"  # dense only


def matrix_fields(kind):
    if kind in ("lstm", "gru"):
        return ("w_ih", "w_hh")
    if kind == "fastgrnn":
        return ("w", "u")
    if kind == "dense":
        return ("w",)
    raise SystemExit(f"unknown layer kind {kind!r}")


KINDS = ("dense", "kp", "dkp", "lowrank", "pruned")


def build_config(recipe_layers, features, classes, dkp_defaults, pruned_defaults=None,
                 lowrank_defaults=None):
    """Turn the recipe's layer list into LayerCfgs with concrete shapes."""
    layers, inputs = [], features
    recurrent_done = False
    for i, rl in enumerate(recipe_layers):
        kind = rl["kind"]
        last = i == len(recipe_layers) - 1
        units = rl.get("units", classes if last else None)
        if units is None:
            raise SystemExit(f"layer {i}: units missing")
        if kind == "dense":
            recurrent_done = True
        elif recurrent_done:
            raise SystemExit("recurrent layers must come before dense layers")
        mats = {}
        for f in matrix_fields(kind):
            if kind == "dense":
                rows, cols = units, inputs
            else:
                rows = GATES[kind] * units
                cols = inputs if f in ("w_ih", "w") else units
            spec = rl.get(f, "dense")
            spec = {"kind": spec} if isinstance(spec, str) else dict(spec)
            mk = spec.pop("kind", "dense")
            if mk not in KINDS:
                raise SystemExit(f"layer {i} {f}: weight kind must be one of {'|'.join(KINDS)}")
            shapes = rank = None
            prune = {}
            if mk == "lowrank":
                rank = int({**(lowrank_defaults or {}), **spec}.get("rank", 0))
                if not 1 <= rank < min(rows, cols):
                    raise SystemExit(f"layer {i} {f}: lowrank needs 1 <= rank < {min(rows, cols)}, got {rank}")
            elif mk == "pruned":
                prune = {**(pruned_defaults or {}), **spec}
                if not 0.0 < float(prune["density"]) <= 1.0:
                    raise SystemExit(f"layer {i} {f}: pruned density must be in (0, 1]")
            elif mk != "dense":
                shapes = tuple(spec.pop("shapes", None) or kp_shapes(rows, cols))
                m1, n1, m2, n2 = shapes
                if m1 * m2 != rows or n1 * n2 != cols:
                    raise SystemExit(f"layer {i} {f}: shapes {shapes} do not give {rows}x{cols}")
            dk = {**dkp_defaults, **spec} if mk == "dkp" else {}
            mats[f] = MatrixCfg(mk, rows, cols, shapes, dk, rank, prune)
        layers.append(LayerCfg(kind, units, inputs, mats, rl.get("activation", "none")))
        inputs = units
    if not recurrent_done:
        raise SystemExit("the model needs a dense head after the recurrent layers")
    if layers[-1].activation != "none":
        raise SystemExit("the head (last dense layer) must have activation: none, so outputs are logits")
    if layers[-1].units != classes:
        raise SystemExit(f"head has {layers[-1].units} units but the data has {classes} classes")
    return layers


# --------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------

def _uniform(key, shape, bound):
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def init_matrix(key, m: MatrixCfg, bound):
    """Dense: U(-bound, bound) as in PyTorch. KP: factors scaled so kron(A, B)
    has the same element std as that dense init (std_A = std_B = sqrt(std_W))."""
    if m.kind in ("dense", "pruned"):
        return {"W": _uniform(key, (m.rows, m.cols), bound)}
    if m.kind == "lowrank":
        # std(U @ V) = sqrt(r) std_U std_V; split evenly so U @ V matches the dense std.
        k1, k2 = jax.random.split(key)
        fb = math.sqrt(3.0) * math.sqrt((bound / math.sqrt(3.0)) / math.sqrt(m.rank))
        return {"U": _uniform(k1, (m.rows, m.rank), fb), "V": _uniform(k2, (m.rank, m.cols), fb)}
    m1, n1, m2, n2 = m.shapes
    k1, k2 = jax.random.split(key)
    fb = math.sqrt(math.sqrt(3.0) * bound)  # U(-fb, fb) has std sqrt(bound / sqrt(3))
    p = {"A": _uniform(k1, (m1, n1), fb), "B": _uniform(k2, (m2, n2), fb)}
    if m.kind == "dkp":
        # The overlay starts at zero (model starts as plain KP) and learns only
        # what the KP path cannot express.
        p["S"] = jnp.zeros((m.rows, m.cols), jnp.float32)
    return p


def init_params(key, layers, forget_bias=1.0):
    params = []
    for layer in layers:
        key, *ks = jax.random.split(key, 8)
        H = layer.units
        bound = 1.0 / math.sqrt(H if layer.kind != "dense" else layer.inputs)
        p = {f: init_matrix(k, m, bound) for (f, m), k in zip(layer.matrices.items(), ks)}
        if layer.kind in ("lstm", "gru"):
            G = GATES[layer.kind] * H
            p["b_ih"] = _uniform(ks[4], (G,), bound)
            b_hh = _uniform(ks[5], (G,), bound)
            if layer.kind == "lstm":
                # Forget gate biased open: the usual trick for long sequences.
                b_hh = b_hh.at[H:2 * H].add(forget_bias)
            p["b_hh"] = b_hh
        elif layer.kind == "fastgrnn":
            p["b_z"] = jnp.ones((H,), jnp.float32)  # gate leans towards keeping h
            p["b_h"] = jnp.zeros((H,), jnp.float32)
            p["zeta"] = jnp.full((1,), 1.0, jnp.float32)  # EdgeML's initial values
            p["nu"] = jnp.full((1,), -4.0, jnp.float32)
        else:
            p["b"] = _uniform(ks[4], (H,), bound)
        params.append(p)
    return params


def init_masks(layers):
    """Masks (1 = kept) for every dkp overlay and pruned matrix; all ones = dense."""
    return [{f: jnp.ones((m.rows, m.cols), jnp.float32)
             for f, m in layer.matrices.items() if m.kind in ("dkp", "pruned")} for layer in layers]


def materialize(p, mask=None, gate=(1.0, 1.0)):
    """Full weight matrix. `gate` = (kp_keep, overlay_keep) for co-matrix dropout."""
    if "W" in p:
        return p["W"] if mask is None else p["W"] * mask
    if "U" in p:
        return p["U"] @ p["V"]
    W = jnp.kron(p["A"], p["B"])
    if "S" in p:
        W = gate[0] * W + gate[1] * (p["S"] * mask)
    return W


# --------------------------------------------------------------------------
# Forward pass
# --------------------------------------------------------------------------

def _lstm(W_ih, W_hh, p, x, state):
    h, c = state
    z = x @ W_ih.T + p["b_ih"] + h @ W_hh.T + p["b_hh"]
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return h, (h, c)


def _gru(W_ih, W_hh, p, x, state):
    (h,) = state
    gi = x @ W_ih.T + p["b_ih"]
    gh = h @ W_hh.T + p["b_hh"]
    ir, iz, in_ = jnp.split(gi, 3, axis=-1)
    hr, hz, hn = jnp.split(gh, 3, axis=-1)
    r = jax.nn.sigmoid(ir + hr)
    z = jax.nn.sigmoid(iz + hz)
    n = jnp.tanh(in_ + r * hn)
    h = (1.0 - z) * n + z * h
    return h, (h,)


def _fastgrnn(W, U, p, x, state):
    (h,) = state
    pre = x @ W.T + h @ U.T
    z = jax.nn.sigmoid(pre + p["b_z"])
    h_tilde = jnp.tanh(pre + p["b_h"])
    h = (jax.nn.sigmoid(p["zeta"]) * (1.0 - z) + jax.nn.sigmoid(p["nu"])) * h_tilde + z * h
    return h, (h,)


CELLS = {"lstm": _lstm, "gru": _gru, "fastgrnn": _fastgrnn}

ACTIVATIONS = {
    "none": lambda v: v,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "softmax": lambda v: jax.nn.softmax(v, axis=-1),
}


def forward(layers, params, masks, x, lengths, gates=None):
    """Logits for a batch. x: (B, T, F) zero-padded; lengths: (B,).

    Past a sequence's length its state is frozen, so the final carry is the
    hidden state after its last valid step (what the MCU sees)."""
    gates = gates or [{} for _ in layers]
    rec = [i for i, l in enumerate(layers) if l.kind != "dense"]
    mats = [{f: materialize(params[i][f], masks[i].get(f), gates[i].get(f, (1.0, 1.0)))
             for f in layers[i].matrices} for i in range(len(layers))]

    B = x.shape[0]
    init = []
    for i in rec:
        z = jnp.zeros((B, layers[i].units), jnp.float32)
        init.append((z, z) if layers[i].kind == "lstm" else (z,))

    def step(states, inp):
        xt, t = inp
        valid = (t < lengths)[:, None]
        h, new_states = xt, []
        for i, st in zip(rec, states):
            f0, f1 = matrix_fields(layers[i].kind)
            h, ns = CELLS[layers[i].kind](mats[i][f0], mats[i][f1], params[i], h, st)
            new_states.append(tuple(jnp.where(valid, n, o) for n, o in zip(ns, st)))
        return new_states, None

    T = x.shape[1]
    states, _ = jax.lax.scan(step, init, (jnp.swapaxes(x, 0, 1), jnp.arange(T)))
    h = states[-1][0]
    for i in range(len(rec), len(layers)):
        h = ACTIVATIONS[layers[i].activation](h @ mats[i]["w"].T + params[i]["b"])
    return h


# --------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------

def param_counts(layers, masks, weights_only=False):
    """(stored, dense_equivalent) parameter counts: weights, biases, scalars.
    A dkp overlay or a pruned matrix counts its non-zeros (index storage is not
    counted); a lowrank matrix counts r * (rows + cols)."""
    stored = dense = 0
    for layer, mk in zip(layers, masks):
        for f, m in layer.matrices.items():
            dense += m.rows * m.cols
            if m.kind == "dense":
                stored += m.rows * m.cols
            elif m.kind == "pruned":
                stored += int(np.asarray(mk[f]).sum())
            elif m.kind == "lowrank":
                stored += m.rank * (m.rows + m.cols)
            else:
                m1, n1, m2, n2 = m.shapes
                stored += m1 * n1 + m2 * n2
                if m.kind == "dkp":
                    stored += int(np.asarray(mk[f]).sum())
        G = GATES.get(layer.kind, 1)
        extra = {"lstm": 2 * G * layer.units, "gru": 2 * G * layer.units,
                 "fastgrnn": 2 * layer.units + 2, "dense": layer.units}[layer.kind]
        if not weights_only:
            stored += extra
            dense += extra
    return stored, dense
