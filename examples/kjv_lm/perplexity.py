"""Perplexity from the hidden states the generated code computed.

    target/torch-venv/bin/python examples/kjv_lm/perplexity.py --run target/kjv_lm/runs/dkp25 \
        --export target/kjv_lm/export/dkp25 --hidden OUT/model-c.npy [--hidden OUT/model-rust.npy ...]

Each --hidden file is what `kpgen test --every-step --save-outputs OUT` saved: the top LSTM
layer's h after every step of every test window (sequences x steps x H; for int8 / int16 the
dequantized codes). The model's softmax (the same adaptive softmax the companion uses) turns each
h into log-probabilities of the next word; the perplexity over the export's tokens.npy is printed
beside the companion's (companion.json) with the largest |h - h_companion|, and written as JSON
with --json.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import export as E  # noqa: E402
import lm as L  # noqa: E402


@torch.no_grad()
def perplexity_of_states(model, h, tokens):
    """h: sequences x steps x H (h[:, t] predicts tokens[:, t + 1]); tokens: sequences x (steps + 1)."""
    if h.ndim != 3 or h.shape[:2] != (tokens.shape[0], tokens.shape[1] - 1):
        raise SystemExit(f"perplexity: hidden states of shape {h.shape} do not fit tokens of shape {tokens.shape} "
                         "(expected sequences x steps x H, from kpgen test --every-step)")
    if not np.isfinite(h).all():
        raise SystemExit("perplexity: the hidden states are not all finite (a sequence shorter than the steps?)")
    lp = model.target_log_probs(torch.as_tensor(h.reshape(-1, h.shape[-1]), dtype=torch.float32),
                                torch.as_tensor(tokens[:, 1:].reshape(-1).astype(np.int64)))
    return L.perplexity(lp.numpy())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--export", required=True)
    ap.add_argument("--hidden", action="append", required=True, help="a saved .npy of hidden states")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    model = E.load_model(args.run)
    tokens = np.load(os.path.join(args.export, "tokens.npy"))
    reference = np.load(os.path.join(args.export, "companion.npy"))
    with open(os.path.join(args.export, "companion.json")) as f:
        info = json.load(f)
    results = {"companion_perplexity": info["companion_perplexity"], "words": int(tokens[:, 1:].size),
               "generated": {}}
    print(f"companion (PyTorch)  perplexity {info['companion_perplexity']:.4f} over {tokens[:, 1:].size} words")
    for path in args.hidden:
        h = np.load(path).astype(np.float32)
        ppl = perplexity_of_states(model, h, tokens)
        diff = float(np.max(np.abs(h - reference)))
        results["generated"][path] = {"perplexity": ppl, "max_abs_h_difference": diff}
        print(f"{os.path.basename(path):<20} perplexity {ppl:.4f}  (max |h - companion h| {diff:.2e})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
