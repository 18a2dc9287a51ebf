"""Trains a doped-KP LSTM (or GRU) classifier in PyTorch on the digits data set and exports it
for kpgen.

    python examples/torch/train_export.py --out /tmp/torch_digits [--cell lstm|gru] [--epochs 4]
    kpgen test /tmp/torch_digits/spec.yaml --inputs /tmp/torch_digits/test_x.npy \
        --labels /tmp/torch_digits/test_y.npy

Writes into --out: model.safetensors (PyTorch's parameter names, see kp_torch.py), spec.yaml,
test_x.npy / test_len.npy / test_y.npy (the held-out sequences), torch_logits.npy (what
PyTorch computes on them) and metrics.json. kpgen's tests check that kpgen's reference and
the generated C and Rust reproduce torch_logits.npy and its classes.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))  # the companion's offline data sets

import data  # noqa: E402
from kp_torch import KPClassifier, kpgen_spec, tensors  # noqa: E402

HIDDEN = 16
# (m1, n1, m2, n2) per cell: LSTM W_ih 64 x 8 = (8x2) ⊗ (8x4), W_hh 64 x 16 = (8x4) ⊗ (8x4);
# GRU W_ih 48 x 8 = (6x2) ⊗ (8x4), W_hh 48 x 16 = (6x4) ⊗ (8x4).
SHAPES = {
    "lstm": ((8, 2, 8, 4), (8, 4, 8, 4)),
    "gru": ((6, 2, 8, 4), (6, 4, 8, 4)),
}
GATES = {"lstm": 4, "gru": 3}
DOPE_DENSITY = 0.05


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder to write the export into")
    ap.add_argument("--cell", choices=sorted(SHAPES), default="lstm")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-count", type=int, default=64, help="held-out sequences exported")
    ap.add_argument(
        "--dense-rows",
        type=int,
        default=0,
        help="hybrid KP input matrix: keep this many first rows dense (a multiple of m2 = 8)",
    )
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    ds = data.load("digits", seed=args.seed)
    xtr = torch.from_numpy(ds.train.x)
    ltr = torch.from_numpy(ds.train.length.astype(np.int64))
    ytr = torch.from_numpy(ds.train.y.astype(np.int64))
    steps, features = ds.train.x.shape[1], ds.train.x.shape[2]
    classes = len(ds.classes)

    gen = torch.Generator().manual_seed(args.seed)
    mask = torch.rand(GATES[args.cell] * HIDDEN, HIDDEN, generator=gen) < DOPE_DENSITY
    ih, hh = SHAPES[args.cell]
    model = KPClassifier(
        features,
        HIDDEN,
        classes,
        ih,
        hh,
        hh_dope_mask=mask,
        cell=args.cell,
        ih_dense_rows=args.dense_rows,
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()

    for epoch in range(args.epochs):
        started = time.time()
        order = torch.randperm(len(xtr), generator=gen)
        total = 0.0
        for i in range(0, len(order), 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx], ltr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {total / len(xtr):.4f} "
            f"({time.time() - started:.1f} s)",
            flush=True,
        )

    n = min(args.test_count, len(ds.test.x))
    xte, lte, yte = ds.test.x[:n], ds.test.length[:n], ds.test.y[:n]
    with torch.no_grad():
        logits = model(torch.from_numpy(xte), torch.from_numpy(lte.astype(np.int64))).numpy()
    accuracy = float((logits.argmax(axis=1) == yte).mean())

    os.makedirs(args.out, exist_ok=True)
    weights = "model.safetensors"
    save_file(tensors(model), os.path.join(args.out, weights))
    name = f"torch_digits_dkp_{args.cell}" + (f"_hkp{args.dense_rows}" if args.dense_rows else "")
    with open(os.path.join(args.out, "spec.yaml"), "w") as f:
        f.write(kpgen_spec(name, model, features, steps, weights))
    np.save(os.path.join(args.out, "test_x.npy"), xte.astype(np.float32))
    np.save(os.path.join(args.out, "test_len.npy"), lte.astype(np.int32))
    np.save(os.path.join(args.out, "test_y.npy"), yte.astype(np.int32))
    np.save(os.path.join(args.out, "torch_logits.npy"), logits.astype(np.float32))
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(
            {
                "model": name,
                "cell": args.cell,
                "torch": torch.__version__,
                "epochs": args.epochs,
                "test_sequences": n,
                "torch_accuracy": accuracy,
                "doped_nonzeros": int(mask.sum()),
                "input_dense_rows": args.dense_rows,
            },
            f,
            indent=2,
        )
        f.write("\n")
    print(f"exported {name} to {args.out}: accuracy {100 * accuracy:.2f}% on {n} test sequences")


if __name__ == "__main__":
    main()
