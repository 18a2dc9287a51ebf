#!/usr/bin/env python3
"""Flash of every bundled example's own object under both plan objectives.

    python3 bench/footprint.py [--kpgen target/release/kpgen] [--jobs 2] [--markdown FILE]

For each model of examples/basic_motions/ and examples/japanese_vowels/, on the Cortex-M0, M4
and M55, in f32, int8 and int16, runs `kpgen build --optimize speed|size`, compiles the C with
the target's flags at -Os (-ffunction-sections -fdata-sections, as a size-minded user builds)
and sums `.text*`, `.rodata*` and `.data*` of the object (`arm-none-eabi-size -A`). Prints a
Markdown table with, per row, the bytes under speed -> size and the int8 size build against the
default f32 build; with --markdown FILE, replaces what lies between the lines
`<!-- footprint:begin ... -->` and `<!-- footprint:end -->` of FILE. Exit status 1 if a build
failed. Needs python3 (standard library only), arm-none-eabi-gcc and a built kpgen.
"""

import argparse
import concurrent.futures
import glob
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = {
    "cortex-m0": ["-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft"],
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "cortex-m55": ["-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"],
}
PRECISIONS = ["f32", "int8", "int16"]
OBJECTIVES = ["speed", "size"]
BEGIN = "<!-- footprint:begin"
END = "<!-- footprint:end -->"


def object_bytes(kpgen, spec, target, precision, objective):
    with tempfile.TemporaryDirectory(prefix="kpgen-footprint-") as d:
        out = os.path.join(d, "out")
        subprocess.run(
            [kpgen, "build", spec, "--target", target, "--precision", precision,
             "--optimize", objective, "--out", out],
            check=True, capture_output=True, text=True)
        (source,) = glob.glob(os.path.join(out, "c", "*.c"))
        obj = os.path.join(d, "model.o")
        subprocess.run(
            ["arm-none-eabi-gcc", *TARGETS[target], "-std=c99", "-Os", "-ffunction-sections",
             "-fdata-sections", "-c", source, "-o", obj],
            check=True, capture_output=True, text=True)
        sizes = subprocess.run(["arm-none-eabi-size", "-A", obj], check=True,
                               capture_output=True, text=True).stdout
    total = 0
    for line in sizes.splitlines():
        fields = line.split()
        if len(fields) >= 2 and re.match(r"^\.(text|rodata|data)", fields[0]):
            total += int(fields[1])
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kpgen", default=os.path.join(ROOT, "target", "release", "kpgen"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--markdown", metavar="FILE")
    args = ap.parse_args()
    specs = sorted(glob.glob(os.path.join(ROOT, "examples", "basic_motions", "*", "spec.yaml"))
                   + glob.glob(os.path.join(ROOT, "examples", "japanese_vowels", "*", "spec.yaml")))
    jobs = [(t, s, p, o) for t in TARGETS for s in specs for p in PRECISIONS for o in OBJECTIVES]
    results, failed = {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(object_bytes, args.kpgen, s, t, p, o): (t, s, p, o)
                   for (t, s, p, o) in jobs}
        for n, f in enumerate(concurrent.futures.as_completed(futures), 1):
            key = futures[f]
            try:
                results[key] = f.result()
            except subprocess.CalledProcessError as e:
                failed.append(f"{key}: {e.stderr.strip()}")
            if n % 60 == 0 or n == len(jobs):
                print(f"footprint: {n}/{len(jobs)} builds", file=sys.stderr)
    if failed:
        print("\n".join(failed), file=sys.stderr)
        return 1
    lines = [
        "| model | core | f32 B speed → size | int8 B speed → size | int16 B speed → size "
        "| int8 size ÷ f32 speed |",
        "|---|---|---|---|---|---|",
    ]
    for s in specs:
        name = os.path.relpath(os.path.dirname(s), os.path.join(ROOT, "examples"))
        for t in TARGETS:
            cells = []
            for p in PRECISIONS:
                a, b = results[(t, s, p, "speed")], results[(t, s, p, "size")]
                cells.append(f"{a:,} → {b:,}")
            ratio = results[(t, s, "int8", "size")] / results[(t, s, "f32", "speed")]
            lines.append(f"| {name} | {t.removeprefix('cortex-')} | {' | '.join(cells)} "
                         f"| {ratio:.2f} |")
    table = "\n".join(lines) + "\n"
    print(table, end="")
    if args.markdown:
        with open(args.markdown, encoding="utf-8") as f:
            old = f.read()
        begin = old.index(BEGIN)
        after = old.index("\n", begin) + 1
        end = old.index(END, after)
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(old[:after] + table + old[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
