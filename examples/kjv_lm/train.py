"""Trains the KJV word-level language model (dense or compressed LSTM layers), resumably.

    target/torch-venv/bin/python examples/kjv_lm/train.py --method dkp --out target/kjv_lm/runs/dkp25 \
        [--ratio 25] [--hidden 256] [--epochs 6] [--seed 0]

Run it in the background with a log (`nohup ... > target/kjv_lm/dkp25.log 2>&1 &`). It prints
progress with tokens/s and an ETA, writes DIR/checkpoint.pt every --checkpoint-minutes and at the
end of every epoch (atomically), and when started again on the same DIR with the same settings it
continues where the checkpoint was (a different setting is refused). At the end it measures the
validation and test perplexity (lm.evaluate, full vocabulary) and writes DIR/record.json and
DIR/model.pt. The corpus comes from corpus.py (--corpus, prepared when missing).
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import lm as L  # noqa: E402

# Steps of the schedule at which the dkp overlays and pruned matrices are re-masked, and the
# fractions of the run between which they anneal (cubic, from dense to the target).
ANNEAL_EVERY = 100
ANNEAL_START, ANNEAL_END = 0.05, 0.6


def load_corpus(folder):
    if not os.path.exists(os.path.join(folder, "train.npy")):
        print(f"train: preparing the corpus into {folder}", flush=True)
        subprocess.run([sys.executable, os.path.join(HERE, "corpus.py"), "--out", folder], check=True)
    out = {s: np.load(os.path.join(folder, f"{s}.npy")).astype(np.int64) for s in ("train", "valid", "test")}
    with open(os.path.join(folder, "vocab.txt")) as f:
        out["vocab"] = len(f.read().splitlines())
    return out


def batches(stream, batch, bptt):
    """The training stream as `batch` contiguous columns, cut into windows of `bptt` words:
    a list of (x, y) with y the next words. Deterministic; the state carries across windows."""
    n = (len(stream) - 1) // batch
    data = torch.as_tensor(stream[: n * batch + 1])
    x, y = data[:-1].view(batch, n), data[1:].view(batch, n)
    return [(x[:, i:i + bptt], y[:, i:i + bptt]) for i in range(0, n, bptt)]


def settings(args):
    """What must be equal for a checkpoint to be continued."""
    keys = ("method", "ratio", "hidden", "emb", "epochs", "seed", "batch", "bptt", "lr", "dropout",
            "rowdrop", "clip", "limit_tokens")
    out = {k: getattr(args, k) for k in keys}
    if args.kp_shape != "min":  # runs from before --kp-shape continue unchanged
        out["kp_shape"] = args.kp_shape
    return out


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fmt_time(s):
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run folder (checkpoint, record, model)")
    ap.add_argument("--method", choices=L.METHODS, default="dense")
    ap.add_argument("--ratio", type=float, default=25.0, help="compression of the LSTM weight matrices")
    ap.add_argument("--kp-shape", choices=L.KP_SHAPES, default="min",
                    help="kp factor shapes: min = the fewest parameters of full rank bound, whatever "
                         "--ratio (256x at H 256); budget = the most parameters within --ratio's budget")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--emb", type=int, default=0, help="embedding width (default: --hidden)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=35)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--dropout", type=float, default=0.25)
    ap.add_argument("--rowdrop", type=float, default=0.1, help="dkp co-matrix row dropout")
    ap.add_argument("--clip", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="PyTorch threads (1: on this 2-core machine, 2 threads ran 10x slower "
                         "whenever the other core was busy)")
    ap.add_argument("--corpus", default=os.path.join("target", "kjv_lm", "corpus"))
    ap.add_argument("--limit-tokens", type=int, default=0, help="train on the first N words only (tests)")
    ap.add_argument("--eval-tokens", type=int, default=0, help="evaluate on the first N words only (tests)")
    ap.add_argument("--checkpoint-minutes", type=float, default=3.0)
    ap.add_argument("--progress-seconds", type=float, default=30.0)
    ap.add_argument("--stop-after-steps", type=int, default=0,
                    help="checkpoint and stop after this many steps of this session (continue later)")
    args = ap.parse_args(argv)
    args.emb = args.emb or args.hidden

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    corpus = load_corpus(args.corpus)
    train = corpus["train"][: args.limit_tokens] if args.limit_tokens else corpus["train"]
    windows = batches(train, args.batch, args.bptt)
    total_steps = args.epochs * len(windows)

    model = L.LM(corpus["vocab"], hidden=args.hidden, emb=args.emb,
                 method=args.method, ratio=args.ratio, dropout=args.dropout, rowdrop=args.rowdrop, seed=args.seed,
                 kp_shape=args.kp_shape)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    step, state, spent = 0, None, 0.0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, weights_only=False)
        if ck["settings"] != settings(args):
            diff = {k: (ck["settings"].get(k), v) for k, v in settings(args).items() if ck["settings"].get(k) != v}
            raise SystemExit(f"train: {ckpt_path} was written with other settings {diff} (was, now): "
                             "use another --out, or delete the checkpoint to start over")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        step, state, spent = ck["step"], ck["state"], ck["seconds"]
        torch.set_rng_state(ck["torch_rng"])
        random.setstate(ck["py_rng"])
        print(f"train: continuing {args.out} at step {step:,} of {total_steps:,} ({fmt_time(spent)} spent)",
              flush=True)
    else:
        random.seed(args.seed)
        stored, dense = model.lstm_parameters()
        print(f"train: {args.method} LM, H {args.hidden}, E {args.emb}, LSTM weights {dense:,} dense"
              + (f" -> {dense / args.ratio:,.0f} target ({args.ratio:g}x)" if args.method != "dense" else "")
              + f"; {len(train):,} training words, {len(windows)} windows of {args.batch} x {args.bptt} per epoch, "
              f"{args.epochs} epochs", flush=True)

    def checkpoint():
        save_atomic({"settings": settings(args), "model": model.state_dict(), "opt": opt.state_dict(),
                     "sched": sched.state_dict(), "step": step, "state": state, "seconds": spent,
                     "torch_rng": torch.get_rng_state(), "py_rng": random.getstate()}, ckpt_path)

    model.train()
    session_start, last_ckpt, last_log = time.time(), time.time(), time.time()
    session_steps, losses = 0, []
    started_at = spent
    while step < total_steps:
        epoch, i = divmod(step, len(windows))
        if i == 0:
            state = None
        if step % ANNEAL_EVERY == 0:
            model.anneal(L.cubic_schedule(step, total_steps, ANNEAL_START, ANNEAL_END))
        x, y = windows[i]
        if state is not None:
            state = tuple(s.detach() for s in state)
        loss, state = model.loss(x, y, state)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        sched.step()
        with torch.no_grad():  # masked entries stay exactly zero (Adam's momentum would move them)
            for m in model.mats.values():
                if m.method == "dkp":
                    m.S.mul_(m.mask)
                elif m.method == "pruned":
                    m.W.mul_(m.mask)
        losses.append(loss.item())
        step += 1
        session_steps += 1
        now = time.time()
        spent = started_at + (now - session_start)
        if now - last_log >= args.progress_seconds or step == total_steps or (step % len(windows) == 0):
            rate = session_steps * args.batch * args.bptt / (now - session_start)
            eta = (total_steps - step) * args.batch * args.bptt / rate
            stored, dense = model.lstm_parameters()
            print(f"epoch {epoch + 1}/{args.epochs} step {step:,}/{total_steps:,} "
                  f"loss {np.mean(losses):.3f} (ppl {math.exp(np.mean(losses)):.1f}) "
                  f"{rate:,.0f} words/s, lstm {dense / stored:.1f}x, elapsed {fmt_time(spent)}, eta {fmt_time(eta)}",
                  flush=True)
            losses, last_log = [], now
        if step % len(windows) == 0 or now - last_ckpt >= 60 * args.checkpoint_minutes:
            checkpoint()
            last_ckpt = now
        if args.stop_after_steps and session_steps >= args.stop_after_steps and step < total_steps:
            checkpoint()
            print(f"train: stopped after {session_steps} steps at step {step:,}; run again to continue",
                  flush=True)
            return

    # At the end every mask is at its target (the schedule ends at ANNEAL_END < 1).
    model.anneal(0.0)
    ev = lambda s: corpus[s][: args.eval_tokens] if args.eval_tokens else corpus[s]  # noqa: E731
    t0 = time.time()
    valid, test = L.evaluate(model, ev("valid")), L.evaluate(model, ev("test"))
    stored, dense = model.lstm_parameters()
    record = {
        **settings(args),
        "train_words": int(len(train)),
        "lstm_dense_parameters": dense,
        "lstm_stored_parameters": stored,
        "lstm_compression": round(dense / stored, 3),
        "matrices": {n: {"method": m.method, "shape": [m.rows, m.cols], "stored": m.stored(),
                         **({"factors": list(m.factors)} if hasattr(m, "factors") else {}),
                         **({"dense_rows": m.dense_rows} if getattr(m, "dense_rows", 0) else {}),
                         **({"rank": m.rank} if m.method == "lowrank" else {})}
                     for n, m in model.mats.items()},
        "valid_perplexity": round(valid, 3),
        "test_perplexity": round(test, 3),
        "train_seconds": round(spent, 1),
        "eval_seconds": round(time.time() - t0, 1),
        "torch": torch.__version__,
        "threads": args.threads,
    }
    save_atomic({"config": model.config, "model": model.state_dict()}, os.path.join(args.out, "model.pt"))
    with open(os.path.join(args.out, "record.json.tmp"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    os.replace(os.path.join(args.out, "record.json.tmp"), os.path.join(args.out, "record.json"))
    print(f"train: done in {fmt_time(spent)}: valid perplexity {valid:.2f}, test {test:.2f}, "
          f"LSTM {dense:,} -> {stored:,} parameters ({dense / stored:.1f}x) -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
