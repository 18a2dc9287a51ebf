#!/usr/bin/env python3
"""Regenerate examples/RESULTS.md: every example, measured on QEMU Cortex-M4.

    cargo build --release -p kpgen
    python3 examples/results.py [--jobs 2] [--only digits] [--precision int8] [--reports DIR] [--no-run]

For every examples/<dataset>/<method>/spec.yaml and every precision (f32, int8, int16;
--precision repeatable to choose) this runs

    kpgen test SPEC --precision P --inputs test_x.npy --lengths test_len.npy \\
        --labels test_y.npy --no-dense --out TMP

(int8 and int16 take their scales from the spec's `calibration:`, training sequences)
(binary: $KPGEN, else target/release/kpgen), reads TMP/report.json and the
example's metrics.json (the trainer's float accuracy on the same test set), prints
the table and writes examples/RESULTS.md and a plot of accuracy against stored
parameters, examples/results.svg (--plot PATH, --no-plot). Needs only the Python
standard library.

--reports DIR keeps each report.json as DIR/<dataset>_<method>.json; with
--no-run the table is rebuilt from those files without running kpgen.
Exit status: 0 if every example ran and every C / Rust comparison passed.
"""

import argparse
import concurrent.futures
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from xml.sax.saxutils import escape

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATASETS = ["basic_motions", "japanese_vowels", "digits"]  # table order; others follow sorted
# Table order of the method families; "hkp" and "dhkp" stand for every hkp<R> / dhkp<R>
# (R = dense rows, ascending). Unknown methods follow, sorted by name.
METHODS = ["dense", "small", "kp", "hkp", "dhkp", "kp3", "kp4", "dkp", "pruned", "lowrank"]
METHOD_TEXT = {
    "dense": "LSTM(32), every matrix dense (the uncompressed baseline)",
    "small": "a smaller dense LSTM (8 units; 9 on digits) at about the KP model's parameter count",
    "kp": "both LSTM matrices Kronecker products, W = kron(A, B) (`{kron: [A, B]}`)",
    "kp3": "both LSTM matrices Kronecker products of three factors, W = kron(A, B, C) "
           "(`{kron: [A, B, C]}`)",
    "kp4": "both LSTM matrices Kronecker products of four factors, W = kron(A, B, C, D) "
           "(`{kron: [A, B, C, D]}`)",
    "dkp": "W_ih KP, W_hh = kron(A, B) + S with 3% of S non-zero, 123 values "
           "(`{kron: [A, B], dope: S}`)",
    "pruned": "magnitude pruning of both LSTM matrices to the KP model's weight count (`{sparse: S}`)",
    "lowrank": "both LSTM matrices W = U·V at rank 1 (`{lowrank: [U, V]}`); the smallest rank "
               "is still 92–110 weights above the KP model",
    # Templates for any R (%d = R); not brace-formatted because the texts contain YAML braces.
    "hkp": "hybrid KP: the first %d rows of both LSTM matrices dense, the other rows kron(A, B) "
           "(`{kron: [A, B], dense_rows: U}`)",
    "dhkp": "doped hybrid KP: the first %d rows of both LSTM matrices dense, the other rows "
            "kron(A, B) (`{kron: [A, B], dense_rows: U}`), plus an overlay `dope: S` on W_hh",
}


def method_family(m):
    """(family, R): ("hkp", 16) for hkp16, ("dhkp", 8) for dhkp8, ("kp", None) for kp and the
    other fixed names, (None, None) for an unknown name (bare "hkp" included)."""
    hit = re.fullmatch(r"(d?hkp)([0-9]+)", m)
    if hit:
        return hit.group(1), int(hit.group(2))
    return (m, None) if m in METHODS and m not in ("hkp", "dhkp") else (None, None)


def method_order(m):
    """Sort key of a method name in table order (see METHODS)."""
    fam, r = method_family(m)
    return (METHODS.index(fam), r or 0, m) if fam else (len(METHODS), 0, m)


def dataset_order(ds):
    return (DATASETS.index(ds) if ds in DATASETS else len(DATASETS), ds)


def method_text(m):
    """Description of a method for RESULTS.md, or None for an unknown one."""
    fam, r = method_family(m)
    if fam is None:
        return None
    return METHOD_TEXT[fam] % r if r is not None else METHOD_TEXT[fam]


def examples(only):
    found = []
    for ds in sorted(os.listdir(HERE)):
        dsdir = os.path.join(HERE, ds)
        if not os.path.isdir(dsdir) or ds == "train":
            continue
        for m in sorted(os.listdir(dsdir)):
            if os.path.isfile(os.path.join(dsdir, m, "spec.yaml")):
                if not only or any(o in (ds, f"{ds}/{m}", m) for o in only):
                    found.append((ds, m))

    return sorted(found, key=lambda e: (dataset_order(e[0]), method_order(e[1])))


def kpgen_binary():
    exe = os.environ.get("KPGEN") or os.path.join(ROOT, "target", "release", "kpgen")
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        raise SystemExit(f"results.py: no kpgen binary at {exe}: run `cargo build --release -p kpgen` "
                         "or set $KPGEN")
    return exe


PRECISIONS = ["f32", "int8", "int16"]


