"""Train a dense / KP / doped-KP / low-rank / pruned RNN classifier and export it for kpgen.

    python examples/train/train.py examples/train/recipes/basic_motions_kp.yaml
    python examples/train/train.py RECIPE --epochs 2 --subset 8 --out /tmp/smoke
    python examples/train/train.py RECIPE --sweep-dense-rows 0,8,16,32 --out /tmp/sweep

Writes into the output directory: spec.yaml, the factor / overlay / bias .npy
files, test_x.npy, test_len.npy, test_y.npy, test_logits.npy (float64 numpy
reference forward pass over the exported float32 files) and metrics.json.
See README.md beside this file for the recipe fields.
"""

import argparse
import copy
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import yaml  # noqa: E402

import data as data_mod  # noqa: E402
import model as M  # noqa: E402
import reference  # noqa: E402

DKP_DEFAULTS = {
    "density": 0.03,  # final fraction of non-zeros kept in the overlay S
    "start_epoch": 0.1,  # <= 1.0: fraction of the epochs; otherwise an epoch number
    "end_epoch": 0.6,
    "update_every": 5,  # epochs between mask recomputations while annealing
    "comatrix_dropout": 0.1,  # probability per step of dropping one path
    "dropout_target": "overlay",  # overlay | kp | either
}

# Magnitude pruning of a whole matrix (`pruned`): the same cubic schedule as the
# DKP overlay, applied to W itself, without co-matrix dropout.
PRUNED_DEFAULTS = {
    "density": 0.1,
    "start_epoch": 0.1,
    "end_epoch": 0.6,
    "update_every": 5,
}


# --------------------------------------------------------------------------
# Doped-KP overlay schedule
# --------------------------------------------------------------------------

def _epoch(v, epochs):
    """Schedule points may be fractions of the run (<= 1) or epoch numbers."""
    return int(round(v * epochs)) if isinstance(v, float) and v <= 1.0 else int(v)


def overlay_density(cfg, epoch, epochs):
    """Cubic anneal from a dense overlay (1.0) to cfg['density'] between the
    start and end epochs: prunes fast while S has many small entries, slowly
    near the target so the model can recover."""
    start, end = _epoch(cfg["start_epoch"], epochs), _epoch(cfg["end_epoch"], epochs)
    final = float(cfg["density"])
    if epoch < start:
        return 1.0
    if epoch >= end or end <= start:
        return final
    frac = (epoch - start) / (end - start)
    return final + (1.0 - final) * (1.0 - frac) ** 3


def mask_due(cfg, epoch, epochs):
    start, end = _epoch(cfg["start_epoch"], epochs), _epoch(cfg["end_epoch"], epochs)
    every = max(1, int(cfg["update_every"]))
    return start <= epoch <= end and ((epoch - start) % every == 0 or epoch == end)


def magnitude_mask(S, density):
    """Keep the round(density * size) largest |S| (ties broken by index)."""
    a = np.abs(np.asarray(S)).ravel()
    k = int(round(density * a.size))
    mask = np.zeros(a.size, np.float32)
    if k > 0:
        mask[np.argsort(-a, kind="stable")[:k]] = 1.0
    return mask.reshape(np.shape(S))


def dkp_matrices(layers):
    return [(i, f, m) for i, l in enumerate(layers) for f, m in l.matrices.items() if m.kind == "dkp"]


def masked_matrices(layers):
    """Every magnitude-pruned tensor: (layer, field, cfg, schedule, parameter name).
    A dkp matrix prunes its overlay S, a pruned matrix prunes W itself."""
    return [(i, f, m, m.dkp if m.kind == "dkp" else m.prune, "S" if m.kind == "dkp" else "W")
            for i, l in enumerate(layers) for f, m in l.matrices.items() if m.kind in ("dkp", "pruned")]


