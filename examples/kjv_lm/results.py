"""Writes the KJV language-model tables of examples/kjv_lm/RESULTS.md and README.md from the
runs' records.

    python3 examples/kjv_lm/results.py [--collect target/kjv_lm/runs] [--check]

--collect copies every finished run's record.json (train.py writes it at the end of a run) into
examples/kjv_lm/records/<run>.json, where deploy.py writes <run>-<platform>.json and host_eval.py
<run>-host-<split>.json. The tables between the `<!-- kjv-results: ... -->` markers of RESULTS.md
and README.md are then rebuilt from records/ alone: the methods (mean and spread over seeds,
against the dense model and against the paper), every run, int8 beside float, and the
deployment (perplexity from the generated code beside the companion's, cost per word, flash,
RAM). --check rebuilds them in memory and fails, naming the file, when a committed table is not
what the records give (CI runs it). Standard library only.
"""

import argparse
import glob
import json
import os
import re
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "README.md")
RESULTS = os.path.join(HERE, "RESULTS.md")
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


def compression(r):
    """The LSTM weights of the full-size (H 256) model over this run's stored ones: the small dense
    model is compressed too, by being small."""
    return BIG_LSTM / r["lstm_stored_parameters"]


BIG_LSTM = 4 * (1024 * 256)  # the four 1024 x 256 LSTM matrices at H = E = 256


def group_key(r):
    """Sort order of the methods: dense, the Kronecker forms, the others, the small dense model."""
    small = r["method"] == "dense" and r["hidden"] != 256
    mat = r["matrices"]["weight_hh_l0"] if isinstance(r.get("matrices"), dict) else {}
    fewest_first = -mat.get("stored", 0)
    return (small, ORDER.index(r["method"]) if r["method"] in ORDER else 99, fewest_first)


def groups(records):
    """[(description, [records by seed])], one per method, shape and dropout, in the table's order."""
    out = {}
    for r in sorted(records, key=lambda r: (group_key(r), r["dropout"], r["seed"])):
        out.setdefault((describe(r), r["dropout"]), []).append(r)
    return [(name, rs) for (name, _), rs in out.items()]


def chosen(gs):
    """Per method and shape, the dropout whose runs have the lowest mean validation perplexity
    (dropout is tuned on validation; test perplexity plays no part in the choice)."""
    best = {}
    for name, rs in gs:
        v = mean([r["valid_perplexity"] for r in rs])
        if name not in best or v < best[name][0]:
            best[name] = (v, rs)
    return [(name, rs) for name, rs in gs if best[name][1] is rs]


def mean(v):
    return sum(v) / len(v)


def spread(v, digits=2):
    """mean, and (min–max) when there is more than one value."""
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{mean(v):.{digits}f} ({min(v):.{digits}f}–{max(v):.{digits}f})"


def dense_group(gs):
    """The full-size dense model's runs at its chosen dropout."""
    return next((rs for name, rs in chosen(gs) if rs[0]["method"] == "dense" and rs[0]["hidden"] == 256), None)


def methods_table(records):
    """One row per method: compression, seeds, mean (min–max) perplexities, test against dense."""
    gs = groups(records)
    dense = dense_group(gs)
    base = mean([r["test_perplexity"] for r in dense]) if dense else None
    rows = ["| method (per LSTM matrix) | LSTM weights stored | compression | dropout | seeds "
            "| valid ppl, mean (min–max) | test ppl, mean (min–max) | test against dense | training per run |",
            "|---|---|---|---|---|---|---|---|---|"]
    tuned = {name for name, _ in gs if sum(n == name for n, _ in gs) > 1}
    picked = [rs for _, rs in chosen(gs)]
    for name, rs in gs:
        drop = f"{rs[0]['dropout']:g}" + (" (chosen)" if name in tuned and any(rs is p for p in picked) else "")
        t = [r["test_perplexity"] for r in rs]
        vs = "–" if base is None or rs is dense else f"{100 * (mean(t) - base) / base:+.1f}%"
        times = [r["train_seconds"] / 60 for r in rs]
        rows.append(f"| {name} | {rs[0]['lstm_stored_parameters']:,} | {compression(rs[0]):.1f}x | "
                    f"{drop} | {len(rs)} | {spread([r['valid_perplexity'] for r in rs])} | {spread(t)} | {vs} | "
                    f"{spread(times, 1)} min |")
    return rows


