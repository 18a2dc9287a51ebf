"""The perplexity of a whole split computed by kpgen's generated C (host build), measured exactly
as the companion measures it, in f32 and in fixed point.

    cargo build --release -p kpgen
    target/torch-venv/bin/python examples/kjv_lm/host_eval.py --run target/kjv_lm/runs/dkp25 \
        [--precision f32 --precision int8] [--split test] [--cc cc]

Exports the run's LSTM stack (export.py), builds it with `kpgen build` (int8 / int16 calibrated on
training windows), compiles driver.c around it, and streams the split through it the way
lm.evaluate reads it: 10 contiguous columns, each read word by word with its own state
(`NAME_state_t`, `NAME_step`), the embedding looked up before and the model's softmax applied
after, outside the generated code. Prints and records the perplexity beside the companion's
(lm.evaluate on the same split, PyTorch) in examples/kjv_lm/records/<run>-host-<split>.json.
kpgen: $KPGEN, else target/release/kpgen.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import export as E  # noqa: E402
import lm as L  # noqa: E402

COLUMNS = 10  # lm.evaluate's default batch


def run(cmd, what, **kw):
    out = subprocess.run(cmd, capture_output=True, **kw)
    if out.returncode != 0:
        sys.stderr.write(out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace"))
        raise SystemExit(f"host_eval: {what} failed (exit {out.returncode})")
    return out.stdout


@torch.no_grad()
def generated_perplexity(model, driver, stream, hidden):
    n = (len(stream) - 1) // COLUMNS
    data = np.asarray(stream[: n * COLUMNS + 1], dtype=np.int64)
    x, y = data[:-1].reshape(COLUMNS, n), data[1:].reshape(COLUMNS, n)
    emb = model.embed.weight.numpy().astype(np.float32)
    feed = np.ascontiguousarray(emb[x.T])  # steps x columns x E
    header = np.array([COLUMNS, n], dtype=np.int32).tobytes()
    out = run([driver], "the driver", input=header + feed.tobytes())
    h = np.frombuffer(out, dtype=np.float32)
    if h.size != n * COLUMNS * hidden:
        raise SystemExit(f"host_eval: the driver wrote {h.size} values, {n * COLUMNS * hidden} expected")
    lp = model.target_log_probs(torch.from_numpy(h.reshape(-1, hidden).copy()),
                                torch.from_numpy(np.ascontiguousarray(y.T).reshape(-1)))
    return L.perplexity(lp.numpy()), n * COLUMNS


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--name", help="record name (default: the run folder's name)")
    ap.add_argument("--precision", action="append", choices=["f32", "int8", "int16"])
    ap.add_argument("--split", default="test", choices=["valid", "test"])
    ap.add_argument("--limit", type=int, default=0, help="the split's first N words only (tests)")
    ap.add_argument("--cc", default="cc")
    ap.add_argument("--corpus", default=os.path.join("target", "kjv_lm", "corpus"))
    ap.add_argument("--record", default=os.path.join(HERE, "records"), help="folder of the record")
    args = ap.parse_args(argv)
    precisions = args.precision or ["f32", "int8"]
    name = args.name or os.path.basename(os.path.normpath(args.run))
    kpgen = os.environ.get("KPGEN", os.path.join(ROOT, "target", "release", "kpgen"))

    model = E.load_model(args.run)
    stream = np.load(os.path.join(args.corpus, f"{args.split}.npy")).astype(np.int64)
    if args.limit:
        stream = stream[: args.limit]
    t0 = time.time()
    companion = L.evaluate(model, stream, batch=COLUMNS)
    print(f"host_eval: companion (PyTorch) {args.split} perplexity {companion:.4f} ({time.time() - t0:.0f} s)",
          flush=True)
    record = {"run": name, "split": args.split, "words": None, "companion_perplexity": companion,
              "columns": COLUMNS, "generated": {}}
    with tempfile.TemporaryDirectory() as work:
        export = os.path.join(work, "export")
        spec_name = f"kjv_lm_{name}".replace("-", "_")
        run([sys.executable, os.path.join(HERE, "export.py"), "--run", args.run, "--out", export,
             "--corpus", args.corpus, "--sequences", "1", "--steps", "8", "--name", spec_name], "export.py")
        for p in precisions:
            build = os.path.join(work, f"build-{p}")
            # A host build: no microcontroller's flash or RAM budget applies.
            cmd = [kpgen, "build", os.path.join(export, "spec.yaml"), "--precision", p, "--out", build,
                   "--flash-budget", str(1 << 30), "--ram-budget", str(1 << 30)]
            if p != "f32":
                cmd += ["--calibrate", os.path.join(export, "calib.npy")]
            run(cmd, f"kpgen build ({p})")
            driver = os.path.join(work, f"driver-{p}")
            run([args.cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-DMODEL={spec_name}",
                 f"-DMODEL_UPPER={spec_name.upper()}", f'-DMODEL_H="{spec_name}.h"', "-I", os.path.join(build, "c"),
                 os.path.join(HERE, "driver.c"), os.path.join(build, "c", f"{spec_name}.c"), "-o", driver, "-lm"],
                f"compiling the driver ({p})")
            t0 = time.time()
            ppl, words = generated_perplexity(model, driver, stream, model.config["hidden"])
            record["words"] = words
            record["generated"][p] = {"perplexity": ppl, "relative_to_companion": ppl / companion - 1.0}
            print(f"host_eval: generated C, {p}: {args.split} perplexity {ppl:.4f} "
                  f"({100 * (ppl / companion - 1):+.3f}% against the companion; {words:,} words, "
                  f"{time.time() - t0:.0f} s)", flush=True)
    os.makedirs(args.record, exist_ok=True)
    path = os.path.join(args.record, f"{name}-host-{args.split}.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(f"host_eval: wrote {path}")


if __name__ == "__main__":
    main()
