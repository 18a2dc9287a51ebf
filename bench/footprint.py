#!/usr/bin/env python3
"""Flash and RAM of every bundled example's own object under both plan objectives.

    python3 bench/footprint.py [--kpgen target/release/kpgen] [--jobs 2] [--markdown FILE]
                               [--readme README.md]

For each model of examples/basic_motions/ and examples/japanese_vowels/, on the Cortex-M0, M4
and M55, in f32, int8 and int16, runs `kpgen build --optimize speed|size`, compiles the C with
the target's flags at -Os (-ffunction-sections -fdata-sections, as a size-minded user builds)
and sums `.text*`, `.rodata*` and `.data*` of the object (`arm-none-eabi-size -A`). Prints a
Markdown table with, per row, the bytes under speed -> size and the int8 size build against the
default f32 build; with --markdown FILE, replaces what lies between the lines
`<!-- footprint:begin ... -->` and `<!-- footprint:end -->` of FILE.

RAM is the model's state struct (`report.json` `totals.state_bytes`) plus its deepest stack: the
compiler's call graph with each function's frame (`-fcallgraph-info=su`), the longest path from
any of the model's public functions. A second table gives, per example, core and precision, the
smallest part that holds the model: the build of either objective with the smaller flash, its
flash and RAM, and the smallest power-of-two flash and RAM sizes that hold them (between the
`<!-- parts:begin ... -->` and `<!-- parts:end -->` lines of FILE; with --readme, the Cortex-M4
rows go between the same lines of that file). Exit status 1 if a build failed. Needs python3
(standard library only), arm-none-eabi-gcc and a built kpgen.
"""

import argparse
import concurrent.futures
import glob
import json
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


def stack_depth(ci_text):
    """The deepest stack of any public function in a `-fcallgraph-info=su` file: its own frame
    plus the deepest of its callees', recursively (the generated code does not recurse; a cycle
    is an error). Callees outside the object (memset, memcpy) count 0 bytes: the harness's and
    newlib's are leaf functions of a few words."""
    frame, calls = {}, {}
    for m in re.finditer(r'node: \{ title: "([^"]+)" label: "([^"]*)"', ci_text):
        b = re.search(r"\\n(\d+) bytes \((?:static|dynamic[^)]*)\)", m.group(2))
        frame[m.group(1)] = int(b.group(1)) if b else 0
        if "dynamic" in m.group(2):
            raise ValueError(f"{m.group(1)}: dynamic stack allocation")
    for m in re.finditer(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', ci_text):
        calls.setdefault(m.group(1), set()).add(m.group(2))
    depth, active = {}, set()

    def deepest(f):
        if f in depth:
            return depth[f]
        if f in active:
            raise ValueError(f"{f}: recursion in the call graph")
        active.add(f)
        depth[f] = frame.get(f, 0) + max((deepest(g) for g in calls.get(f, ())), default=0)
        active.discard(f)
        return depth[f]

    # Public functions: titles without a file prefix (static functions are "file.c:name").
    public = [f for f in frame if ":" not in f]
    return max(deepest(f) for f in public)


def object_bytes(kpgen, spec, target, precision, objective):
    """(flash bytes of the object, state bytes, deepest stack bytes)."""
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
             "-fdata-sections", "-fcallgraph-info=su", "-c", source, "-o", obj],
            check=True, capture_output=True, text=True, cwd=d)
        sizes = subprocess.run(["arm-none-eabi-size", "-A", obj], check=True,
                               capture_output=True, text=True).stdout
        with open(os.path.join(d, "model.ci"), encoding="utf-8") as f:
            stack = stack_depth(f.read())
        with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
            state = json.load(f)["totals"]["state_bytes"]
    total = 0
    for line in sizes.splitlines():
        fields = line.split()
        if len(fields) >= 2 and re.match(r"^\.(text|rodata|data)", fields[0]):
            total += int(fields[1])
    return total, state, stack


def part(nbytes, smallest):
    """The smallest power-of-two size of at least `smallest` bytes that holds `nbytes`, as text."""
    size = smallest
    while size < nbytes:
        size *= 2
    return f"{size // 1024} KB" if size < 1 << 20 else f"{size >> 20} MB"


def replace_block(path, tag, table):
    with open(path, encoding="utf-8") as f:
        old = f.read()
    begin = old.index(f"<!-- {tag}:begin")
    after = old.index("\n", begin) + 1
    end = old.index(f"<!-- {tag}:end -->", after)
    with open(path, "w", encoding="utf-8") as f:
        f.write(old[:after] + table + old[end:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kpgen", default=os.path.join(ROOT, "target", "release", "kpgen"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--markdown", metavar="FILE")
    ap.add_argument("--readme", metavar="FILE", help="also write the Cortex-M4 smallest-part rows here")
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
            except (OSError, ValueError, KeyError) as e:
                failed.append(f"{key}: {e}")
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
                a, b = results[(t, s, p, "speed")][0], results[(t, s, p, "size")][0]
                cells.append(f"{a:,} → {b:,}")
            ratio = results[(t, s, "int8", "size")][0] / results[(t, s, "f32", "speed")][0]
            lines.append(f"| {name} | {t.removeprefix('cortex-')} | {' | '.join(cells)} "
                         f"| {ratio:.2f} |")
    table = "\n".join(lines) + "\n"
    print(table, end="")

    def parts_table(cores):
        rows = ["| model | core | f32: flash + RAM → part | int16 | int8 |", "|---|---|---|---|---|"]
        for s in specs:
            name = os.path.relpath(os.path.dirname(s), os.path.join(ROOT, "examples"))
            for t in cores:
                cells = []
                for p in ("f32", "int16", "int8"):
                    flash, state, stack = min((results[(t, s, p, o)] for o in OBJECTIVES),
                                              key=lambda r: r[0])
                    ram = state + stack
                    cells.append(f"{flash:,} + {ram:,} B → {part(flash, 1024)} / {part(ram, 1024)}")
                rows.append(f"| {name} | {t.removeprefix('cortex-')} | {' | '.join(cells)} |")
        return "\n".join(rows) + "\n"

    parts = parts_table(TARGETS)
    print(parts, end="")
    if args.markdown:
        replace_block(args.markdown, "footprint", table)
        replace_block(args.markdown, "parts", parts)
    if args.readme:
        replace_block(args.readme, "parts", parts_table(["cortex-m4"]))
    return 0

if __name__ == "__main__":
    sys.exit(main())
