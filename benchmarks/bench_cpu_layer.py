#!/usr/bin/env python3
"""A whole MoE layer on the CPU: usmoe.MoeLayer against the same layer
written with NumPy and with PyTorch (gather, two GEMMs, SwiGLU, GEMM,
scatter-add per expert), all given the same plan.

    PYTHONPATH=build/python_packages /usr/bin/python3 benchmarks/bench_cpu_layer.py
"""

import numpy as np

import usmoe

from timing import median_seconds

E, D, F, T = 16, 512, 1024, 2048


def median_ms(fn, repeats=3):
    return median_seconds(fn, repeats) * 1e3


def main():
    rng = np.random.default_rng(0)
    w1, w3 = (rng.normal(0, 0.05, (E, D, F)).astype(np.float32) for _ in range(2))
    w2 = rng.normal(0, 0.05, (E, F, D)).astype(np.float32)
    hidden = rng.normal(size=(T, D)).astype(np.float32)
    logits = rng.normal(size=(T, E)).astype(np.float32)
    rows = []
    for title, options in [("token k=2", dict(mode="token", k=2)),
                           ("unified k=1.0", dict(mode="unified", k=1.0))]:
        layer = usmoe.MoeLayer(w1, w3, w2, **options)
        plan = usmoe.route(logits, **options)
        m = plan.token_ids.size

        def numpy_layer():
            out = np.zeros_like(hidden)
            for e in range(E):
                a, b = plan.expert_offsets[e], plan.expert_offsets[e + 1]
                ids, wts = plan.token_ids[a:b], plan.weights[a:b]
                x = hidden[ids]
                g, u = x @ w1[e], x @ w3[e]
                np.add.at(out, ids, ((g / (1 + np.exp(-g)) * u) @ w2[e]) * wts[:, None])
            return out

        row = [title, m, median_ms(lambda: layer(hidden, logits)), median_ms(numpy_layer)]
        try:
            import torch
            th, tw1, tw3, tw2 = (torch.from_numpy(a) for a in (hidden, w1, w3, w2))
            offsets = plan.expert_offsets.tolist()
            tids = torch.from_numpy(plan.token_ids.astype(np.int64))
            twts = torch.from_numpy(plan.weights)

            def torch_layer():
                with torch.no_grad():
                    out = torch.zeros_like(th)
                    for e in range(E):
                        ids = tids[offsets[e]:offsets[e + 1]]
                        x = th[ids]
                        a = torch.nn.functional.silu(x @ tw1[e]) * (x @ tw3[e])
                        out.index_add_(0, ids, (a @ tw2[e]) * twts[offsets[e]:offsets[e + 1], None])
                    return out
            row.append(median_ms(torch_layer))
            row.append(torch.get_num_threads())
        except ImportError:
            row += [float("nan"), 0]
        rows.append(row)
    print(f"E={E} D={D} F={F} T={T}, f32")
    print("| router | M | usmoe.MoeLayer (ms) | NumPy (ms) | PyTorch CPU (ms, threads) |")
    print("|---|---|---|---|---|")
    for title, m, ours, ref, tch, threads in rows:
        print(f"| {title} | {m} | {ours:.0f} | {ref:.0f} | {tch:.0f} ({threads}) |")


if __name__ == "__main__":
    main()