def run_one(exe, ds, m, prec, work, reports, target=None, optimize=None):
    """kpgen test on one example (on `target`, default the Cortex-M4; with `optimize`, the
    spec's objective otherwise); returns (report dict or None, log text, seconds)."""
    d = os.path.join(HERE, ds, m)
    out = os.path.join(work, f"{ds}_{m}_{prec}" + (f"_{target}" if target else "")
                       + (f"_{optimize}" if optimize else ""))
    where = ["--target", target, "--timeout", "600"] if target else []
    if optimize:
        where += ["--optimize", optimize]
    cmd = [exe, "test", os.path.join(d, "spec.yaml"), *where, "--precision", prec,
           "--inputs", os.path.join(d, "test_x.npy"),
           "--lengths", os.path.join(d, "test_len.npy"),
           "--labels", os.path.join(d, "test_y.npy"),
           "--no-dense", "--out", out]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.time() - t0
    log = f"$ {' '.join(cmd)}\n(exit {p.returncode}, {secs:.0f} s)\n{p.stdout}{p.stderr}"
    path = os.path.join(out, "report.json")
    if not os.path.isfile(path):
        return None, log, secs
    with open(path) as fh:
        report = json.load(fh)
    if reports:
        shutil.copyfile(path, os.path.join(reports, f"{ds}_{m}_{prec}.json"))
    return report, log, secs


def fmt_int(v):
    return "-" if v is None else f"{v:,}"


def fmt_acc(v):
    return "-" if v is None else f"{100.0 * v:.1f}%"


def pair(c, r, f):
    a, b = f(c), f(r)
    return a if a == b else f"{a} / {b}"


def baseline_params(ds):
    """Stored parameters of the data set's dense LSTM(32) example, if there is one."""
    p = os.path.join(HERE, ds, "dense", "metrics.json")
    if not os.path.isfile(p):
        return None
    with open(p) as fh:
        return json.load(fh).get("params_stored")


def host_accuracy(metrics):
    """metrics.json rounds to 4 digits; snap back to a count of correct sequences so
    the same count prints the same as the QEMU accuracy."""
    acc, n = metrics.get("accuracy"), metrics.get("test_sequences")
    return acc if acc is None or not n else round(acc * n) / n


def row(ds, m, prec, report):
    with open(os.path.join(HERE, ds, m, "metrics.json")) as fh:
        metrics = json.load(fh)
    by_lang = {}
    problems = []
    if report is not None:
        for r in (report.get("measured") or {}).get("results", []):
            if r.get("variant") == "model":
                by_lang[r.get("lang")] = r
        for lang in ("c", "rust"):
            r = by_lang.get(lang)
            if r is None:
                problems.append(f"{lang}: no result")
            elif not r["comparison"].get("pass"):
                what = "the integer reference" if prec != "f32" else "the reference"
                problems.append(f"{lang}: outputs off {what} ({r['comparison']})")
    else:
        problems.append("kpgen test wrote no report")

    def acc(lang):
        r = by_lang.get(lang)
        return None if r is None else r["comparison"].get("accuracy")

    def cost(lang, k):
        r = by_lang.get(lang)
        return None if r is None or not r.get("cost") else r["cost"].get(k)

    totals = (report or {}).get("totals", {})
    stored = totals.get("params_stored", metrics.get("params_stored"))
    comp = totals.get("compression", metrics.get("compression"))
    base = baseline_params(ds)
    if base and stored:
        # Against the data set's dense LSTM(32): equals kpgen's totals.compression
        # for every method but `small`, whose own dense equivalent is itself.
        comp = base / stored
    return {
        "dataset": ds, "method": m, "precision": prec, "problems": problems,
        "cells": [
            ds, m, prec, fmt_int(stored), "-" if comp is None else f"{comp:.2f}×",
            fmt_acc(host_accuracy(metrics)),
            pair("c", "rust", lambda lang: fmt_acc(acc(lang))),
            pair("c", "rust", lambda lang: fmt_int(cost(lang, "flash_bytes"))),
            pair("c", "rust", lambda lang: fmt_int(cost(lang, "ram_bytes"))),
            pair("c", "rust", lambda lang: fmt_int(cost(lang, "stack_bytes"))),
            pair("c", "rust", lambda lang: fmt_int(cost(lang, "instructions_per_inference"))),
        ],
        # Unformatted values for the plot and the findings.
        "params_stored": stored, "host_accuracy": host_accuracy(metrics),
        "weight_params": metrics.get("weight_params_stored"),
        "instructions": cost("c", "instructions_per_inference"), "flash": cost("c", "flash_bytes"),
        "test_sequences": metrics.get("test_sequences"),
        # Older exports of a data set without test_cap (BasicMotions) lack the full-split
        # fields: their test set is the whole split.
        "full_split": (metrics.get("test_sequences_full_split", metrics.get("test_sequences")),
                       metrics.get("accuracy_full_split", metrics.get("accuracy"))),
    }


HEADER = ["data set", "method", "precision", "stored params", "compression", "host accuracy",
          "QEMU M4 accuracy (C / Rust)", "flash bytes (C / Rust)", "RAM bytes (C / Rust)",
          "stack bytes (C / Rust)",
          "instructions / inference (C / Rust)"]


def markdown_table(rows):
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(" --- " for _ in HEADER) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(r["cells"]) + " |")
    return "\n".join(lines)


def plain_table(rows):
    cells = [HEADER] + [r["cells"] for r in rows]
    w = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    return "\n".join("  ".join(c[i].ljust(w[i]) for i in range(len(HEADER))).rstrip() for c in cells)


