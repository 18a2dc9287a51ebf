#!/usr/bin/env python3
"""Instructions per time step of three held-out recurrent models, before and after a change.

    target/train-venv/bin/python bench/steps.py BEFORE_KPGEN AFTER_KPGEN [--jobs 2] [--out DIR]

Writes three seeded models (numpy) into DIR (default: a temporary folder): LSTM(32) with both
matrices KP and a dense head (BasicMotions-like), GRU(24) and FastGRNN(16) with KP input
matrices and doped-KP recurrent ones, each on 6 inputs over 50 steps. Then runs
`kpgen test SPEC --target T --precision P --count 4 --no-dense` with both binaries on the
M4, M7, M33 and M55 in f32, int8 and int16, and prints a Markdown table of C and Rust
instructions per step (exact QEMU guest instructions) with their ratio. Exit status 1 if a run
failed.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

TARGETS = ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
PRECISIONS = ["f32", "int8", "int16"]


def write_models(d):
    rng = np.random.default_rng(7)

    def save(name, a):
        np.save(os.path.join(d, name), np.asarray(a, dtype=np.float32))
        return name

    def rnd(*shape, scale=0.5):
        return rng.uniform(-scale, scale, size=shape)

    def doping(m, n, density=0.03):
        s = np.zeros((m, n))
        k = max(1, int(m * n * density))
        s.flat[rng.choice(m * n, k, replace=False)] = rnd(k, scale=0.3)
        return s

    def kron(prefix, a, b, s=None):
        text = f"{{kron: [{save(prefix + '_A.npy', a)}, {save(prefix + '_B.npy', b)}]"
        if s is not None:
            text += f", dope: {save(prefix + '_S.npy', s)}"
        return text + "}"

    models = {
        "lstm32": f"""name: lstm32
input: {{features: 6, steps: 50}}
layers:
  - kind: lstm
    units: 32
    w_ih: {kron('l_ih', rnd(8, 3), rnd(16, 2))}
    w_hh: {kron('l_hh', rnd(8, 4), rnd(16, 8))}
    b_ih: {save('l_b.npy', rnd(128))}
  - kind: dense
    units: 4
    w: {save('l_w.npy', rnd(4, 32))}
""",
        "gru24": f"""name: gru24
input: {{features: 6, steps: 50}}
layers:
  - kind: gru
    units: 24
    w_ih: {kron('g_ih', rnd(6, 3), rnd(12, 2))}
    w_hh: {kron('g_hh', rnd(6, 4), rnd(12, 6), doping(72, 24))}
    b_ih: {save('g_b.npy', rnd(72))}
  - kind: dense
    units: 4
    w: {save('g_w.npy', rnd(4, 24))}
    activation: softmax
""",
        "fastgrnn16": f"""name: fastgrnn16
input: {{features: 6, steps: 50}}
layers:
  - kind: fastgrnn
    units: 16
    w: {kron('f_w', rnd(4, 3), rnd(4, 2))}
    u: {kron('f_u', rnd(4, 4), rnd(4, 4), doping(16, 16))}
    b_z: {save('f_bz.npy', rnd(16))}
    b_h: {save('f_bh.npy', rnd(16))}
    zeta: 1.0
    nu: -4.0
  - kind: dense
    units: 4
    w: {save('f_wo.npy', rnd(4, 16))}
""",
    }
    for name, text in models.items():
        with open(os.path.join(d, name + ".yaml"), "w") as f:
            f.write(text)
    return list(models)


def steps(exe, spec, target, prec):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out")
        cmd = [exe, "test", spec, "--target", target, "--precision", prec, "--count", "4",
               "--no-dense", "--out", out]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            return None, f"{' '.join(cmd)}: exit {p.returncode}\n{p.stdout[-800:]}{p.stderr[-800:]}"
        with open(os.path.join(out, "report.json")) as f:
            r = json.load(f)
        return {x["lang"]: x["cost"]["instructions_per_step"] for x in r["measured"]["results"]
                if x["variant"] == "model"}, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", help="folder for the models (default: temporary)")
    args = ap.parse_args()
    d = args.out or tempfile.mkdtemp(prefix="kpgen-steps-")
    os.makedirs(d, exist_ok=True)
    names = write_models(d)
    cases = [(n, t, p) for n in names for t in TARGETS for p in PRECISIONS]

    def one(c):
        spec = os.path.join(d, c[0] + ".yaml")
        return c, steps(args.before, spec, c[1], c[2]), steps(args.after, spec, c[1], c[2])

    failed = False
    print("| model | core | precision | lang | before | after | after / before |")
    print("|---|---|---|---|---|---|---|")
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
        for (name, target, prec), (b, berr), (a, aerr) in ex.map(one, cases):
            for err in (berr, aerr):
                if err:
                    failed = True
                    print(err, file=sys.stderr)
            if not a or not b:
                continue
            for lang in ("c", "rust"):
                if lang in a and lang in b:
                    print(f"| {name} | {target} | {prec} | {lang} | {b[lang]:,} | {a[lang]:,} | "
                          f"{a[lang] / b[lang]:.2f}× |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
