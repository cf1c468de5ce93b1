#!/usr/bin/env python3
"""Checks the cost model's arithmetic term against the PTX it models.

For every select_histogram and select_mark kernel of a usmoe-extract-binary
output folder, finds the element loops (backward branches whose body has
no barrier: the tie scan synchronizes, the element loops do not; of those,
the one with the most instructions) and compares their instruction count
with the kernel table's `score_instructions` (the PTX instructions per
element that usmoe-gpu-cost-report charges a recomputing pass). Prints one
line per kernel and fails when a loop is off by more than `--tolerance`.

    check_score_instructions.py DIR [--tolerance 0.3]
"""

import argparse
import json
import os
import re
import sys

LABEL = re.compile(r"^(\$L__BB\d+_\d+):")
BRANCH = re.compile(r"\bbra(?:\.uni)?\s+(\$L__BB\d+_\d+);")


def kernels(ptx: str):
    """(name, body lines) of each .entry."""
    parts = re.split(r"^\.visible \.entry (\w+)\(", ptx, flags=re.M)
    for i in range(1, len(parts), 2):
        yield parts[i], parts[i + 1].splitlines()


def element_loop(lines):
    """Instructions in the largest loop body without a barrier, or None."""
    labels, best = {}, None
    for i, line in enumerate(lines):
        m = LABEL.match(line)
        if m:
            labels[m.group(1)] = i
        m = BRANCH.search(line)
        if m and labels.get(m.group(1), i) < i:
            body = lines[labels[m.group(1)]:i + 1]
            if any("bar.sync" in x or "barrier" in x for x in body):
                continue
            n = sum(1 for x in body
                    if x.strip().endswith(";") and not x.strip().startswith("//"))
            best = max(best or 0, n)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--tolerance", type=float, default=0.3)
    args = parser.parse_args()
    with open(os.path.join(args.dir, "usmoe_kernels.ptx")) as f:
        ptx = f.read()
    with open(os.path.join(args.dir, "usmoe_kernels.json")) as f:
        table = json.load(f)
    entries = table.get("kernels", table)
    failed, checked = False, 0
    for name, lines in kernels(ptx):
        if not name.endswith(("_select_histogram", "_select_mark")):
            continue
        model = entries[name].get("score_instructions")
        if model is None:
            continue
        counted = element_loop(lines)
        ok = counted is not None and abs(counted - model) <= args.tolerance * model
        print(f"{name}: loop {counted} instructions, model {model}: "
              f"{'ok' if ok else 'OFF'}")
        failed |= not ok
        checked += 1
    if checked == 0:
        print("no recomputing select kernel found")
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