def dataset_lines(rows):
    text = {
        "basic_motions": "BasicMotions (aeon): 6 features × 100 steps, 4 classes; all 40 test sequences.",
        "japanese_vowels": "JapaneseVowels (aeon): 12 features, 7–29 steps (each sequence runs for its "
                           "own length), 9 speakers; 120 evenly spaced sequences of the 370-sequence "
                           "test split are committed.",
        "digits": "scikit-learn digits as 8 steps (image rows) × 8 features, 10 classes; 360 evenly "
                  "spaced images of the 539-image test split (the last 30% of the data) are committed.",
    }
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        line = f"- {text.get(ds, ds)}"
        # Rows are per precision, but the full-split accuracy is the float model's: once a method.
        full = {r["method"]: r["full_split"] for r in rows if r["dataset"] == ds
                and r["full_split"][0] and r["full_split"][0] != r["test_sequences"]
                and r["full_split"][1] is not None}
        if full:
            n = next(iter(full.values()))[0]
            line += (f" Host accuracy on the whole {n}-sequence test split: "
                     + ", ".join(f"{m} {fmt_acc(round(a * n) / n)}" for m, (_, a) in full.items())
                     + ".")
        out.append(line)
    return out


def seed_table(rows, seeds):
    """Markdown lines of the seed study: every example of `rows` with an entry in `seeds`."""
    keys = [k for k in dict.fromkeys((r["dataset"], r["method"]) for r in rows) if "/".join(k) in seeds]
    if not keys:
        return []
    head = ["data set", "method", "stored params", "accuracy, mean ± std", "min – max", "seeds",
            "committed example (seed 0)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for ds, m in keys:
        e = seeds[f"{ds}/{m}"]
        stats = seed_stats(e)
        if not stats:
            continue
        mean, std, lo, hi, n = stats
        committed = next((r["full_split"][1] for r in rows if (r["dataset"], r["method"]) == (ds, m)), None)
        lines.append(f"| {ds} | {m} | {fmt_int(e.get('params_stored'))} | {100 * mean:.1f} ± {100 * std:.1f}% "
                     f"| {fmt_acc(lo)} – {fmt_acc(hi)} | {n} | {fmt_acc(committed)} |")
    return lines


def _accuracy(rows, seeds, ds, m):
    """(mean, standard error, n) of an example's accuracy: over the seed study's seeds, else the
    committed example's whole-split accuracy (n = 1, no error). None if there is neither."""
    stats = seed_stats(seeds.get(f"{ds}/{m}", {}))
    if stats:
        return stats[0], stats[1] / math.sqrt(stats[4]), stats[4]
    r = next((r for r in rows if (r["dataset"], r["method"]) == (ds, m)), None)
    return (r["full_split"][1], 0.0, 1) if r and r["full_split"][1] is not None else None


def _params(rows, ds, m):
    return next((r["params_stored"] for r in rows if (r["dataset"], r["method"]) == (ds, m)), None)


def _cost(rows, ds, m, prec, key):
    return next((r[key] for r in rows if (r["dataset"], r["method"], r["precision"]) == (ds, m, prec)), None)


def findings(rows, seeds):
    """What the numbers say about hybrid KP and three factors, per data set, computed from the
    rows and the seed study so the text stays true when the results change."""
    out = []

    def pct(a):
        return f"{100 * a[0]:.1f}%"

    def clear(a, b):
        """Whether mean b exceeds mean a by more than two standard errors of the difference."""
        return b[0] - a[0] > 2 * math.sqrt(a[1] ** 2 + b[1] ** 2) and (a[2] > 1 or b[2] > 1)

    for ds in dict.fromkeys(r["dataset"] for r in rows):
        methods = list(dict.fromkeys(r["method"] for r in rows if r["dataset"] == ds))
        kp, dense = _accuracy(rows, seeds, ds, "kp"), _accuracy(rows, seeds, ds, "dense")
        hkps = sorted((method_family(m)[1], m) for m in methods if method_family(m)[0] == "hkp")
        if kp and dense and hkps:
            parts = [f"KP {pct(kp)} with {fmt_int(_params(rows, ds, 'kp'))} parameters, "
                     f"dense {pct(dense)} with {fmt_int(_params(rows, ds, 'dense'))}"]
            best = None
            for r_, m in hkps:
                a = _accuracy(rows, seeds, ds, m)
                if a:
                    parts.append(f"HKP r={r_} {pct(a)} with {fmt_int(_params(rows, ds, m))}")
                    if best is None or a[0] > best[1][0]:
                        best = (m, a, r_)
            text = f"- **{ds}, hybrid KP**: " + "; ".join(parts) + ". "
            gap = dense[0] - kp[0]
            if best is None:
                pass
            elif not clear(kp, dense):
                text += ("KP is already within noise of dense here, so there is no gap for HKP to "
                         "close.")
            elif clear(kp, best[1]):
                text += (f"HKP recovers accuracy: r={best[2]} closes {100 * (best[1][0] - kp[0]) / gap:.0f}% "
                         f"of the KP-to-dense gap with {fmt_int(_params(rows, ds, best[0]))} parameters "
                         f"({_params(rows, ds, 'dense') / _params(rows, ds, best[0]):.1f}× fewer than dense).")
            else:
                text += (f"HKP does not recover accuracy here: no r is more than two standard errors "
                         f"above KP (the best, r={best[2]}, is {100 * (best[1][0] - kp[0]):+.1f} points).")
            out.append(text)
        kp3 = _accuracy(rows, seeds, ds, "kp3")
        if kp and kp3:
            w2, w3 = (_cost(rows, ds, m, "f32", "weight_params") for m in ("kp", "kp3"))
            text = (f"- **{ds}, three factors**: kp3 {pct(kp3)} against KP's {pct(kp)}"
                    + (f", {fmt_int(w3)} weights against {fmt_int(w2)}" if w2 and w3 else ""))
            costs = []
            for prec in PRECISIONS:
                i2, i3 = (_cost(rows, ds, m, prec, "instructions") for m in ("kp", "kp3"))
                if i2 and i3:
                    costs.append(f"{i3 / i2:.2f}× in {prec}")
            if costs:
                text += "; instructions per inference (C, QEMU M4) " + ", ".join(costs)
            f2, f3 = (_cost(rows, ds, m, "int8", "flash") for m in ("kp", "kp3"))
            if f2 and f3:
                text += f"; int8 flash {fmt_int(f3)} B against {fmt_int(f2)} B"
            verdict = ("three factors lose accuracy" if clear(kp3, kp) else
                       "three factors gain accuracy" if clear(kp, kp3) else
                       "the accuracy difference is within two standard errors")
            out.append(text + f". {verdict[0].upper() + verdict[1:]}.")
    return out


def write_markdown(rows, path, kpgen_version, plot=None, seeds=None):
    """`plot`: path of the SVG written by write_svg, shown under the table (None: no plot);
    `seeds`: the seed study (load_seeds), for its table and the findings."""
    seeds = seeds or {}
    seed_count = max((len(e.get("seeds", [])) for e in seeds.values()), default=0)
    study = seed_table(rows, seeds)
    found = findings(rows, seeds)
    problems = [f"- {r['dataset']}/{r['method']} {r['precision']}: {p}"
                for r in rows for p in r["problems"]]
    md = [
        "# Results of the examples",
        "",
        "Generated by `python3 examples/results.py` (do not edit by hand). For every",
        "`examples/<data set>/<method>/` and precision, `kpgen test` generated C and Rust for",
        "the Cortex-M4 target and ran both on the whole committed test set in QEMU",
        "(`--precision P --inputs test_x.npy --lengths test_len.npy --labels test_y.npy",
        "--no-dense`). int8 and int16 builds are calibrated on the example's `calib_x.npy`",
        "(32 training sequences, never test ones) and their C and Rust outputs equal kpgen's",
        "integer reference bit for bit.",
        "",
        markdown_table(rows),
        "",
        *([f"![Accuracy against stored parameters]"
           f"({os.path.relpath(plot, os.path.dirname(os.path.abspath(path))).replace(os.sep, '/')})",
           ""] if plot else []),
        *(["## Hybrid KP and three factors", "", *found, ""] if found else []),
        *(["## Seed study", "",
           "One committed example is one training run (seed 0), and on test sets this small one run's",
           "accuracy moves by several points. `examples/train/seeds.py` trained every recipe again with",
           f"seeds 0 to {seed_count - 1} (initialization, shuffling, dropout; the data split is fixed)",
           "on one machine and recorded the float model's accuracy on the whole test split",
           "(`examples/seeds.json`). The plot and the findings above use these means; the std is the",
           "sample standard deviation over seeds. Training is deterministic on one machine, not always",
           "across machines: seed 0 here reproduces the committed example where the two were trained",
           "on the same machine (every hkp and kp3 example) and most others, but not all (the last",
           "column; BasicMotions KP: 90.0% here against 97.5% committed, from the same code and pins).",
           "", *study, ""] if study else []),
        "- **stored params**: kpgen's `totals.params_stored` (weights and biases; a sparse",
        "  matrix or overlay counts its non-zeros, not their indices); **compression**: the",
        "  data set's dense LSTM(32) parameter count over it (kpgen's `totals.compression`",
        "  for all but `small`, which kpgen compares with itself).",
        "- **host accuracy**: the float model on the host (numpy float64 over the exported",
        "  float32 files, `metrics.json`); **QEMU M4 accuracy**: the generated code in QEMU",
        "  at that precision, arg-max against the labels. One value means C and Rust agree.",
        "- **flash** of int8 / int16 includes the 1 KB activation tables each of sigmoid and",
        "  tanh; parameters are 1 / 2 bytes (biases int32).",
        "- **flash / RAM / stack / instructions**: `cost` as measured by `kpgen test` on the",
        "  test firmware in QEMU; instructions per inference are per sequence.",
        "",
        "Data sets (all loaded offline from installed packages; see `examples/train/`):",
        "",
        *dataset_lines(rows),
        "",
        "Methods (recipes in `examples/train/recipes/<data set>_<method>.yaml`); every model",
        "is one LSTM layer and a dense head, the head is dense in all of them:",
        "",
        *[f"- `{m}`: {method_text(m)}" for m in sorted({r["method"] for r in rows}, key=method_order)
          if method_text(m)],
        "",
    ]
    if kpgen_version:
        md += [f"kpgen: {kpgen_version}", ""]
    if problems:
        md += ["Problems in this run:", "", *problems, ""]
    with open(path, "w") as fh:
        fh.write("\n".join(md))


# Plot of accuracy against stored parameters: hand-written SVG (standard library only), every
# number printed with one decimal so that the same rows give the same file byte for byte.

# Legend label, colour (matplotlib's tab10) and marker shape of each method family.
PLOT_STYLE = {
    "dense": ("dense", "#222222", "square"),
    "small": ("small", "#8c564b", "triangle_down"),
    "kp": ("kp", "#1f77b4", "circle"),
    "hkp": ("hkp (r = dense rows)", "#ff7f0e", "diamond"),
    "dhkp": ("dhkp (r = dense rows)", "#d62728", "star"),
    "kp3": ("kp3", "#17becf", "pentagon"),
    "kp4": ("kp4", "#bcbd22", "hexagon"),
    "dkp": ("dkp", "#2ca02c", "triangle_up"),
    "pruned": ("pruned", "#9467bd", "cross"),
    "lowrank": ("lowrank", "#e377c2", "plus"),
}
# Unknown methods are grey, each with a shape of its own (cycled) so the legend tells them apart.
UNKNOWN_COLOUR = "#7f7f7f"
UNKNOWN_SHAPES = ["circle_open", "square_open", "triangle_left", "triangle_right", "diamond_open"]
LINE_SHAPES = ("cross", "plus")  # stroke only: drawn last, over any filled marker at the same spot


def _polygon(n, radius, start_deg):
    return [(round(radius * math.cos(math.radians(start_deg + 360.0 * i / n)), 3),
             round(radius * math.sin(math.radians(start_deg + 360.0 * i / n)), 3)) for i in range(n)]


# Marker outlines as offsets from the centre, in px (SVG y grows downwards).
MARKER_OUTLINE = {
    "square": [(-4.0, -4.0), (4.0, -4.0), (4.0, 4.0), (-4.0, 4.0)],
    "diamond": _polygon(4, 5.5, -90),
    "triangle_up": _polygon(3, 5.5, -90),
    "triangle_down": _polygon(3, 5.5, 90),
    "triangle_left": _polygon(3, 5.5, 180),
    "triangle_right": _polygon(3, 5.5, 0),
    "pentagon": _polygon(5, 5.0, -90),
    "hexagon": _polygon(6, 5.0, 0),
    # Five-pointed star: outer and inner corners alternate.
    "star": [pt for o, i in zip(_polygon(5, 6.0, -90), _polygon(5, 2.6, -54)) for pt in (o, i)],
}


def svg_marker(shape, x, y, colour):
    """One marker centred at (x, y), about 10 px across."""
    open_ = shape.endswith("_open")
    base = shape[:-len("_open")] if open_ else shape
    # A white rim keeps filled markers apart where points overlap.
    paint = (f'fill="#ffffff" stroke="{colour}" stroke-width="1.5"' if open_
             else f'fill="{colour}" stroke="#ffffff" stroke-width="0.8"')
    if base == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" {paint}/>'
    if base in LINE_SHAPES:
        d = 4.0
        seg = ([(-d, -d, d, d), (-d, d, d, -d)] if base == "cross" else [(-d, 0, d, 0), (0, -d, 0, d)])
        path = " ".join(f"M{x + a:.1f} {y + b:.1f}L{x + c:.1f} {y + e:.1f}" for a, b, c, e in seg)
        return f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
    pts = " ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in MARKER_OUTLINE[base])
    return f'<polygon points="{pts}" {paint}/>'


SEEDS_FILE = os.path.join(HERE, "seeds.json")


def load_seeds(path):
    """The seed study (examples/train/seeds.py): {"<data set>/<method>": entry}, {} without one."""
    if not path or not os.path.isfile(path):
        return {}
    with open(path) as fh:
        return json.load(fh).get("examples", {})


def seed_stats(entry):
    """(mean, sample std, min, max, n) of a seed-study entry's whole-test-split accuracies."""
    a = entry.get("accuracy_full_split") or []
    if not a:
        return None
    n = len(a)
    mean = sum(a) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in a) / (n - 1)) if n > 1 else 0.0
    return mean, std, min(a), max(a), n


