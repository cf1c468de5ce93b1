#!/usr/bin/env python3
"""Run a small MoE layer with each router and compare the routed compute.

    PYTHONPATH=build/python_packages /usr/bin/python3 examples/moe_layer.py

The unified router with a fractional budget (k=1.0 here against Token
Choice's k=2) spends half the routed-expert FLOPs (M * 6 * D * F): the cost
saving USMoE proposes. Add device="cuda" on a GPU machine.
"""

import numpy as np

import usmoe

rng = np.random.default_rng(0)
experts, d, ffn, tokens = 8, 64, 128, 32
w1 = rng.normal(0, 0.1, size=(experts, d, ffn)).astype(np.float32)
w3 = rng.normal(0, 0.1, size=(experts, d, ffn)).astype(np.float32)
w2 = rng.normal(0, 0.1, size=(experts, ffn, d)).astype(np.float32)
hidden = rng.normal(size=(tokens, d)).astype(np.float32)
logits = rng.normal(size=(tokens, experts)).astype(np.float32)

for title, options in {
    "Token Choice k=2": dict(mode="token", k=2, renormalize=True),
    "Expert Choice capacity factor 1.0": dict(mode="expert", capacity_factor=1.0, k=2),
    "Unified k=1.0 (half the routed FLOPs)": dict(mode="unified", k=1.0),
}.items():
    layer = usmoe.MoeLayer(w1, w3, w2, **options)
    y = layer(hidden, logits, init=hidden)  # the residual added by the layer
    m = usmoe.route(logits, **options).token_ids.size
    print(f"{title:40s} M = {m:3d}  routed GFLOP = {m * 6 * d * ffn / 1e9:.5f}  "
          f"|y - h| mean = {np.abs(y - hidden).mean():.4f}")
