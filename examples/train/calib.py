#!/usr/bin/env python3
"""Export kpgen calibration inputs for already-trained models, without retraining.

    python examples/train/calib.py examples/train/recipes/*.yaml      # one per model
    python examples/train/calib.py examples/basic_motions examples/japanese_vowels examples/digits

Calibration inputs are float32 sequences x steps x features drawn from the TRAINING split
only (never the test split) and preprocessed exactly like the model's inputs: data.load's
per-feature standardization with the training statistics, zero padding past each sequence's
valid length, padded to the spec's `steps`. The sequences are evenly spaced over the split
(data.spread; the splits are ordered by class, so this keeps the class mix), so the output is
deterministic. Beside `calib_x.npy` goes `calib_len.npy`, the int32 valid steps of each
sequence (they differ only for variable-length data sets such as JapaneseVowels).

A RECIPE argument (a .yaml file) writes calib_x.npy / calib_len.npy into the recipe's `out`
directory (--count, default train.CALIB_SEQUENCES) and adds `calibration: calib_x.npy` to its
spec.yaml if missing: exactly what train.py exports for new trainings.

A DIRECTORY argument (a data set's directory, examples/<data set>/) writes one shared pair,
DIR/calib_x.npy and DIR/calib_len.npy (--count, default 64), for every model trained under it
by the recipes in examples/train/recipes (which must all use the same data set and
standardization); spec files are not touched.

Either way the standardization is checked against the normalization every model recorded in
its metrics.json, so the files match what the trained models were fed.
"""

import argparse
import glob
import json
import os
import re
import sys

import numpy as np
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data as data_mod  # noqa: E402
import train  # noqa: E402

SHARED_SEQUENCES = 64


def read_recipe(path):
    """(recipe dict, absolute `out` directory or None, (dataset, standardize, seed))."""
    with open(path) as fh:
        recipe = yaml.safe_load(fh)
    out = None
    if "out" in recipe:
        out = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), recipe["out"]))
    dcfg = recipe.get("data", {})
    key = (dcfg.get("dataset", "BasicMotions"), bool(dcfg.get("standardize", True)),
           int(recipe.get("seed", 0)))
    return recipe, out, key


def load(key):
    dataset, standardize, seed = key
    return data_mod.load(dataset, seed, standardize)


def check_normalization(ds, model_dir):
    """Stops unless model_dir/metrics.json recorded the standardization just recomputed."""
    path = os.path.join(model_dir, "metrics.json")
    if not os.path.isfile(path):
        return False
    with open(path) as fh:
        norm = json.load(fh).get("normalization", {})
    for k, ours in (("mean", ds.mean), ("std", ds.std)):
        theirs = np.asarray(norm.get(k, []), dtype=np.float64)
        if theirs.shape != np.shape(ours) or not np.allclose(theirs, ours, rtol=1e-9, atol=1e-12):
            raise SystemExit(f"{path}: normalization {k} differs from the data set's: "
                             "the model was trained on other preprocessing; retrain it instead")
    return True


def write(out, ds, count):
    s = train.export_calibration(out, ds.train, count)
    assert s.x.shape[1:] == ds.test.x.shape[1:], "calibration and test inputs differ in shape"
    return s


def per_recipe(path, count):
    _, out, key = read_recipe(path)
    if out is None:
        print(f"{path}: no `out` directory, skipped")
        return
    spec = os.path.join(out, "spec.yaml")
    if not os.path.isfile(spec):
        print(f"{path}: {spec} does not exist (train it first), skipped")
        return
    ds = load(key)
    check_normalization(ds, out)
    s = write(out, ds, count)
    with open(spec) as fh:
        text = fh.read()
    if not re.search(r"^calibration:", text, re.M):
        line = f"calibration: {train.CALIB_FILE}  # training sequences, for int8/int16 builds\n"
        text = re.sub(r"^(input: .*\n)", lambda m: m.group(1) + line, text, count=1, flags=re.M)
        with open(spec, "w") as fh:
            fh.write(text)
    print(f"{os.path.relpath(out)}: {train.CALIB_FILE} {s.x.shape}, {train.CALIB_LEN_FILE} "
          f"lengths {s.length.min()}..{s.length.max()} (of {len(ds.train.y)} training sequences)")


def per_dataset(directory, count):
    directory = os.path.normpath(os.path.abspath(directory))
    keys = {}
    for path in sorted(glob.glob(os.path.join(HERE, "recipes", "*.yaml"))):
        _, out, key = read_recipe(path)
        if out is not None and os.path.dirname(out) == directory:
            keys.setdefault(key, []).append(os.path.basename(path))
    if not keys:
        raise SystemExit(f"{directory}: no recipe in examples/train/recipes exports under it")
    if len({k[:2] for k in keys}) > 1:
        raise SystemExit(f"{directory}: its recipes disagree on data set / standardization: {keys}")
    key = sorted(keys)[0]
    ds = load(key)
    checked = [d for d in sorted(glob.glob(os.path.join(directory, "*", "")))
               if check_normalization(ds, d)]
    s = write(directory, ds, count)
    print(f"{os.path.relpath(directory)}: {train.CALIB_FILE} {s.x.shape}, {train.CALIB_LEN_FILE} "
          f"lengths {s.length.min()}..{s.length.max()} (of {len(ds.train.y)} {key[0]} training "
          f"sequences; normalization equal to {len(checked)} models' metrics.json)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="+", metavar="RECIPE_OR_DIR")
    ap.add_argument("--count", type=int, help="sequences to export (all if the training split has "
                    f"fewer; default {train.CALIB_SEQUENCES} per recipe, {SHARED_SEQUENCES} per directory)")
    args = ap.parse_args(argv)
    for t in args.targets:
        if os.path.isdir(t):
            per_dataset(t, args.count or SHARED_SEQUENCES)
        elif os.path.isfile(t):
            per_recipe(t, args.count or train.CALIB_SEQUENCES)
        else:
            raise SystemExit(f"{t}: neither a recipe file nor a data set directory")


if __name__ == "__main__":
    main()