def plot_points(rows, seeds=None):
    """One point per (data set, method), in table order: stored params and host (float)
    accuracy in percent, from the f32 row if there is one, else from the first precision's.
    With a seed-study entry for the example, the accuracy is the mean over its seeds (whole
    test split) and `err` one standard deviation. Rows without either value are left out."""
    chosen = {}
    for r in rows:
        key = (r["dataset"], r["method"])
        if key not in chosen or (r["precision"] == "f32" and chosen[key]["precision"] != "f32"):
            chosen[key] = r
    points = []
    for (ds, m), r in chosen.items():
        if r.get("params_stored") and r.get("host_accuracy") is not None:
            fam, rank = method_family(m)
            point = {"dataset": ds, "method": m, "family": fam, "r": rank,
                     "params": r["params_stored"], "accuracy": 100.0 * r["host_accuracy"]}
            stats = seed_stats((seeds or {}).get(f"{ds}/{m}", {}))
            if stats:
                point.update(accuracy=100.0 * stats[0], err=100.0 * stats[1], seeds=stats[4])
            points.append(point)
    return sorted(points, key=lambda p: (dataset_order(p["dataset"]), method_order(p["method"])))


def _log_ticks(lo, hi, mantissas):
    return [m * 10 ** k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
            for m in mantissas if lo <= m * 10 ** k <= hi]


