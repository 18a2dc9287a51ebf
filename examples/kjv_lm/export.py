"""Exports a trained KJV language model's LSTM stack for kpgen, with test tokens to feed it.

    target/torch-venv/bin/python examples/kjv_lm/export.py --run target/kjv_lm/runs/dkp25 \
        --out target/kjv_lm/export/dkp25 [--sequences 4] [--steps 32]

The device runs the two LSTM layers (what kpgen compiles); the embedding lookup before them and
the softmax after them stay outside, as on a device they are a table read and a separate
classifier. Writes into --out:

- lstm.safetensors and spec.yaml: the four weight matrices in their trained form (dense W; KP
  `{kron: [A, B]}`; doped KP with the overlay as its non-zeros; hybrid KP `dense_rows`; pruned
  `{sparse: ...}`; low rank `{lowrank: [U, V]}`) and the biases, PyTorch's names and gate order;
  the spec's output is the top layer's hidden state h at every step;
- tokens.npy (sequences x (steps + 1) word ids: consecutive windows of the test stream),
  inputs.npy (sequences x steps x E: their embeddings, the model's input) and calib.npy (16
  windows of the training stream, for `kpgen build --precision int8 --calibrate`);
- companion.npy: the hidden states PyTorch computes (sequences x steps x H, state reset per
  sequence, no dropout) and companion.json with the perplexity of these windows.

`perplexity.py` then turns the hidden states saved by `kpgen test --every-step --save-outputs`
into the same perplexity.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import lm as L  # noqa: E402


def load_model(run):
    ck = torch.load(os.path.join(run, "model.pt"), weights_only=False)
    model = L.LM(**ck["config"])
    model.load_state_dict(ck["model"])
    model.eval()
    return model


def windows(stream, count, steps, start=0):
    """`count` consecutive windows of steps + 1 words from `start`."""
    need = start + count * steps + 1
    if len(stream) < need:
        raise SystemExit(f"export: the stream has {len(stream):,} words, {need:,} needed")
    return np.stack([stream[start + i * steps: start + (i + 1) * steps + 1] for i in range(count)])


def matrix_tensors(name, m):
    """The tensors of one matrix and its spec entry (a YAML flow mapping)."""
    f = "lstm.safetensors"
    t = {}
    if m.method == "dense":
        t[name] = m.W
        return t, f"{f}:{name}"
    if m.method == "pruned":
        s = (m.W * m.mask).detach().to_sparse_csr()
        t.update({f"{name}.values": s.values(), f"{name}.indptr": s.crow_indices().to(torch.int32),
                  f"{name}.indices": s.col_indices().to(torch.int32)})
        return t, (f"{{sparse: {{shape: [{m.rows}, {m.cols}], values: {f}:{name}.values, "
                   f"indptr: {f}:{name}.indptr, indices: {f}:{name}.indices}}}}")
    if m.method == "lowrank":
        t.update({f"{name}.U": m.U, f"{name}.V": m.V})
        return t, f"{{lowrank: [{f}:{name}.U, {f}:{name}.V]}}"
    t.update({f"{name}.A": m.A, f"{name}.B": m.B})
    entry = f"{{kron: [{f}:{name}.A, {f}:{name}.B]"
    if m.method == "hkp":
        t[f"{name}.U"] = m.U
        entry += f", dense_rows: {f}:{name}.U"
    if m.method == "dkp":
        s = (m.S * m.mask).detach().to_sparse_coo().coalesce()
        t.update({f"{name}.S.values": s.values(), f"{name}.S.rows": s.indices()[0].to(torch.int32),
                  f"{name}.S.cols": s.indices()[1].to(torch.int32)})
        entry += (f", dope: {{shape: [{m.rows}, {m.cols}], values: {f}:{name}.S.values, "
                  f"rows: {f}:{name}.S.rows, cols: {f}:{name}.S.cols}}")
    return t, entry + "}"


def spec_text(name, model, steps, entries):
    c = model.config
    layers = []
    for layer in (0, 1):
        layers.append(f"""  - kind: lstm
    units: {c['hidden']}
    w_ih: {entries[f'weight_ih_l{layer}']}
    w_hh: {entries[f'weight_hh_l{layer}']}
    b_ih: lstm.safetensors:bias_ih_l{layer}
    b_hh: lstm.safetensors:bias_hh_l{layer}""")
    return (f"# The LSTM stack of the KJV language model ({c['method']}, H {c['hidden']}), exported by\n"
            f"# examples/kjv_lm/export.py. Input: the word's embedding; output: the top layer's h.\n"
            f"name: {name}\ninput: {{features: {c['emb']}, steps: {steps}}}\nlayers:\n"
            + "\n".join(layers) + "\n")


@torch.no_grad()
def companion(model, tokens):
    """PyTorch's hidden states for each window (state reset per window) and their perplexity."""
    h, _ = model.hidden_states(torch.as_tensor(tokens[:, :-1].astype(np.int64)))
    lp = model.target_log_probs(h.reshape(-1, h.shape[-1]), torch.as_tensor(tokens[:, 1:].reshape(-1).astype(np.int64)))
    return h.numpy().astype(np.float32), L.perplexity(lp.numpy())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a train.py run folder (model.pt)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--corpus", default=os.path.join("target", "kjv_lm", "corpus"))
    ap.add_argument("--sequences", type=int, default=4)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--name", default="", help="the spec's name (default: kjv_lm_<method>)")
    args = ap.parse_args(argv)

    model = load_model(args.run)
    test = np.load(os.path.join(args.corpus, "test.npy"))
    train = np.load(os.path.join(args.corpus, "train.npy"))
    tokens = windows(test, args.sequences, args.steps)
    # Calibration windows spread over the training stream (not the test text).
    stride = max(1, (len(train) - args.steps - 1) // 16)
    calib_tokens = np.stack([train[i * stride: i * stride + args.steps] for i in range(16)])

    os.makedirs(args.out, exist_ok=True)
    tensors, entries = {}, {}
    for name, m in model.mats.items():
        t, entries[name] = matrix_tensors(name, m)
        tensors.update(t)
    for n, p in model.lstm.named_parameters():
        tensors[n] = p
    save_file({k: v.detach().to(torch.float32).contiguous() if v.is_floating_point() else v.contiguous()
               for k, v in tensors.items()}, os.path.join(args.out, "lstm.safetensors"))
    name = args.name or f"kjv_lm_{model.config['method']}"
    with open(os.path.join(args.out, "spec.yaml"), "w") as f:
        f.write(spec_text(name, model, args.steps, entries))
    emb = model.embed.weight.detach().numpy().astype(np.float32)
    np.save(os.path.join(args.out, "tokens.npy"), tokens.astype(np.int32))
    np.save(os.path.join(args.out, "inputs.npy"), emb[tokens[:, :-1]])
    np.save(os.path.join(args.out, "calib.npy"), emb[calib_tokens])
    h, ppl = companion(model, tokens)
    np.save(os.path.join(args.out, "companion.npy"), h)
    stored, dense = model.lstm_parameters()
    info = {"run": args.run, "method": model.config["method"], "sequences": args.sequences,
            "steps": args.steps, "words": int(args.sequences * args.steps),
            "companion_perplexity": ppl, "lstm_stored_parameters": stored, "lstm_dense_parameters": dense}
    with open(os.path.join(args.out, "companion.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(f"export: {name} -> {args.out}: {args.sequences} x {args.steps} test words, "
          f"companion perplexity {ppl:.3f}")


if __name__ == "__main__":
    main()
