#!/usr/bin/env python3
"""Fits the code-size tables of the flash estimate ([code] of targets/*.toml) to measured objects.

    python3 bench/codesize_fit.py [--rows FILE] [--reuse] [--write]

Runs `cargo test --release --test flash_estimate` with KPGEN_CODESIZE_ROWS=FILE: the test
builds every bundled example (examples/*/*/spec.yaml) and every conformance model of
tests/common on every built-in core, in f32, int16 and int8, under both objectives (2,556
objects), compiles each model's C with the core's flags at -Os (-ffunction-sections
-fdata-sections, as bench/footprint.py and a size-minded user build), measures .text + .rodata +
.data (arm-none-eabi-size -A) and writes one JSON line per object: the construct counts and the
exact constant-data bytes of the estimate, and the measured bytes. (The test itself fails while
the tables are stale; its rows are written first.) With --reuse, an existing --rows FILE is
fitted as it is, without running the test. KPGEN_TARGETS=cortex-m4,... in the environment
measures and fits only those cores. The test's output goes to stderr, the tables to stdout.

Per core and precision, the bytes per construct are fitted by least squares on the relative
error of the whole object (code = measured - data), then reweighted a few rounds towards the
worst rows (an approximation of the smallest worst-case error), with each figure kept at or
above zero. Prints the [code] section of every target with the worst and mean error, and with
--write replaces the [code] section of each targets/NAME.toml. Needs python3 (standard library
only), cargo, arm-none-eabi-gcc.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The order of kpgen::target::Construct.
CONSTRUCTS = ["program", "op", "kernel", "lstm", "gru", "fastgrnn", "sigmoid", "tanh",
              "softmax", "relu", "unrolled_mac", "sum", "loop", "tile_block", "tile_mac",
              "tile_loop", "tile_tail", "csr"]
PRECISIONS = ["f32", "int16", "int8"]
ROUNDS = 40


def solve(a, b, weights, fixed_zero, ridge=1e-9):
    """Weighted least squares a x ~ b by the normal equations, with the columns of
    `fixed_zero` held at 0."""
    cols = [j for j in range(len(a[0])) if j not in fixed_zero]
    n = len(cols)
    m = [[0.0] * n for _ in range(n)]
    v = [0.0] * n
    for row, y, w in zip(a, b, weights):
        for p, i in enumerate(cols):
            if row[i] == 0:
                continue
            v[p] += w * row[i] * y
            for q, j in enumerate(cols):
                m[p][q] += w * row[i] * row[j]
    for p in range(n):
        m[p][p] += ridge * (1 + m[p][p])
    # Gauss-Jordan with partial pivoting.
    for c in range(n):
        piv = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[piv] = m[piv], m[c]
        v[c], v[piv] = v[piv], v[c]
        if abs(m[c][c]) < 1e-15:
            continue
        for r in range(n):
            if r != c and m[r][c] != 0:
                f = m[r][c] / m[c][c]
                for k in range(c, n):
                    m[r][k] -= f * m[c][k]
                v[r] -= f * v[c]
    x = [0.0] * len(a[0])
    for p, i in enumerate(cols):
        x[i] = v[p] / m[p][p] if abs(m[p][p]) > 1e-15 else 0.0
    return x


def fit(rows):
    """Bytes per construct for one core and precision, and the relative errors."""
    a = [[r["counts"].get(c, 0) / r["measured"] for c in CONSTRUCTS] for r in rows]
    b = [(r["measured"] - r["data_bytes"]) / r["measured"] for r in rows]
    weights = [1.0] * len(rows)
    best = None
    for _ in range(ROUNDS):
        zero = set()
        # Non-negative: drop a negative figure and refit, until none is left.
        while True:
            x = solve(a, b, weights, zero)
            neg = [j for j, v in enumerate(x) if v < 0 and j not in zero]
            if not neg:
                break
            zero.add(min(neg, key=lambda j: x[j]))
        x = [round(v, 1) for v in x]
        errors = [sum(xi * ai for xi, ai in zip(x, row)) - y for row, y in zip(a, b)]
        worst = max(abs(e) for e in errors)
        if best is None or worst < best[1]:
            best = (x, worst, errors)
        # Weight every row by its error: the worst rows count more in the next round.
        weights = [w * (1 + abs(e) / worst) for w, e in zip(weights, errors)]
        total = sum(weights)
        weights = [w * len(weights) / total for w in weights]
    return best


def run_test(rows_file):
    os.makedirs(os.path.dirname(rows_file), exist_ok=True)
    env = dict(os.environ, KPGEN_CODESIZE_ROWS=rows_file)
    subprocess.run(["cargo", "test", "--release", "-p", "kpgen", "--test", "flash_estimate"],
                   cwd=ROOT, env=env, check=False, stdout=sys.stderr)


def section(fits, target):
    lines = [
        "[code]",
        "# Bytes of code each construct of a model adds to its C object (arm-none-eabi-gcc -Os with the",
        "# flags above), [f32, int16, int8]: the code part of the flash estimate. Fitted by",
        "# `python3 bench/codesize_fit.py --write`, which rewrites this section; do not edit by hand.",
    ]
    notes = []
    for p in PRECISIONS:
        _, worst, errors, n = fits[(target, p)]
        mean = sum(abs(e) for e in errors) / len(errors)
        notes.append(f"{p} worst {100 * worst:.1f}% mean {100 * mean:.1f}%")
    lines.append(f'note = "fitted to {n} objects per precision at -Os: '
                 f'{", ".join(notes)}"')
    lines.append("[code.bytes]")
    for i, c in enumerate(CONSTRUCTS):
        vals = ", ".join(f"{fits[(target, p)][0][i]:.1f}" for p in PRECISIONS)
        lines.append(f"{c} = [{vals}]")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=os.path.join(ROOT, "target", "codesize_rows.jsonl"))
    ap.add_argument("--reuse", action="store_true",
                    help="fit the rows of --rows as they are, without running the test")
    ap.add_argument("--write", action="store_true",
                    help="replace the [code] section of every targets/NAME.toml")
    args = ap.parse_args()
    if not (args.reuse and os.path.exists(args.rows)):
        run_test(os.path.abspath(args.rows))
    with open(args.rows, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if not rows:
        print(f"no rows in {args.rows}", file=sys.stderr)
        return 1
    groups = collections.defaultdict(list)
    for r in rows:
        groups[(r["target"], r["precision"])].append(r)
    fits = {}
    for key, rs in sorted(groups.items()):
        x, worst, errors = fit(rs)
        fits[key] = (x, worst, errors, len(rs))
        order = sorted(range(len(rs)), key=lambda i: -abs(errors[i]))
        print(f"{key[0]} {key[1]}: worst {100 * worst:.1f}%, mean "
              f"{100 * sum(abs(e) for e in errors) / len(errors):.1f}%; worst rows: "
              + "; ".join(f"{rs[i]['model']} {rs[i]['optimize']} {100 * errors[i]:+.1f}%"
                          for i in order[:3]), file=sys.stderr)
    for target in sorted({t for t, _ in fits}):
        text = section(fits, target)
        print(f"# targets/{target}.toml\n{text}")
        if args.write:
            path = os.path.join(ROOT, "targets", f"{target}.toml")
            with open(path, encoding="utf-8") as f:
                old = f.read()
            start = old.index("\n[code]\n") + 1
            # [code] and [code.bytes] are the file's last sections.
            new = old[:start] + text
            if re.search(r"^\[(?!code)", old[start:], re.M):
                print(f"{path}: a section follows [code]; not rewritten", file=sys.stderr)
                return 1
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