def _place_label(x, y, w, taken, bounds, prefer_above):
    """Baseline position of a 9 px label of width w beside the marker at (x, y): the first of a
    few candidate spots that overlaps nothing in `taken` (boxes of markers and earlier labels)
    and stays inside `bounds`, else the least overlapping one. Adds the chosen box to `taken`."""
    below = [(5, 13), (-5 - w, 13), (8, 3), (-w / 2, 15), (5, 23), (-w / 2, 25), (5, 33), (-w / 2, 35)]
    above = [(5, -7), (-5 - w, -7), (-8 - w, 3), (-w / 2, -9), (-5 - w, -17), (-w / 2, -19),
             (5, -27), (-w / 2, -29)]
    # hkp labels keep below right of their line (it rises to the right), dhkp ones above.
    spots = (above[1:2] + above[:1] + above[2:] + below) if prefer_above else below + above

    def overlap(a, b, gap=1.5):  # labels that merely touch still read as one
        return (max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + gap)
                * max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + gap))

    best = None
    for dx, dy in spots:
        box = (x + dx, y + dy - 7, x + dx + w, y + dy + 2)
        outside = (box[0] < bounds[0] or box[1] < bounds[1] or box[2] > bounds[2] or box[3] > bounds[3])
        score = sum(overlap(box, t) for t in taken) + (1e6 if outside else 0)
        if best is None or score < best[0]:
            best = (score, box)
        if score == 0:
            break
    taken.append(best[1])
    return best[1][0], best[1][1] + 7


