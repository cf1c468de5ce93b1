#!/usr/bin/env python3
"""CPU router speed: usmoe's compiled routers against NumPy on the same input,
in the same process.

Two NumPy baselines: `usmoe.reference` (the spec oracle, written for clarity)
and a vectorized NumPy router (argpartition / argsort over whole arrays), the
fair speed baseline. Prints a Markdown table; medians of repeated runs after
one warm-up call (which also compiles the router).

    PYTHONPATH=build/python_packages /usr/bin/python3 benchmarks/bench_cpu_router.py
"""

import argparse

import numpy as np

import usmoe
from usmoe import reference

from timing import median_seconds


def vectorized_numpy(logits, mode, k=None, capacity_factor=None, alpha=0.5):
    """Plain vectorized NumPy routing (gates + mask), no CSR."""
    x = logits.astype(np.float32)
    m = x.max(axis=-1, keepdims=True)
    e = np.exp(x - m)
    p = e / e.sum(axis=-1, keepdims=True)
    b, t, n_exp = x.shape
    if mode == "token":
        idx = np.argpartition(-p, k - 1, axis=-1)[..., :k]
        mask = np.zeros_like(p, bool)
        np.put_along_axis(mask, idx, True, axis=-1)
        return np.where(mask, p, 0), mask
    if mode == "expert":
        c = max(1, min(t, int(np.ceil(capacity_factor * t * k / n_exp))))
        idx = np.argpartition(-p, c - 1, axis=1)[:, :c, :]
        mask = np.zeros_like(p, bool)
        np.put_along_axis(mask, idx, True, axis=1)
        return np.where(mask, p, 0), mask
    u = (1 - alpha) * p + alpha * (2.0 / n_exp) / (1 + np.exp(-x))
    budget = int(np.floor(k * t))
    flat = u.reshape(b, -1)
    idx = np.argpartition(-flat, budget - 1, axis=-1)[:, :budget]
    mask = np.zeros_like(flat, bool)
    np.put_along_axis(mask, idx, True, axis=-1)
    return np.where(mask, flat, 0).reshape(u.shape), mask.reshape(u.shape)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--experts", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-repeats", type=int, default=1)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, size=(args.batch, args.tokens, args.experts)).astype(np.float32)
    cases = [
        ("token k=2", dict(mode="token", k=2)),
        ("token k=8", dict(mode="token", k=8)),
        ("expert cf=1.25 k=2", dict(mode="expert", capacity_factor=1.25, k=2)),
        ("unified k=2", dict(mode="unified", k=2.0)),
        ("unified k=1.5", dict(mode="unified", k=1.5)),
    ]
    print(f"B*T = {args.batch * args.tokens} tokens (B={args.batch}, T={args.tokens}), "
          f"E = {args.experts}, f32 logits; median of {args.repeats} runs")
    print()
    print("| router | usmoe CPU (ms) | vectorized NumPy (ms) | speedup | usmoe.reference (ms) | speedup |")
    print("|---|---|---|---|---|---|")
    for name, opts in cases:
        router = usmoe.Router(**opts)
        ours = median_seconds(lambda: router(logits), args.repeats)
        vec = median_seconds(lambda: vectorized_numpy(logits, **opts), args.repeats)
        ref = median_seconds(lambda: reference.route(logits, **opts), args.reference_repeats)
        print(f"| {name} | {ours * 1e3:.1f} | {vec * 1e3:.1f} | {vec / ours:.2f}x "
              f"| {ref * 1e3:.0f} | {ref / ours:.0f}x |")


if __name__ == "__main__":
    main()