def co_matrix_gates(key, layers):
    """Co-matrix dropout: per dkp matrix and training step, with probability p
    zero the whole KP path or the whole overlay (not element-wise, and not
    rescaled). Keeps the two paths from co-adapting: the KP product must stay
    useful on its own instead of leaning on S, and vice versa."""
    gates = [{} for _ in layers]
    for i, f, m in dkp_matrices(layers):
        key, k1, k2 = jax.random.split(key, 3)
        p = float(m.dkp["comatrix_dropout"])
        target = m.dkp["dropout_target"]
        drop = jax.random.uniform(k1) < p
        if target == "overlay":
            which_kp = jnp.array(False)
        elif target == "kp":
            which_kp = jnp.array(True)
        elif target == "either":
            which_kp = jax.random.uniform(k2) < 0.5
        else:
            raise SystemExit(f"dropout_target must be overlay|kp|either, not {target!r}")
        kp_keep = jnp.where(drop & which_kp, 0.0, 1.0)
        s_keep = jnp.where(drop & ~which_kp, 0.0, 1.0)
        gates[i][f] = (kp_keep, s_keep)
    return gates


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------

def make_step(layers, optimizer):
    def loss_fn(params, masks, x, lengths, y, key):
        logits = M.forward(layers, params, masks, x, lengths, co_matrix_gates(key, layers))
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, (logits.argmax(-1) == y).mean()

    @jax.jit
    def step(params, opt_state, masks, x, lengths, y, key):
        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, masks, x, lengths, y, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        # Pruned overlay / weight entries stay exactly zero (Adam momentum would move them).
        params = [dict(p) for p in params]
        for i, f, _, _, k in masked_matrices(layers):
            params[i][f] = {**params[i][f], k: params[i][f][k] * masks[i][f]}
        return params, opt_state, loss, acc

    return step


