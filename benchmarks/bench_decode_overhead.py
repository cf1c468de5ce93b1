#!/usr/bin/env python3
"""The cost of one decode step's routing on the CPU (B*T = 1): usmoe's
Token Choice router + plan on [1, E] logits in a tight loop, against
PyTorch eager doing the selection alone (softmax -> topk) on the same
logits, in the same process. Medians of 5 batches of 2000 calls after 200
warm-up calls; microseconds per call.

    PYTHONPATH=build/python_packages build/venv-numpy2/bin/python \\
        benchmarks/bench_decode_overhead.py
"""

import platform
import statistics
import time

import numpy as np

import usmoe


def per_call_us(fn, calls=2000, batches=5):
    for _ in range(200):
        fn()
    samples = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def main():
    rows = []
    try:
        import torch
    except ImportError:
        torch = None
    for e in (8, 64, 256):
        x = np.random.default_rng(0).normal(size=(1, e)).astype(np.float32)
        router = usmoe.Router(mode="token", k=2)
        row = [e, per_call_us(lambda: router(x))]
        if torch is not None:
            t = torch.from_numpy(x)
            row.append(per_call_us(lambda: torch.softmax(t, -1).topk(2, -1)))
        rows.append(row)
    print(f"machine: {platform.processor() or platform.machine()}; "
          f"torch {torch.__version__ if torch else '-'} ({torch.get_num_threads() if torch else '-'} "
          f"threads); usmoe {usmoe.cpu.get_num_threads()} threads")
    print("| E | usmoe router + plan (us) | torch softmax -> topk (us) |")
    print("|---|---|---|")
    for row in rows:
        peer = f"{row[2]:.1f}" if len(row) > 2 else "-"
        print(f"| {row[0]} | {row[1]:.1f} | {peer} |")


if __name__ == "__main__":
    main()
