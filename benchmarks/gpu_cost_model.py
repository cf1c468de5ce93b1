#!/usr/bin/env python3
"""The GPU cost model's estimates for the routing shapes of the GPU
benchmark (docs/gpu-performance.md): usmoe.Router's own IR for each router,
lowered by convert-moe-to-gpu and evaluated by usmoe-gpu-cost-report for
B = 1 sequence of `tokens` tokens. Prints a Markdown table: launches,
estimated microseconds, the HBM floor and their ratio, the estimate without
its arithmetic term (the recomputing select passes' instructions); with --single-block
also the estimate of the select on one block per set (select-chunk = 2^31 - 1,
the design before the multi-block select) for comparison.

These are estimates of a roofline model without caches (see the pass's
description), not measurements: no GPU runs here.

    PYTHONPATH=build/python_packages python3 benchmarks/gpu_cost_model.py
"""

import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "build", "python_packages"))
import usmoe  # noqa: E402
from usmoe import cuda  # noqa: E402

TOKENS = [1, 64, 1024, 16384, 65536]
EXPERTS = [8, 64, 256]
ROUTERS = [("token k=2", dict(mode="token", k=2)), ("token k=8", dict(mode="token", k=8)),
           ("unified k=1.5", dict(mode="unified", k=1.5)),
           ("expert cf=1.25 k=2", dict(mode="expert", capacity_factor=1.25, k=2))]
# total: launches, MB read, MB written, GFLOP, G instr, est. us
TOTAL = re.compile(r"^total\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)$", re.M)
FLOOR = re.compile(r"HBM floor .*: ([\d.]+) MB = ([\d.e+-]+) us")


def report(ir: str, shape: str, opt: str, bandwidth: float, chunk=None, alu=True):
    convert = "-convert-moe-to-gpu" + (f"=select-chunk={chunk}" if chunk else "")
    # Without the arithmetic term: an instruction rate no kernel reaches.
    rate = "" if alu else " tera-instructions=1e9"
    out = subprocess.run([opt, "-", "-moe-fuse-routing", "-canonicalize", convert,
                          f"-usmoe-gpu-cost-report=shape={shape} bandwidth-gbs={bandwidth}{rate}",
                          "-o", os.devnull], input=ir, capture_output=True, text=True,
                         check=True).stdout
    launches, micros = TOTAL.search(out).groups()
    floor = float(FLOOR.search(out).group(2))
    return int(launches), float(micros), floor


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opt", default=os.path.join(ROOT, "build", "bin", "usmoe-opt"))
    parser.add_argument("--dtype", default="bf16", choices=["f32", "bf16"])
    parser.add_argument("--bandwidth-gbs", type=float, default=3350.0,
                        help="H100 SXM: 3350 (default), H200: 4800")
    parser.add_argument("--single-block", action="store_true",
                        help="also estimate the one-block-per-set select")
    args = parser.parse_args()
    print(f"GPU cost model, {args.dtype} logits, B = 1, HBM {args.bandwidth_gbs:.0f} GB/s, "
          "132 SMs, 2 us per launch (estimates, not measurements)\n")
    head = ("| router | E | tokens | launches | est. us | floor us | est. / floor "
            "| bytes only: est. us |")
    if args.single_block:
        head += " one block per set: est. us |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for label, options in ROUTERS:
        for e in EXPERTS:
            ir = usmoe.Router(device="cuda", **options)._ir(args.dtype, e)
            for t in TOKENS:
                m = cuda.selected_pairs(options["mode"], options, (1, t, e))
                shape = f"B=1,T={t},M={m}"
                launches, micros, floor = report(ir, shape, args.opt, args.bandwidth_gbs)
                _, bytes_only, _ = report(ir, shape, args.opt, args.bandwidth_gbs, alu=False)
                row = (f"| {label} | {e} | {t} | {launches} | {micros:.1f} | {floor:.3g} | "
                       f"{micros / floor:.3g} | {bytes_only:.1f} |")
                if args.single_block:
                    _, single, _ = report(ir, shape, args.opt, args.bandwidth_gbs,
                                          chunk=2**31 - 1)
                    row += f" {single:.1f} |"
                print(row)


if __name__ == "__main__":
    main()