def write_svg(points, path):
    """Writes the plot of `points` (from plot_points) to `path`: one panel per data set, side
    by side, with shared log-x and percent-y axes and one legend for the figure."""
    width, left, right, gap = 960, 62, 14, 48       # px; gap leaves room for y tick labels
    top, height_plot = 30, 250
    datasets = list(dict.fromkeys(p["dataset"] for p in points))
    counts = sorted({p["seeds"] for p in points if p.get("seeds")})
    y_label = ("test accuracy, float model" if not counts else
               f"mean test accuracy of {'/'.join(map(str, counts))} seeds, ±1 std")
    pw = (width - left - right - gap * (len(datasets) - 1)) / len(datasets)

    # x: log10 of stored params, padded so no marker sits on the frame; at least two major ticks.
    lo, hi = math.log10(min(p["params"] for p in points)), math.log10(max(p["params"] for p in points))
    pad = max(0.06 * (hi - lo), 0.05)
    while True:
        x0, x1 = lo - pad, hi + pad
        per_decade = pw / (x1 - x0)
        # 1-2-5 ticks when a decade is wide enough for their labels, fewer when it is not.
        mant = (1, 2, 5) if per_decade >= 110 else (1, 3) if per_decade >= 70 else (1,)
        ticks = _log_ticks(10 ** x0, 10 ** x1, mant)
        if len(ticks) >= 2:
            break
        pad += 0.1
    minor = _log_ticks(10 ** x0, 10 ** x1, range(1, 10))

    # y: percent, outward to multiples of 10 (at least 2 points of room below the lowest).
    lows = [p["accuracy"] - p.get("err", 0.0) for p in points]
    highs = [p["accuracy"] + p.get("err", 0.0) for p in points]
    y0 = max(0, math.floor(round(min(lows) - 2, 6) / 10) * 10)
    y1 = min(100, math.ceil(round(max(highs), 6) / 10) * 10)
    if y1 - y0 < 20:
        y0, y1 = max(0, y1 - 20), max(y1, 20)
    ystep = 10 if y1 - y0 <= 60 else 20

    def sx(i, v):
        return left + i * (pw + gap) + (math.log10(v) - x0) / (x1 - x0) * pw

    def sy(a):
        return top + (y1 - a) / (y1 - y0) * height_plot

    unknown = sorted({p["method"] for p in points if p["family"] is None})

    def style(p):
        if p["family"] is not None:
            return PLOT_STYLE[p["family"]]
        return p["method"], UNKNOWN_COLOUR, UNKNOWN_SHAPES[unknown.index(p["method"]) % len(UNKNOWN_SHAPES)]

    # Legend: one entry per family present, then each unknown method.
    fams = sorted({p["family"] for p in points if p["family"] is not None}, key=METHODS.index)
    entries = [(*PLOT_STYLE[f], f == "hkp") for f in fams]
    entries += [(*style({"family": None, "method": m}), False) for m in unknown]
    # Lay the entries out in centred rows; text width estimated at 6 px a character (11 px font).
    rows_, cur, cur_w = [], [], 0.0
    for e in entries:
        w = 28 + 6.0 * len(e[0]) + 16
        if cur and cur_w + w > width - 40:
            rows_.append((cur, cur_w))
            cur, cur_w = [], 0.0
        cur.append((e, w))
        cur_w += w
    if cur:
        rows_.append((cur, cur_w))
    legend_y = top + height_plot + 56
    height = int(legend_y + 18 * (len(rows_) - 1) + 14)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" fill="#333333">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    bottom = top + height_plot
    for i, ds in enumerate(datasets):
        px = left + i * (pw + gap)
        out.append(f'<g><text x="{px + pw / 2:.1f}" y="{top - 10:.1f}" text-anchor="middle" '
                   f'font-size="13" font-weight="bold">{escape(ds)}</text>')
        for t in minor:
            out.append(f'<line x1="{sx(i, t):.1f}" y1="{top:.1f}" x2="{sx(i, t):.1f}" y2="{bottom:.1f}" '
                       f'stroke="#eeeeee"/>')
        for t in ticks:
            x = sx(i, t)
            out.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom + 4:.1f}" '
                       f'stroke="#cccccc"/>')
            out.append(f'<text x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle">{t:,}</text>')
        for a in range(y0, y1 + 1, ystep):
            y = sy(a)
            out.append(f'<line x1="{px - 4:.1f}" y1="{y:.1f}" x2="{px + pw:.1f}" y2="{y:.1f}" '
                       f'stroke="#cccccc"/>')
            out.append(f'<text x="{px - 7:.1f}" y="{y + 4:.1f}" text-anchor="end">{a}%</text>')
        out.append(f'<rect x="{px:.1f}" y="{top:.1f}" width="{pw:.1f}" height="{height_plot:.1f}" '
                   f'fill="none" stroke="#888888"/>')

        mine = [p for p in points if p["dataset"] == ds]
        # The HKP knob runs from plain KP (no dense rows) to dense (all rows): join kp, the
        # hkp<R> points by stored params, then dense.
        hkp = sorted((p for p in mine if p["family"] == "hkp"), key=lambda p: (p["params"], p["r"]))
        if hkp:
            chain = ([p for p in mine if p["method"] == "kp"] + hkp
                     + [p for p in mine if p["method"] == "dense"])
            line = " ".join(f"{sx(i, p['params']):.1f},{sy(p['accuracy']):.1f}" for p in chain)
            out.append(f'<polyline points="{line}" fill="none" stroke="{PLOT_STYLE["hkp"][1]}" '
                       f'stroke-width="1.5" stroke-opacity="0.7"/>')
        for p in mine:  # error bars first, under every marker
            if p.get("err"):
                x, lo_, hi_ = sx(i, p["params"]), sy(max(y0, p["accuracy"] - p["err"])), \
                    sy(min(y1, p["accuracy"] + p["err"]))
                out.append(f'<path d="M{x:.1f} {lo_:.1f}L{x:.1f} {hi_:.1f}M{x - 3:.1f} {lo_:.1f}'
                           f'L{x + 3:.1f} {lo_:.1f}M{x - 3:.1f} {hi_:.1f}L{x + 3:.1f} {hi_:.1f}" '
                           f'fill="none" stroke="{style(p)[1]}" stroke-width="1" stroke-opacity="0.6"/>')
        for p in sorted(mine, key=lambda p: style(p)[2] in LINE_SHAPES):
            _, colour, shape = style(p)
            out.append(svg_marker(shape, sx(i, p["params"]), sy(p["accuracy"]), colour))
        # "r=R" beside each hkp / dhkp point, clear of the panel's markers and other labels.
        taken = [(sx(i, p["params"]) - 6, sy(p["accuracy"]) - 6, sx(i, p["params"]) + 6,
                  sy(p["accuracy"]) + 6) for p in mine]
        for p in mine:
            if p["r"] is not None:
                text = f"r={p['r']}"
                tx, ty = _place_label(sx(i, p["params"]), sy(p["accuracy"]), 5.6 * len(text), taken,
                                      (px + 1, top + 1, px + pw - 1, bottom - 1), p["family"] == "dhkp")
                out.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="9" '
                           f'fill="{style(p)[1]}">{text}</text>')
        out.append('</g>')

    out.append(f'<text x="{left + (width - left - right) / 2:.1f}" y="{bottom + 34:.1f}" '
               f'text-anchor="middle" font-size="12">stored parameters (log scale)</text>')
    out.append(f'<text transform="translate(18 {top + height_plot / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle" font-size="12">{escape(y_label)}</text>')
    for k, (row_entries, row_w) in enumerate(rows_):
        x, y = (width - row_w) / 2, legend_y + 18 * k
        for (label, colour, shape, joined), w in row_entries:
            if joined:
                out.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 22:.1f}" y2="{y:.1f}" '
                           f'stroke="{colour}" stroke-width="1.5" stroke-opacity="0.7"/>')
            out.append(svg_marker(shape, x + 11, y, colour))
            out.append(f'<text x="{x + 28:.1f}" y="{y + 4:.1f}">{escape(label)}</text>')
            x += w
    out.append('</svg>')
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out) + "\n")