def train(recipe, layers, ds, epochs, seed, log=print):
    tcfg = recipe.get("train", {})
    bs = int(tcfg.get("batch_size", 8))
    n = len(ds.train.y)
    steps_per_epoch = -(-n // bs)
    lr = float(tcfg.get("lr", 5e-3))
    schedule = (optax.cosine_decay_schedule(lr, epochs * steps_per_epoch, alpha=0.1)
                if tcfg.get("lr_schedule", "cosine") == "cosine" else lr)
    optimizer = optax.chain(optax.clip_by_global_norm(float(tcfg.get("clip", 1.0))),
                            optax.adam(schedule))

    key = jax.random.PRNGKey(seed)
    key, k_init = jax.random.split(key)
    params = M.init_params(k_init, layers, float(tcfg.get("forget_bias", 1.0)))
    masks = M.init_masks(layers)
    opt_state = optimizer.init(params)
    step = make_step(layers, optimizer)
    rng = np.random.default_rng(seed)
    log_every = int(tcfg.get("log_every", max(1, epochs // 10)))

    for epoch in range(epochs):
        # Anneal the overlay / pruning masks on their schedule (magnitude of S * mask, W * mask).
        for i, f, m, cfg, k in masked_matrices(layers):
            if mask_due(cfg, epoch, epochs):
                d = overlay_density(cfg, epoch, epochs)
                S = np.asarray(params[i][f][k]) * np.asarray(masks[i][f])
                masks[i][f] = jnp.asarray(magnitude_mask(S, d))
                params[i][f] = {**params[i][f], k: params[i][f][k] * masks[i][f]}
        order = rng.permutation(n)
        losses, accs = [], []
        for b in range(steps_per_epoch):
            idx = order[b * bs:(b + 1) * bs]
            key, k = jax.random.split(key)
            params, opt_state, loss, acc = step(params, opt_state, masks, ds.train.x[idx],
                                                ds.train.length[idx], ds.train.y[idx], k)
            losses.append(float(loss))
            accs.append(float(acc))
        if (epoch + 1) % log_every == 0 or epoch == epochs - 1:
            dens = " ".join(f"l{i}.{f}:{float(np.asarray(masks[i][f]).mean()):.3f}"
                            for i, f, *_ in masked_matrices(layers))
            log(f"epoch {epoch + 1:4d}  loss {np.mean(losses):.4f}  train acc {np.mean(accs):.3f}"
                + (f"  mask density {dens}" if dens else ""))

    # Guarantee the exported overlays / pruned matrices are at their target density
    # even if the schedule ended late (prunes without fine-tuning; warns).
    for i, f, m, cfg, k in masked_matrices(layers):
        target = int(round(float(cfg["density"]) * m.rows * m.cols))
        if int(np.asarray(masks[i][f]).sum()) > target:
            log(f"warning: l{i}.{f} pruned to target after training (end_epoch > epochs?)")
            masks[i][f] = jnp.asarray(magnitude_mask(np.asarray(params[i][f][k] * masks[i][f]),
                                                     float(cfg["density"])))
            params[i][f] = {**params[i][f], k: params[i][f][k] * masks[i][f]}
    return params, masks


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------

FIELDS = {
    "lstm": ("w_ih", "w_hh", "b_ih", "b_hh"),
    "gru": ("w_ih", "w_hh", "b_ih", "b_hh"),
    "fastgrnn": ("w", "u", "b_z", "b_h", "zeta", "nu"),
    "dense": ("w", "b"),
}


# Calibration inputs exported beside the test set: evenly spaced TRAINING sequences (never test
# ones), standardized like every input; kpgen's int8/int16 builds take their scales from them.
CALIB_SEQUENCES = 32
CALIB_FILE = "calib_x.npy"
CALIB_LEN_FILE = "calib_len.npy"  # int32 valid steps per calibration sequence (beside CALIB_FILE)


def spec_yaml(name, features, steps, layers):
    """kpgen spec text, laid out like the hand-written examples in the docs."""
    lines = ["# Generated by examples/train/train.py. Inputs are standardized",
             "# features (see metrics.json 'normalization').",
             f"name: {name}", f"input: {{features: {int(features)}, steps: {int(steps)}}}",
             f"calibration: {CALIB_FILE}  # training sequences, for int8/int16 builds", "layers:"]
    def flow(v):  # YAML flow style: {k: v, ...} and [a, b, ...], nested
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {flow(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(flow(x) for x in v) + "]"
        return str(v)

    for layer in layers:
        first = True
        for k, v in layer.items():
            lines.append(f"{'  - ' if first else '    '}{k}: {flow(v)}")
            first = False
    return "\n".join(lines) + "\n"


_OWNED = re.compile(r"^(l\d+_.*\.npz?|test_(x|len|y|logits)\.npy|calib_(x|len)\.npy|spec\.yaml|metrics\.json)$")


def export_calibration(out, train, count=CALIB_SEQUENCES):
    """Writes CALIB_FILE and CALIB_LEN_FILE into `out`: `count` evenly spaced sequences of the
    TRAINING split `train` (all of them if it has fewer), in split order, as data.load leaves
    them: standardized with the training statistics and zero-padded to the model's steps
    exactly like test_x.npy, plus their int32 valid lengths. Deterministic (no randomness).
    Returns the written Split."""
    s = data_mod.spread(train, count)
    np.save(os.path.join(out, CALIB_FILE), s.x.astype(np.float32))
    np.save(os.path.join(out, CALIB_LEN_FILE), s.length.astype(np.int32))
    return s


def export(out, name, layers, params, masks, ds):
    os.makedirs(out, exist_ok=True)
    for fn in os.listdir(out):  # stale files of an earlier, differently shaped run
        if _OWNED.match(fn):
            os.remove(os.path.join(out, fn))

    def save(fn, a):
        np.save(os.path.join(out, fn), np.ascontiguousarray(np.asarray(a, dtype=np.float32)))
        return fn

    def save_sparse(fn, a):
        """A doping overlay or pruned matrix as its non-zeros (row-major order): values, rows
        and cols in one .npz, named by kpgen's explicit sparse form."""
        a = np.asarray(a, dtype=np.float32)
        rows, cols = np.nonzero(a)
        np.savez(os.path.join(out, fn), values=a[rows, cols], rows=rows.astype(np.int32),
                 cols=cols.astype(np.int32))
        return {"shape": [int(a.shape[0]), int(a.shape[1])], "values": f"{fn}:values",
                "rows": f"{fn}:rows", "cols": f"{fn}:cols"}

    spec_layers = []
    for i, (layer, p) in enumerate(zip(layers, params)):
        entry = {"kind": layer.kind, "units": layer.units}
        for f in FIELDS[layer.kind]:  # canonical order (JAX pytrees sort dict keys)
            v, pre, m = p[f], f"l{i}_{f}", layer.matrices.get(f)
            if m is None:  # bias / scalar
                entry[f] = save(f"{pre}.npy", v)
            elif m.kind == "dense":
                entry[f] = save(f"{pre}.npy", v["W"])
            elif m.kind == "pruned":
                entry[f] = {"sparse": save_sparse(f"{pre}.npz", v["W"] * masks[i][f])}
            elif m.kind == "lowrank":
                entry[f] = {"lowrank": [save(f"{pre}_U.npy", v["U"]), save(f"{pre}_V.npy", v["V"])]}
            else:
                keys = M.FACTOR_KEYS[:len(m.factors)]
                entry[f] = {"kron": [save(f"{pre}_{k}.npy", v[k]) for k in keys]}
                if m.dense_rows:
                    entry[f]["dense_rows"] = save(f"{pre}_rows.npy", v["R"])
                if m.kind == "dkp":
                    entry[f]["dope"] = save_sparse(f"{pre}_S.npz", v["S"] * masks[i][f])
        if layer.kind == "dense":
            entry["activation"] = layer.activation
        spec_layers.append(entry)

    spec_path = os.path.join(out, "spec.yaml")
    with open(spec_path, "w") as fh:
        fh.write(spec_yaml(name, ds.test.x.shape[2], ds.test.x.shape[1], spec_layers))

    export_calibration(out, ds.train)
    np.save(os.path.join(out, "test_x.npy"), ds.test.x.astype(np.float32))
    np.save(os.path.join(out, "test_len.npy"), ds.test.length.astype(np.int32))
    np.save(os.path.join(out, "test_y.npy"), ds.test.y.astype(np.int32))
    # Golden logits: float64 numpy over the exported float32 files only.
    logits = reference.logits(spec_path, ds.test.x, ds.test.length)
    np.save(os.path.join(out, "test_logits.npy"), logits.astype(np.float32))
    return logits


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe")
    ap.add_argument("--epochs", type=int, help="override train.epochs (the DKP schedule scales with it)")
    ap.add_argument("--subset", type=int, help="use only K train and K test sequences (smoke runs)")
    ap.add_argument("--out", help="output directory (default: the recipe's `out`, relative to the recipe)")
    ap.add_argument("--sweep-dense-rows", metavar="R,R,...",
                    help="hybrid-KP sweep: train once per R with dense_rows: R on every kp / dkp matrix "
                         "(0 = plain KP) into OUT/r<R>/, then print and write OUT/sweep.json")
    args = ap.parse_args(argv)

    with open(args.recipe) as fh:
        recipe = yaml.safe_load(fh)
    if not args.sweep_dense_rows:
        run(recipe, args, out_dir(recipe, args))
        return
    try:
        values = [int(v) for v in args.sweep_dense_rows.split(",")]
    except ValueError:
        raise SystemExit(f"--sweep-dense-rows: expected comma-separated row counts, got {args.sweep_dense_rows!r}")
    if any(v < 0 for v in values) or len(set(values)) != len(values):
        raise SystemExit(f"--sweep-dense-rows: expected distinct counts >= 0, got {args.sweep_dense_rows!r}")
    base = out_dir(recipe, args)
    results = []
    for r in values:
        print(f"== dense_rows {r} ({len(results) + 1} of {len(values)})", flush=True)
        metrics = run(with_dense_rows(recipe, r), args, os.path.join(base, f"r{r}"))
        results.append({"dense_rows": r, "params_stored": metrics["params_stored"],
                        "compression": metrics["compression"], "accuracy": metrics["accuracy"],
                        "accuracy_full_split": metrics["accuracy_full_split"], "out": f"r{r}"})
    with open(os.path.join(base, "sweep.json"), "w") as fh:
        json.dump({"recipe": os.path.basename(args.recipe), "sweep": results}, fh, indent=2)
        fh.write("\n")
    print("dense_rows  params_stored  compression  accuracy")
    for e in results:
        print(f"{e['dense_rows']:>10}  {e['params_stored']:>13}  {e['compression']:>10.2f}x  {e['accuracy']:.4f}")
    print(f"wrote {os.path.join(base, 'sweep.json')}")


def with_dense_rows(recipe, rows):
    """The recipe with dense_rows: `rows` on every kp / dkp matrix (a string kind becomes a mapping)."""
    recipe = copy.deepcopy(recipe)
    touched = 0
    for layer in recipe["layers"]:
        for f in M.matrix_fields(layer["kind"]):
            spec = layer.get(f, "dense")
            spec = {"kind": spec} if isinstance(spec, str) else spec
            if spec.get("kind") in ("kp", "dkp"):
                spec["dense_rows"] = rows
                layer[f] = spec
                touched += 1
    if not touched:
        raise SystemExit("--sweep-dense-rows: the recipe has no kp or dkp matrix")
    recipe["name"] = f"{recipe['name']}_r{rows}"
    return recipe


def out_dir(recipe, args):
    if args.out:
        return args.out
    if "out" in recipe:
        return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(args.recipe)), recipe["out"]))
    return os.path.join("out", recipe["name"])


def run(recipe, args, out):
    """Trains one recipe and exports it into `out`; returns its metrics."""
    name = recipe["name"]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SystemExit(f"name {name!r} must be a C identifier")
    seed = int(recipe.get("seed", 0))
    epochs = args.epochs or int(recipe.get("train", {}).get("epochs", 100))

    dcfg = recipe.get("data", {})
    ds = data_mod.load(dcfg.get("dataset", "BasicMotions"), seed, bool(dcfg.get("standardize", True)))
    full_test = ds.test
    if dcfg.get("test_cap"):
        # Keep the committed files small: `test_cap` evenly spaced test sequences
        # (the splits are ordered by class, so not simply the first ones).
        ds.test = data_mod.spread(ds.test, int(dcfg["test_cap"]))
    ds.train = data_mod.subset(ds.train, args.subset, seed)
    ds.test = data_mod.subset(ds.test, args.subset, seed + 1)

    dkp_defaults = {**DKP_DEFAULTS, **recipe.get("dkp", {})}
    pruned_defaults = {**PRUNED_DEFAULTS, **recipe.get("pruned", {})}
    layers = M.build_config(recipe["layers"], ds.train.x.shape[2], len(ds.classes), dkp_defaults,
                            pruned_defaults, recipe.get("lowrank", {}))
    recipe_epochs = int(recipe.get("train", {}).get("epochs", epochs))
    if epochs != recipe_epochs:
        # --epochs override: keep the DKP / pruning schedule at the same relative points.
        for _, _, _, cfg, _ in masked_matrices(layers):
            for k in ("start_epoch", "end_epoch"):
                if not (isinstance(cfg[k], float) and cfg[k] <= 1.0):
                    cfg[k] = min(1.0, float(cfg[k]) / recipe_epochs)
            cfg["update_every"] = max(1, round(cfg["update_every"] * epochs / recipe_epochs))
    for i, l in enumerate(layers):
        mats = ", ".join(f"{f}={m.kind}" + (f"({m.factors_text()})" if m.factors else "")
                         + (f"(dense rows {m.dense_rows})" if m.dense_rows else "")
                         + (f"(rank {m.rank})" if m.rank else "")
                         + (f"(density {m.prune['density']})" if m.kind == "pruned" else "")
                         for f, m in l.matrices.items())
        print(f"layer {i}: {l.kind} {l.units} units; {mats}")

    t0 = time.time()
    params, masks = train(recipe, layers, ds, epochs, seed)
    seconds = time.time() - t0

    logits = export(out, name, layers, params, masks, ds)
    # The JAX float32 model and the float64 reference over the exported files must agree.
    jax_logits = np.asarray(M.forward(layers, params, masks, ds.test.x, ds.test.length))
    drift = float(np.abs(jax_logits - logits).max())
    if drift > 1e-3:
        raise SystemExit(f"export mismatch: JAX vs reference logits differ by {drift}")

    acc = float((logits.argmax(1) == ds.test.y).mean())
    if full_test is not ds.test:  # accuracy on the whole test split, for comparison with the literature
        full_logits = reference.logits(os.path.join(out, "spec.yaml"), full_test.x, full_test.length)
        acc_full = float((full_logits.argmax(1) == full_test.y).mean())
    else:
        acc_full = acc
    stored, dense = M.param_counts(layers, masks)
    wstored, wdense = M.param_counts(layers, masks, weights_only=True)
    matrices = {}
    for i, l in enumerate(layers):
        for f, m in l.matrices.items():
            e = {"kind": m.kind, "rows": m.rows, "cols": m.cols}
            if m.factors and len(m.factors) == 2:
                (m1, n1), (m2, n2) = m.factors
                e["shapes"] = {"m1": m1, "n1": n1, "m2": m2, "n2": n2}
            if m.factors:
                e["factors"] = [[int(r), int(c)] for r, c in m.factors]
            if m.dense_rows:
                e["dense_rows"] = m.dense_rows
            if m.kind == "dkp":
                nnz = int(np.asarray(masks[i][f]).sum())
                e.update(overlay_nnz=nnz, overlay_density=round(nnz / (m.rows * m.cols), 4))
            if m.kind == "pruned":
                nnz = int(np.count_nonzero(np.asarray(params[i][f]["W"] * masks[i][f])))
                e.update(nnz=nnz, density=round(nnz / (m.rows * m.cols), 4))
            if m.kind == "lowrank":
                e["rank"] = m.rank
            matrices[f"l{i}_{f}"] = e
    metrics = {
        "name": name,
        "recipe": os.path.basename(args.recipe),
        "dataset": dcfg.get("dataset", "BasicMotions"),
        "test_sequences": int(len(ds.test.y)),
        "test_sequences_full_split": int(len(full_test.y)),  # before data.test_cap
        "accuracy_full_split": round(acc_full, 4),
        "accuracy": round(acc, 4),
        "params_stored": stored,
        "params_dense_equivalent": dense,
        "compression": round(dense / stored, 2),
        "weight_params_stored": wstored,  # matrices only (no biases / scalars)
        "weight_params_dense_equivalent": wdense,
        "weight_compression": round(wdense / wstored, 2),
        "matrices": matrices,
        "epochs": epochs,
        "seed": seed,
        "subset": args.subset,
        "classes": [str(c) for c in ds.classes],
        "normalization": {"note": "test_x is already standardized: x_std = (x_raw - mean) / std",
                          "mean": [float(v) for v in ds.mean], "std": [float(v) for v in ds.std]},
    }
    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2)
        fh.write("\n")
    print(f"test accuracy {acc:.4f} ({len(ds.test.y)} sequences); params stored {stored} "
          f"vs dense {dense} ({dense / stored:.2f}x); jax/ref drift {drift:.2g}; {seconds:.1f}s -> {out}")
    return metrics


if __name__ == "__main__":
    main()
