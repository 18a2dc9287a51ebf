"""Takes a trained KJV language model's LSTM stack through kpgen and records what it costs and
what perplexity the generated code gives.

    cargo build --release -p kpgen
    target/torch-venv/bin/python examples/kjv_lm/deploy.py --run target/kjv_lm/runs/dkp25 \
        [--name dkp25] [--target cortex-m7 | --host cc] [--precision f32 --precision int8] \
        [--sequences 8] [--steps 64]

For each precision: export.py (the stack, test windows of the test books, calibration windows of
the training books), then

    kpgen test SPEC --target T --precision P [--calibrate calib.npy] --inputs inputs.npy \
        --every-step --save-outputs SAVED --no-dense --out REPORT

(C and Rust, every step through the streaming API, compared with kpgen's float reference, or
for int8 bit for bit with its integer reference), then perplexity.py on the hidden states the C
and the Rust saved. Writes examples/kjv_lm/records/<name>-<target or host>.json: per precision the
generated code's perplexity (C, Rust), the companion's on the same words, the largest |h|
difference, instructions per step (= per word), flash, RAM and stack from the QEMU run.
kpgen: $KPGEN, else target/release/kpgen.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HOST_BUDGET = 1 << 30


def run(cmd, what):
    print(f"deploy: {what}", flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"deploy: {what} failed (exit {out.returncode}): {' '.join(map(str, cmd))}")
    return out.stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--name", help="record name (default: the run folder's name)")
    ap.add_argument("--target", default="cortex-m7")
    ap.add_argument("--host", help="run natively with this C compiler instead of QEMU (no costs)")
    ap.add_argument("--precision", action="append", choices=["f32", "int8", "int16"])
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--corpus", default=os.path.join("target", "kjv_lm", "corpus"))
    ap.add_argument("--work", help="keep the exports and outputs here (default: a temporary folder)")
    args = ap.parse_args(argv)
    precisions = args.precision or ["f32", "int8"]
    name = args.name or os.path.basename(os.path.normpath(args.run))
    kpgen = os.environ.get("KPGEN", os.path.join(ROOT, "target", "release", "kpgen"))
    where = f"host-{args.host}" if args.host else args.target

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or tmp
        export = os.path.join(work, "export")
        run([sys.executable, os.path.join(HERE, "export.py"), "--run", args.run, "--out", export,
             "--corpus", args.corpus, "--sequences", str(args.sequences), "--steps", str(args.steps),
             "--name", f"kjv_lm_{name}"], f"export {args.run}")
        with open(os.path.join(export, "companion.json")) as f:
            companion = json.load(f)
        record = {"run": name, "platform": where, "sequences": args.sequences, "steps": args.steps,
                  "words": companion["words"], "companion_perplexity": companion["companion_perplexity"],
                  "lstm_stored_parameters": companion["lstm_stored_parameters"], "precisions": {}}
        for p in precisions:
            saved, report = os.path.join(work, f"saved-{p}"), os.path.join(work, f"report-{p}")
            cmd = [kpgen, "test", os.path.join(export, "spec.yaml"), "--precision", p,
                   "--inputs", os.path.join(export, "inputs.npy"), "--every-step", "--no-dense",
                   "--save-outputs", saved, "--out", report]
            # A host build has no microcontroller's flash: the budget is the host's to give.
            cmd += (["--host", args.host, "--flash-budget", str(HOST_BUDGET), "--ram-budget", str(HOST_BUDGET)]
                    if args.host else ["--target", args.target])
            if p != "f32":
                cmd += ["--calibrate", os.path.join(export, "calib.npy")]
            log = run(cmd, f"kpgen test ({where}, {p})")
            print(log.strip().splitlines()[-1], flush=True)
            with open(os.path.join(report, "report.json")) as f:
                rep = json.load(f)
            ppl_json = os.path.join(work, f"ppl-{p}.json")
            hidden = []
            for lang in ("c", "rust"):
                path = os.path.join(saved, f"model-{lang}.npy")
                if os.path.exists(path):
                    hidden += ["--hidden", path]
            run([sys.executable, os.path.join(HERE, "perplexity.py"), "--run", args.run, "--export", export,
                 *hidden, "--json", ppl_json], f"perplexity ({p})")
            with open(ppl_json) as f:
                ppl = json.load(f)
            entry = {"weight_bytes": rep["totals"]["weight_bytes"], "state_bytes": rep["totals"]["state_bytes"],
                     "macs_per_step": rep["totals"]["macs_per_step"], "langs": {}}
            for r in rep["measured"]["results"]:
                lang = r["lang"]
                g = ppl["generated"][os.path.join(saved, f"model-{lang}.npy")]
                entry["langs"][lang] = {
                    "pass": r["comparison"]["pass"],
                    "perplexity": round(g["perplexity"], 4),
                    "max_abs_h_difference": g["max_abs_h_difference"],
                    **({k: r["cost"][k] for k in ("instructions_per_step", "flash_bytes", "ram_bytes",
                                                  "stack_bytes")} if r.get("cost") else {}),
                }
            record["precisions"][p] = entry
            c = entry["langs"].get("c", {})
            print(f"deploy: {p}: perplexity C {c.get('perplexity')} (companion "
                  f"{record['companion_perplexity']:.4f})"
                  + (f", {c['instructions_per_step']:,} instructions per word, flash {c['flash_bytes']:,} B"
                     if "instructions_per_step" in c else ""), flush=True)
    os.makedirs(os.path.join(HERE, "records"), exist_ok=True)
    path = os.path.join(HERE, "records", f"{name}-{where}.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(f"deploy: wrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