def ordering(records):
    """The methods ordered by mean test perplexity, best first."""
    gs = sorted(chosen(groups(records)), key=lambda g: mean([r["test_perplexity"] for r in g[1]]))
    return ["By mean test perplexity, best first: "
            + " < ".join(f"{short(rs[0])} {mean([r['test_perplexity'] for r in rs]):.2f}" for _, rs in gs) + "."]


def short(r):
    """A method's short name with its compression."""
    m = r["method"]
    if m == "dense":
        return "dense" if r["hidden"] == 256 else f"small dense (H {r['hidden']})"
    return f"{SHORT.get(m, m)} {compression(r):.0f}x"


SHORT = {"dkp": "doped KP", "kp": "KP", "hkp": "hybrid KP", "pruned": "pruning", "lowrank": "low rank"}

# The paper's medium PTB model (Zaremba et al.'s, two LSTM(650) layers, 25 MB of LSTM weights), test
# perplexity at 25x (quantization at its own ratio): Thakker et al., "Doping: A technique for extreme
# compression of LSTM models using sparse structured additive matrices" (MLSys 2021).
PAPER = [
    ("dense", "dense", 1.0, 82.04),
    ("dkp", "doped KP", 25.0, 83.24),
    ("pruned", "magnitude pruning", 25.0, 85.14),
    ("hkp", "hybrid KP", 25.0, 99.88),
    (None, "HMD", 25.0, 105.43),
    ("lowrank", "low rank", 25.0, 114.29),
    (None, "4-bit quantization", 8.0, 83.84),
    (None, "3-bit quantization", 10.67, 83.14),
]


def paper_table(records, host):
    """The paper's figures beside ours (mean over seeds; the KP form nearest 25x)."""
    gs = groups(records)
    dense = dense_group(gs)
    base = mean([r["test_perplexity"] for r in dense]) if dense else None
    ours = {}
    for _, rs in chosen(gs):
        m = rs[0]["method"]
        if m == "dense" and rs[0]["hidden"] != 256:
            continue
        # Per method the group nearest 25x (plain KP has two shapes).
        if m not in ours or abs(compression(rs[0]) - 25) < abs(compression(ours[m][0]) - 25):
            ours[m] = rs
    rows = ["| method | paper: compression | paper: test ppl | paper: against dense | here: compression "
            "| here: test ppl (seeds) | here: against dense |",
            "|---|---|---|---|---|---|---|"]

    def here(rs):
        t = mean([r["test_perplexity"] for r in rs])
        vs = "–" if rs is dense or base is None else f"{100 * (t - base) / base:+.1f}%"
        return f"{compression(rs[0]):.1f}x | {t:.2f} ({len(rs)}) | {vs}"

    for m, name, ratio, ppl in PAPER:
        theirs = f"{ratio:g}x | {ppl:.2f} | " + ("–" if m == "dense" else f"{100 * (ppl - 82.04) / 82.04:+.1f}%")
        mine = here(ours[m]) if m in ours else "not run | – | –"
        rows.append(f"| {name} | {theirs} | {mine} |")
    if "kp" in ours:
        rows.append(f"| KP | – | – | – | {here(ours['kp'])} |")
    dense_host = next((h for h in host if h["run"] == "dense" and "int8" in h["generated"]), None)
    if dense_host:
        g = dense_host["generated"]["int8"]
        rows.append(f"| int8 of the dense model (kpgen's quantization, one seed) | – | – | – | 4x | "
                    f"{g['perplexity']:.2f} (1) | {100 * g['relative_to_companion']:+.2f}% against its float "
                    f"{dense_host['companion_perplexity']:.2f} |")
    small = next((rs for _, rs in chosen(gs) if rs[0]["method"] == "dense" and rs[0]["hidden"] != 256), None)
    if small:
        rows.append(f"| small dense LSTM of the same size | – | – | – | {here(small)} |")
    return rows