# Generated blocks of the documentation: (file, begin marker, end marker, which rows).
RESULTS_BEGIN = "<!-- results:begin (generated by examples/results.py) -->"
RESULTS_END = "<!-- results:end -->"
HEADLINE_BEGIN = "<!-- headline:begin (generated by examples/results.py) -->"
HEADLINE_END = "<!-- headline:end -->"
# The README's headline table: the bundled example's data set, every method.
HEADLINE_DATASET = "basic_motions"


def summary_table(rows):
    """One line per example: compression, accuracy per precision, flash and instructions (C)."""
    col = {h: i for i, h in enumerate(HEADER)}
    by = {}
    for r in rows:
        by.setdefault((r["dataset"], r["method"]), {})[r["precision"]] = r["cells"]

    def c_only(v):
        return v.split(" / ")[0]

    head = ["data set", "method", "compression", "host accuracy",
            "QEMU accuracy f32 / int8 / int16", "flash B (C) f32 / int8",
            "instructions / inference (C) f32 / int8"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for (ds, m), per in by.items():
        first = next(iter(per.values()))

        def get(prec, name, fn=lambda v: v):
            cells = per.get(prec)
            return fn(cells[col[name]]) if cells else "-"

        acc = " / ".join(get(p, "QEMU M4 accuracy (C / Rust)") for p in PRECISIONS)
        flash = " / ".join(get(p, "flash bytes (C / Rust)", c_only) for p in ("f32", "int8"))
        instr = " / ".join(get(p, "instructions / inference (C / Rust)", c_only) for p in ("f32", "int8"))
        lines.append("| " + " | ".join([ds, m, first[col["compression"]], first[col["host accuracy"]],
                                        acc, flash, instr]) + " |")
    return "\n".join(lines)


def update_block(path, begin, end, table):
    """Replaces what lies between the markers begin and end in path with table, if both exist."""
    with open(path) as fh:
        text = fh.read()
    if begin not in text or end not in text:
        return False
    before, rest = text.split(begin, 1)
    _, after = rest.split(end, 1)
    with open(path, "w") as fh:
        fh.write(before + begin + "\n" + table + "\n" + end + after)
    return True


def update_docs(rows):
    """The summary table in docs/results.md and the headline table in README.md."""
    done = []
    if update_block(os.path.join(ROOT, "docs", "results.md"), RESULTS_BEGIN, RESULTS_END,
                    summary_table(rows)):
        done.append("docs/results.md")
    headline = [r for r in rows if r["dataset"] == HEADLINE_DATASET]
    if headline and update_block(os.path.join(ROOT, "README.md"), HEADLINE_BEGIN, HEADLINE_END,
                                 summary_table(headline)):
        done.append("README.md")
    return done


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", "-j", type=int, default=1, help="examples tested in parallel (default 1)")
    ap.add_argument("--only", action="append", help="data set, method or dataset/method (repeatable)")
    ap.add_argument("--precision", action="append", choices=PRECISIONS,
                    help="precisions to run (repeatable; default all three)")
    ap.add_argument("--reports", help="keep each report.json here as <dataset>_<method>_<precision>.json")
    ap.add_argument("--no-run", action="store_true", help="rebuild the table from --reports without kpgen")
    ap.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"), help="markdown file to write")
    plot = ap.add_mutually_exclusive_group()
    plot.add_argument("--plot", metavar="PATH",
                      help="SVG plot of accuracy against stored parameters (default: results.svg "
                           "next to --output)")
    plot.add_argument("--no-plot", action="store_true", help="write no plot")
    ap.add_argument("--seeds", default=SEEDS_FILE, metavar="JSON",
                    help="seed study of examples/train/seeds.py for the means, the plot and the findings "
                         "(default examples/seeds.json; ignored if absent)")
    args = ap.parse_args(argv)

    precisions = args.precision or PRECISIONS
    todo = [(ds, m, p) for ds, m in examples(args.only) for p in PRECISIONS if p in precisions]
    if not todo:
        raise SystemExit("results.py: no examples found")
    if args.no_run and not args.reports:
        raise SystemExit("results.py: --no-run needs --reports DIR")
    if args.reports:
        os.makedirs(args.reports, exist_ok=True)

    reports, version = {}, None
    if args.no_run:
        for ds, m, prec in todo:
            p = os.path.join(args.reports, f"{ds}_{m}_{prec}.json")
            reports[(ds, m, prec)] = json.load(open(p)) if os.path.isfile(p) else None
        vp = os.path.join(args.reports, "kpgen_version.txt")
        version = open(vp).read().strip() if os.path.isfile(vp) else None
    else:
        exe = kpgen_binary()
        v = subprocess.run([exe, "--version"], capture_output=True, text=True)
        version = v.stdout.strip() or None
        if args.reports and version:
            with open(os.path.join(args.reports, "kpgen_version.txt"), "w") as fh:
                fh.write(version + "\n")
        with tempfile.TemporaryDirectory(prefix="kpgen-results-") as work:
            with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
                futs = {pool.submit(run_one, exe, *key, work, args.reports): key for key in todo}
                for fut in concurrent.futures.as_completed(futs):
                    ds, m, prec = futs[fut]
                    report, log, secs = fut.result()
                    reports[(ds, m, prec)] = report
                    print(f"{ds}/{m} {prec}: {'ok' if report else 'FAILED'} ({secs:.0f} s)",
                          file=sys.stderr)
                    if report is None:
                        print(log, file=sys.stderr)

    rows = [row(ds, m, prec, reports[(ds, m, prec)]) for ds, m, prec in todo]
    print(plain_table(rows))
    for r in rows:
        for p in r["problems"]:
            print(f"{r['dataset']}/{r['method']} {r['precision']}: {p}", file=sys.stderr)
    seeds = load_seeds(args.seeds)
    plot = None
    points = [] if args.no_plot else plot_points(rows, seeds)
    if points:
        plot = args.plot or os.path.join(os.path.dirname(os.path.abspath(args.output)), "results.svg")
        write_svg(points, plot)
        print(f"wrote {os.path.relpath(plot)}", file=sys.stderr)
    write_markdown(rows, args.output, version, plot, seeds)
    print(f"wrote {os.path.relpath(args.output)}", file=sys.stderr)
    if set(PRECISIONS) <= {r["precision"] for r in rows} and not args.only \
            and args.output == os.path.join(HERE, "RESULTS.md"):
        for path in update_docs(rows):
            print(f"updated the generated table of {path}", file=sys.stderr)
    return 0 if all(not r["problems"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
