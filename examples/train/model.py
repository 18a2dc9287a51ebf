"""RNN classifiers with dense, KP, doped-KP, low-rank and pruned weight matrices (JAX).

A model is a stack of recurrent layers (lstm | gru | fastgrnn) followed by
dense layers applied to the last valid hidden state. Every weight matrix is
independently one of:

    dense   W
    kp      W = kron(A, B)            (np.kron convention; or kron(A, B, C, ...) with
                                       `factors: K`, applied left to right)
    dkp     W = kron(A, B) + S        (S full size, magnitude-masked to sparse)
            kp and dkp take `dense_rows: R` (hybrid KP): W = [U ; kron(...)] with U
            the first R rows, dense, and the Kronecker product the other rows
    lowrank W = U @ V                 (U rows x r, V r x cols)
    pruned  W = W0 * mask             (magnitude pruning to a target density)

The cell equations match what kpgen generates (see examples/train/README.md);
reference.py re-implements them in float64 numpy from the exported files.
"""

import itertools
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


def _ordered_factorizations(n, k):
    if k == 1:
        return [(n,)]
    return [(d,) + rest for d in _divisors(n) for rest in _ordered_factorizations(n // d, k - 1)]


def _order_macs(dims, order):
    """MACs of y = W x applying the mode products of `order` (kpgen's plan/shapes.rs)."""
    done, total = [False] * len(dims), 0
    for k in order:
        others = math.prod(d[0] if done[l] else d[1] for l, d in enumerate(dims) if l != k)
        total += dims[k][0] * dims[k][1] * others
        done[k] = True
    return total


def kp_factors_py(M, N, K=2):
    """kpgen's factor rule for an M x N matrix -> ((r1, c1), ..., (rK, cK)).

    As `kpgen shapes M N --factors K`: no factor 1 x 1 (for two factors: neither is
    the whole matrix); shapes whose rank bound (product of min(r, c)) reaches
    min(M, N) first, then the highest rank bound; then fewest parameters, fewest
    MACs over every factor order, and the smallest shapes, first factor first. For
    example, 128x6 gives (8x3)(16x2) and 128x32 gives (8x8)(16x4).
    """
    best = None
    cols = _ordered_factorizations(N, K)
    for rows in _ordered_factorizations(M, K):
        for c in cols:
            dims = tuple(zip(rows, c))
            if (1, 1) in dims:
                continue
            rank = math.prod(min(d) for d in dims)
            reach = rank >= min(M, N)
            params = sum(r * c for r, c in dims)
            macs = min(_order_macs(dims, o) for o in itertools.permutations(range(K)))
            key = (not reach, 0 if reach else -rank, params, macs, dims)
            if best is None or key < best:
                best = key
    if best is None:
        raise ValueError(f"{M}x{N} has no non-trivial Kronecker factorization with {K} factors")
    return best[-1]


def kp_factors(M, N, K=2):
    """Ask the kpgen binary when $KPGEN is set, so both sides agree by construction."""
    exe = os.environ.get("KPGEN")
    if exe:
        cmd = [exe, "shapes", str(M), str(N), "--json"] + (["--factors", str(K)] if K != 2 else [])
        d = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        if K == 2:
            return ((int(d["m1"]), int(d["n1"])), (int(d["m2"]), int(d["n2"])))
        return tuple((int(r), int(c)) for r, c in d["factors"])
    return kp_factors_py(M, N, K)


def _parse_shapes(shapes, where):
    """Recipe `shapes`: [m1, n1, m2, n2] (two factors) or [[r1, c1], [r2, c2], ...]."""
    if shapes and all(isinstance(v, int) for v in shapes):
        if len(shapes) != 4:
            raise SystemExit(f"{where}: shapes [m1, n1, m2, n2] needs 4 numbers, got {shapes}")
        return ((shapes[0], shapes[1]), (shapes[2], shapes[3]))
    try:
        dims = tuple((int(r), int(c)) for r, c in shapes)
    except (TypeError, ValueError):
        raise SystemExit(f"{where}: shapes must be [m1, n1, m2, n2] or [[r1, c1], [r2, c2], ...], "
                         f"got {shapes!r}")
    if len(dims) < 2 or any(r < 1 or c < 1 for r, c in dims):
        raise SystemExit(f"{where}: shapes needs two or more factors of positive size, got {shapes!r}")
    return dims


# --------------------------------------------------------------------------
# Model description
# --------------------------------------------------------------------------

@dataclass
class MatrixCfg:
    kind: str  # dense | kp | dkp | lowrank | pruned
    rows: int
    cols: int
    factors: tuple = None  # ((r1, c1), (r2, c2), ...) of the Kronecker part, kp / dkp
    dkp: dict = field(default_factory=dict)  # density, schedule, dropout (dkp only)
    rank: int = None  # lowrank only
    prune: dict = field(default_factory=dict)  # density, schedule (pruned only)
    dense_rows: int = 0  # hybrid KP: the first dense_rows rows are dense (kp / dkp)

    def factors_text(self):
        return " ⊗ ".join(f"{r}x{c}" for r, c in self.factors)


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
            factors = rank = None
            prune = {}
            dense_rows = 0
            where = f"layer {i} {f}"
            if mk not in ("kp", "dkp") and ({"shapes", "factors", "dense_rows"} & set(spec)):
                raise SystemExit(f"{where}: shapes, factors and dense_rows need kind kp or dkp")
            if mk == "lowrank":
                rank = int({**(lowrank_defaults or {}), **spec}.get("rank", 0))
                if not 1 <= rank < min(rows, cols):
                    raise SystemExit(f"{where}: lowrank needs 1 <= rank < {min(rows, cols)}, got {rank}")
            elif mk == "pruned":
                prune = {**(pruned_defaults or {}), **spec}
                if not 0.0 < float(prune["density"]) <= 1.0:
                    raise SystemExit(f"{where}: pruned density must be in (0, 1]")
            elif mk != "dense":
                dense_rows = int(spec.pop("dense_rows", 0) or 0)
                if not 0 <= dense_rows < rows:
                    raise SystemExit(f"{where}: dense_rows must be in [0, {rows}) "
                                     f"(the matrix has {rows} rows), got {dense_rows}")
                kp_rows = rows - dense_rows
                count = spec.pop("factors", None)
                if "shapes" in spec:
                    factors = _parse_shapes(spec.pop("shapes"), where)
                    if count is not None and int(count) != len(factors):
                        raise SystemExit(f"{where}: factors: {count} but shapes has {len(factors)}")
                else:
                    count = int(count if count is not None else 2)
                    if not 2 <= count <= 6:
                        raise SystemExit(f"{where}: factors must be 2 to 6, got {count}")
                    factors = kp_factors(kp_rows, cols, count)
                if math.prod(r for r, _ in factors) != kp_rows or math.prod(c for _, c in factors) != cols:
                    below = f" (below the {dense_rows} dense rows)" if dense_rows else ""
                    raise SystemExit(f"{where}: shapes {factors} do not give {kp_rows}x{cols}{below}")
            dk = {**dkp_defaults, **spec} if mk == "dkp" else {}
            mats[f] = MatrixCfg(mk, rows, cols, factors, dk, rank, prune, dense_rows)
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


# Parameter names of a Kronecker product's factors, in np.kron order (A ⊗ B ⊗ C ...).
# "R" holds a hybrid matrix's dense rows, "S" a doped matrix's overlay.
FACTOR_KEYS = ("A", "B", "C", "D", "E", "F")


def init_matrix(key, m: MatrixCfg, bound):
    """Dense: U(-bound, bound) as in PyTorch. KP: factors scaled so kron(A, B, ...)
    has the same element std as that dense init (std_A = std_B = sqrt(std_W) for two)."""
    if m.kind in ("dense", "pruned"):
        return {"W": _uniform(key, (m.rows, m.cols), bound)}
    if m.kind == "lowrank":
        # std(U @ V) = sqrt(r) std_U std_V; split evenly so U @ V matches the dense std.
        k1, k2 = jax.random.split(key)
        fb = math.sqrt(3.0) * math.sqrt((bound / math.sqrt(3.0)) / math.sqrt(m.rank))
        return {"U": _uniform(k1, (m.rows, m.rank), fb), "V": _uniform(k2, (m.rank, m.cols), fb)}
    K = len(m.factors)
    if K == 2:
        keys = jax.random.split(key)
        fb = math.sqrt(math.sqrt(3.0) * bound)  # U(-fb, fb) has std sqrt(bound / sqrt(3))
    else:
        # K factors whose element stds multiply to the dense std bound / sqrt(3).
        keys = jax.random.split(key, K + 1)
        fb = math.sqrt(3.0) * (bound / math.sqrt(3.0)) ** (1.0 / K)
    p = {FACTOR_KEYS[k]: _uniform(keys[k], dims, fb) for k, dims in enumerate(m.factors)}
    if m.dense_rows:
        # Hybrid KP: the dense rows start like a dense matrix's.
        p["R"] = _uniform(keys[-1] if K > 2 else jax.random.fold_in(key, 7),
                          (m.dense_rows, m.cols), bound)
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
    W = p["A"]
    for k in FACTOR_KEYS[1:]:
        if k in p:
            W = jnp.kron(W, p[k])
    if "S" in p:
        W = gate[0] * W
    if "R" in p:
        W = jnp.concatenate([p["R"], W], axis=0)
    if "S" in p:
        W = W + gate[1] * (p["S"] * mask)
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
                stored += sum(r * c for r, c in m.factors) + m.dense_rows * m.cols
                if m.kind == "dkp":
                    stored += int(np.asarray(mk[f]).sum())
        G = GATES.get(layer.kind, 1)
        extra = {"lstm": 2 * G * layer.units, "gru": 2 * G * layer.units,
                 "fastgrnn": 2 * layer.units + 2, "dense": layer.units}[layer.kind]
        if not weights_only:
            stored += extra
            dense += extra
    return stored, dense
