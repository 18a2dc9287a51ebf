"""Seed study: train every recipe with several seeds and record the spread of its accuracy.

    python examples/train/seeds.py examples/train/recipes/*_{dense,kp,hkp16}.yaml --seeds 5
    python examples/train/seeds.py RECIPES... --seeds 3 --epochs 2 --subset 8 --out /tmp/seeds.json

One committed example is one seed, and on test sets of 40 to 539 sequences one
seed's accuracy moves by several points (a sequence of BasicMotions' 40 is
2.5 points). This trains each recipe with seeds 0 .. N-1 (initialization,
shuffling, dropout; the data split is fixed), each into a temporary directory
that is deleted afterwards, and writes per recipe the stored parameters and
every seed's float accuracy on the whole test split (`accuracy_full_split`,
float64 numpy over the exported files, as in metrics.json) to a JSON file,
by default examples/seeds.json, which examples/results.py reads for its
mean and spread columns and the error bars of its plot.

Seed 0 is the committed example: its accuracy here equals that example's
metrics.json (runs are deterministic). The file is rewritten once per recipe,
so an interrupted study keeps what it finished; --resume skips recipes whose
entry already has the requested seeds.
"""

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import yaml  # noqa: E402

import train  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(os.path.dirname(HERE), "seeds.json")


def example_key(recipe_path, recipe):
    """`<data set>/<method>` from the recipe's relative `out` (../../<data set>/<method>), else the
    recipe file's name."""
    out = recipe.get("out")
    if out and not os.path.isabs(out):
        parts = os.path.normpath(out).split(os.sep)
        if len(parts) >= 2 and parts[-2] not in ("..", "."):
            return f"{parts[-2]}/{parts[-1]}"
    return os.path.splitext(os.path.basename(recipe_path))[0]


def load_existing(path):
    if not os.path.isfile(path):
        return {}
    with open(path) as fh:
        return json.load(fh).get("examples", {})


def write(path, examples, settings):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"settings": settings, "examples": dict(sorted(examples.items()))}, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipes", nargs="+")
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    ap.add_argument("--epochs", type=int, help="override train.epochs (smoke runs)")
    ap.add_argument("--subset", type=int, help="K train and K test sequences (smoke runs)")
    ap.add_argument("--out", default=DEFAULT_OUT, help=f"JSON file to write (default {DEFAULT_OUT})")
    ap.add_argument("--resume", action="store_true", help="keep entries of --out that have the seeds already")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        raise SystemExit("seeds.py: --seeds must be at least 1")

    settings = {"seeds": args.seeds, "epochs": args.epochs, "subset": args.subset}
    examples = load_existing(args.out) if args.resume else {}
    total = len(args.recipes) * args.seeds
    done = 0
    t_start = time.time()
    for path in args.recipes:
        with open(path) as fh:
            recipe = yaml.safe_load(fh)
        key = example_key(path, recipe)
        if args.resume and len(examples.get(key, {}).get("accuracy_full_split", [])) == args.seeds:
            done += args.seeds
            print(f"[{done}/{total}] {key}: kept", flush=True)
            continue
        entry = {"recipe": os.path.basename(path), "seeds": list(range(args.seeds)),
                 "accuracy": [], "accuracy_full_split": []}
        for seed in range(args.seeds):
            r = dict(recipe, seed=seed)
            run_args = argparse.Namespace(recipe=path, epochs=args.epochs, subset=args.subset)
            t0 = time.time()
            log = io.StringIO()
            with tempfile.TemporaryDirectory(prefix="kpgen-seeds-") as out:
                try:
                    with contextlib.redirect_stdout(log):
                        metrics = train.run(r, run_args, out)
                except (SystemExit, Exception):
                    sys.stderr.write(log.getvalue())
                    raise
            entry["params_stored"] = metrics["params_stored"]
            entry["compression"] = metrics["compression"]
            entry["test_sequences_full_split"] = metrics["test_sequences_full_split"]
            entry["accuracy"].append(metrics["accuracy"])
            entry["accuracy_full_split"].append(metrics["accuracy_full_split"])
            done += 1
            left = (time.time() - t_start) / done * (total - done)
            print(f"[{done}/{total}] {key} seed {seed}: accuracy {metrics['accuracy_full_split']:.4f} "
                  f"({time.time() - t0:.0f} s; about {left / 60:.0f} min left)", flush=True)
        examples[key] = entry
        write(args.out, examples, settings)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
