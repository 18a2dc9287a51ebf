"""Writes the KJV language-model tables of examples/kjv_lm/README.md from the runs' records.

    python3 examples/kjv_lm/results.py [--collect target/kjv_lm/runs]

--collect copies every finished run's record.json (train.py writes it at the end of a run) into
examples/kjv_lm/records/<run>.json, where deploy.py writes <run>-<platform>.json. The tables
between the README's `<!-- kjv-results: ... -->` markers are then rebuilt from records/ alone:
training (method, LSTM parameters and compression, validation and test perplexity, training
time) and deployment (perplexity from the generated code beside the companion's, cost per word,
flash, RAM). Standard library only.
"""

import argparse
import glob
import json
import os
import re
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "README.md")
RECORDS = os.path.join(HERE, "records")
ORDER = ["dense", "dkp", "kp", "hkp", "pruned", "lowrank"]
TEXT = {
    "dense": "dense",
    "dkp": "doped KP (annealed S, co-matrix row dropout)",
    "kp": "KP",
    "hkp": "hybrid KP",
    "pruned": "magnitude pruning",
    "lowrank": "low rank",
}


def describe(r):
    m = r["method"]
    if m == "dense" and r["hidden"] != 256:
        return f"small dense (H {r['hidden']})"
    mat = r["matrices"]["weight_hh_l0"]
    extra = ""
    if "factors" in mat:
        m1, n1, m2, n2 = mat["factors"]
        extra = f", ({m1}×{n1}) ⊗ ({m2}×{n2})"
    if mat.get("dense_rows"):
        extra += f" + {mat['dense_rows']} dense rows"
    if m == "dkp":
        nnz = mat["stored"] - (m1 * n1 + m2 * n2)
        extra += f" + {nnz:,} non-zeros ({100 * nnz / (mat['shape'][0] * mat['shape'][1]):.1f}%)"
    if m == "lowrank":
        extra = f", rank {mat['rank']}"
    return TEXT.get(m, m) + extra


def num(v):
    return "–" if v is None else f"{v:,}"


def minutes(s):
    return f"{s / 60:.1f} min"


def training_table(records):
    rows = ["| method (per LSTM matrix) | seed | LSTM weights stored | compression | valid ppl | test ppl | training |",
            "|---|---|---|---|---|---|---|"]

    def key(r):
        small = r["method"] == "dense" and r["hidden"] != 256
        return (r["method"] != "dense" or small, small,
                ORDER.index(r["method"]) if r["method"] in ORDER else 99, r["seed"])

    groups = {}
    for r in sorted(records, key=key):
        rows.append(f"| {describe(r)} | {r['seed']} | {r['lstm_stored_parameters']:,} | {r['lstm_compression']:.1f}x | "
                    f"{r['valid_perplexity']:.2f} | {r['test_perplexity']:.2f} | {minutes(r['train_seconds'])}"
                    f" ({r['epochs']} epochs) |")
        groups.setdefault(describe(r), []).append(r)
    for name, rs in groups.items():
        if len(rs) > 1:
            v = [r["valid_perplexity"] for r in rs]
            t = [r["test_perplexity"] for r in rs]
            rows.append(f"| **{name}: mean of {len(rs)} seeds** (min–max) | – | – | – | "
                        f"**{sum(v) / len(v):.2f}** ({min(v):.2f}–{max(v):.2f}) | "
                        f"**{sum(t) / len(t):.2f}** ({min(t):.2f}–{max(t):.2f}) | – |")
    return rows


def deployment_table(records):
    rows = ["| model | platform | precision | perplexity: C / Rust / companion | instructions per word (C / Rust) | flash B (C) | RAM B |",
            "|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["run"], r["platform"])):
        for p, e in r["precisions"].items():
            c, rs = e["langs"].get("c", {}), e["langs"].get("rust", {})
            cost = (f"{c['instructions_per_step']:,} / {rs.get('instructions_per_step', 0):,}"
                    if "instructions_per_step" in c else "– (host)")
            rows.append(f"| {r['run']} | {r['platform']} | {p} | {c.get('perplexity', float('nan')):.4f} / "
                        f"{rs.get('perplexity', float('nan')):.4f} / {r['companion_perplexity']:.4f} "
                        f"({r['words']} words) | {cost} | {num(c.get('flash_bytes'))} | "
                        f"{num(c.get('ram_bytes', e['state_bytes']))} |")
    return rows


def host_table(records):
    rows = ["| model | split | words | companion (PyTorch) | generated C, f32 | generated C, int8 |",
            "|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["run"], r["split"])):
        cells = []
        for p in ("f32", "int8"):
            g = r["generated"].get(p)
            cells.append(f"{g['perplexity']:.3f} ({100 * g['relative_to_companion']:+.3f}%)" if g else "–")
        rows.append(f"| {r['run']} | {r['split']} | {r['words']:,} | {r['companion_perplexity']:.3f} | "
                    + " | ".join(cells) + " |")
    return rows


def bench_table(benches):
    rows = ["| model | layer | core | precision | instructions per word: kpgen / kpgen dense / CMSIS-NN | est. cycles per word: kpgen / dense / CMSIS-NN | CMSIS-NN's check |",
            "|---|---|---|---|---|---|---|"]
    for b in benches:
        cells = {}
        for r in b["model_rows"]:
            cells.setdefault((r["model"], r["layer"], r["target"], r["precision"]), {})[r["implementation"]] = r
        for (model, layer, target, precision), impl in sorted(cells.items()):
            get = lambda k, f: impl.get(k, {}).get(f)  # noqa: E731
            instr = " / ".join(num(get(k, "instructions_per_step")) for k in ("kpgen", "kpgen dense", "cmsis-nn"))
            cyc = " / ".join(num(get(k, "cycles_per_step")) for k in ("kpgen", "kpgen dense", "cmsis-nn"))
            check = (get("cmsis-nn", "status") or "not run").replace("|", "/")
            rows.append(f"| {model} | {layer} | {target} | {precision} | {instr} | {cyc} | {check} |")
    return rows


def replace_block(text, tag, rows):
    begin, end = f"<!-- kjv-results: {tag} begin -->", f"<!-- kjv-results: {tag} end -->"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"results.py: {README} has no {begin} ... {end} block")
    return pattern.sub(lambda _: begin + "\n" + "\n".join(rows) + "\n" + end, text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--collect", help="copy finished runs' record.json from this folder first")
    args = ap.parse_args()
    os.makedirs(RECORDS, exist_ok=True)
    if args.collect:
        for rec in sorted(glob.glob(os.path.join(args.collect, "*", "record.json"))):
            run = os.path.basename(os.path.dirname(rec))
            shutil.copyfile(rec, os.path.join(RECORDS, f"{run}.json"))
            print(f"results: collected {run}")
    train, deploy, host, bench = [], [], [], []
    for path in sorted(glob.glob(os.path.join(RECORDS, "*.json"))):
        with open(path) as f:
            r = json.load(f)
        kind = ("bench" if "model_rows" in r else "deploy" if "precisions" in r
                else "host" if "split" in r else "train")
        {"bench": bench, "deploy": deploy, "host": host, "train": train}[kind].append(r)
    with open(README) as f:
        text = f.read()
    text = replace_block(text, "training", training_table(train))
    text = replace_block(text, "deployment", deployment_table(deploy))
    text = replace_block(text, "host", host_table(host))
    text = replace_block(text, "bench", bench_table(bench))
    with open(README, "w") as f:
        f.write(text)
    print(f"results: {len(train)} training, {len(deploy)} deployment and {len(host)} host records -> {README}")


if __name__ == "__main__":
    main()