def training_table(records):
    rows = ["| method (per LSTM matrix) | dropout | seed | LSTM weights stored | compression | valid ppl | test ppl "
            "| training |",
            "|---|---|---|---|---|---|---|---|"]
    for _, rs in groups(records):
        for r in rs:
            rows.append(f"| {describe(r)} | {r['dropout']:g} | {r['seed']} | {r['lstm_stored_parameters']:,} | "
                        f"{compression(r):.1f}x | {r['valid_perplexity']:.2f} | {r['test_perplexity']:.2f} | "
                        f"{minutes(r['train_seconds'])} ({r['epochs']} epochs) |")
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


def stack_cost(benches, deploys):
    """Per word, the whole LSTM stack of each benchmarked model: the layers' instructions and
    estimated cycles summed, checked against the deployment's measured instructions."""
    out = []
    for b in benches:
        per = {}
        for r in b["model_rows"]:
            key = (r["model"], r["target"], r["precision"], r["implementation"])
            per.setdefault(key, [0, 0])
            per[key][0] += r["instructions_per_step"]
            per[key][1] += r["cycles_per_step"]
        for (model, target, precision, impl), (instr, cyc) in sorted(per.items()):
            if impl != "kpgen":
                continue
            run = model.removeprefix("kjv_lm_")
            dep = next((d for d in deploys if d["run"] == run and d["platform"] == target), None)
            measured = (dep or {}).get("precisions", {}).get(precision, {}).get("langs", {}).get("c", {})
            same = ("equal to the deployment's measured count" if measured.get("instructions_per_step") == instr
                    else f"the deployment measured {num(measured.get('instructions_per_step'))}")
            mhz = {"cortex-m7": 216, "cortex-m4": 80, "cortex-m33": 64, "cortex-m55": 160}.get(target)
            at = f", {cyc / (mhz * 1e3):.2f} ms per word at {mhz} MHz" if mhz else ""
            out.append(f"- {model} on the {target}, {precision}: {instr:,} instructions ({same}) and "
                       f"{cyc:,} estimated cycles per word for both layers{at}.")
    return out


def replace_block(text, tag, rows, path):
    begin, end = f"<!-- kjv-results: {tag} begin -->", f"<!-- kjv-results: {tag} end -->"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"results.py: {path} has no {begin} ... {end} block")
    return pattern.sub(lambda _: begin + "\n" + "\n".join(rows) + "\n" + end, text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--collect", help="copy finished runs' record.json from this folder first")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; fail when a committed table differs from what the records give")
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
    blocks = {
        README: {"brief": methods_table(train)},
        RESULTS: {"methods": methods_table(train), "ordering": ordering(train), "paper": paper_table(train, host),
                  "training": training_table(train), "host": host_table(host),
                  "deployment": deployment_table(deploy), "bench": bench_table(bench),
                  "stack": stack_cost(bench, deploy)},
    }
    stale = []
    for path, tables in blocks.items():
        with open(path) as f:
            old = f.read()
        text = old
        for tag, rows in tables.items():
            text = replace_block(text, tag, rows, path)
        if args.check:
            if text != old:
                stale.append(os.path.relpath(path, os.getcwd()))
        elif text != old:
            with open(path, "w") as f:
                f.write(text)
    if args.check:
        if stale:
            raise SystemExit(f"results.py --check: {', '.join(stale)} differ from what records/ gives; "
                             "run python3 examples/kjv_lm/results.py and commit")
        print(f"results: {len(train)} training, {len(deploy)} deployment, {len(host)} host and "
              f"{len(bench)} benchmark records agree with {os.path.basename(RESULTS)} and {os.path.basename(README)}")
        return
    print(f"results: {len(train)} training, {len(deploy)} deployment, {len(host)} host and {len(bench)} "
          f"benchmark records -> {RESULTS}, {README}")


if __name__ == "__main__":
    main()
