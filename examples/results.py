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
the table and writes examples/RESULTS.md. Needs only the Python standard library.

--reports DIR keeps each report.json as DIR/<dataset>_<method>.json; with
--no-run the table is rebuilt from those files without running kpgen.
Exit status: 0 if every example ran and every C / Rust comparison passed.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATASETS = ["basic_motions", "japanese_vowels", "digits"]  # table order; others follow sorted
METHODS = ["dense", "small", "kp", "dkp", "pruned", "lowrank"]
METHOD_TEXT = {
    "dense": "LSTM(32), every matrix dense (the uncompressed baseline)",
    "small": "a smaller dense LSTM (8 units; 9 on digits) at about the KP model's parameter count",
    "kp": "both LSTM matrices Kronecker products, W = kron(A, B) (`{kron: [A, B]}`)",
    "dkp": "W_ih KP, W_hh = kron(A, B) + S with 3% of S non-zero, 123 values "
           "(`{kron: [A, B], dope: S}`)",
    "pruned": "magnitude pruning of both LSTM matrices to the KP model's weight count (`{sparse: S}`)",
    "lowrank": "both LSTM matrices W = U·V at rank 1 (`{lowrank: [U, V]}`); the smallest rank "
               "is still 92–110 weights above the KP model",
}


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

    def order(e):
        ds, m = e
        return (DATASETS.index(ds) if ds in DATASETS else len(DATASETS), ds,
                METHODS.index(m) if m in METHODS else len(METHODS), m)

    return sorted(found, key=order)


def kpgen_binary():
    exe = os.environ.get("KPGEN") or os.path.join(ROOT, "target", "release", "kpgen")
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        raise SystemExit(f"results.py: no kpgen binary at {exe}: run `cargo build --release -p kpgen` "
                         "or set $KPGEN")
    return exe


PRECISIONS = ["f32", "int8", "int16"]


def run_one(exe, ds, m, prec, work, reports, target=None):
    """kpgen test on one example (on `target`, default the Cortex-M4); returns (report dict or
    None, log text, seconds)."""
    d = os.path.join(HERE, ds, m)
    out = os.path.join(work, f"{ds}_{m}_{prec}" + (f"_{target}" if target else ""))
    where = ["--target", target, "--timeout", "600"] if target else []
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
        "test_sequences": metrics.get("test_sequences"),
        "full_split": (metrics.get("test_sequences_full_split"), metrics.get("accuracy_full_split")),
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
        full = [(r["method"], r["full_split"]) for r in rows if r["dataset"] == ds
                and r["full_split"][0] and r["full_split"][0] != r["test_sequences"]
                and r["full_split"][1] is not None]
        if full:
            n = full[0][1][0]
            line += (f" Host accuracy on the whole {n}-sequence test split: "
                     + ", ".join(f"{m} {fmt_acc(round(a * n) / n)}" for m, (_, a) in full) + ".")
        out.append(line)
    return out


def write_markdown(rows, path, kpgen_version):
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
        *[f"- `{m}`: {t}" for m, t in METHOD_TEXT.items()],
        "",
    ]
    if kpgen_version:
        md += [f"kpgen: {kpgen_version}", ""]
    if problems:
        md += ["Problems in this run:", "", *problems, ""]
    with open(path, "w") as fh:
        fh.write("\n".join(md))


README_BEGIN = "<!-- results:begin (generated by examples/results.py) -->"
README_END = "<!-- results:end -->"


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


def update_readme(rows):
    """Replaces the generated block of README.md with the summary table, if the markers exist."""
    path = os.path.join(ROOT, "README.md")
    with open(path) as fh:
        text = fh.read()
    if README_BEGIN not in text or README_END not in text:
        return False
    before, rest = text.split(README_BEGIN, 1)
    _, after = rest.split(README_END, 1)
    with open(path, "w") as fh:
        fh.write(before + README_BEGIN + "\n" + summary_table(rows) + "\n" + README_END + after)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", "-j", type=int, default=1, help="examples tested in parallel (default 1)")
    ap.add_argument("--only", action="append", help="data set, method or dataset/method (repeatable)")
    ap.add_argument("--precision", action="append", choices=PRECISIONS,
                    help="precisions to run (repeatable; default all three)")
    ap.add_argument("--reports", help="keep each report.json here as <dataset>_<method>_<precision>.json")
    ap.add_argument("--no-run", action="store_true", help="rebuild the table from --reports without kpgen")
    ap.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"), help="markdown file to write")
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
    write_markdown(rows, args.output, version)
    print(f"wrote {os.path.relpath(args.output)}", file=sys.stderr)
    if set(PRECISIONS) <= {r["precision"] for r in rows} and not args.only \
            and args.output == os.path.join(HERE, "RESULTS.md") and update_readme(rows):
        print("updated the results block of README.md", file=sys.stderr)
    return 0 if all(not r["problems"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
