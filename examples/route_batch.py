#!/usr/bin/env python3
"""Route one batch of router logits with all three routers and print the plans.

    PYTHONPATH=build/python_packages /usr/bin/python3 examples/route_batch.py
"""

import numpy as np

import usmoe

np.set_printoptions(precision=4, suppress=True)

# Two sequences of 6 tokens over 8 experts (what a model's router layer emits).
rng = np.random.default_rng(0)
logits = rng.normal(0.0, 1.5, size=(2, 6, 8)).astype(np.float32)

routers = {
    "Token Choice (k=2, renormalized)": dict(mode="token", k=2, renormalize=True),
    "Expert Choice (capacity factor 1.0, k=2)": dict(mode="expert", capacity_factor=1.0, k=2),
    "USMoE unified (k=1.5 experts/token on average, alpha=0.5)": dict(mode="unified", k=1.5),
}
for title, options in routers.items():
    plan = usmoe.route(logits, **options)
    per_token = plan.mask.sum(axis=-1)
    print(f"== {title}")
    print(f"selected pairs M = {plan.token_ids.size}; experts per token:")
    print(per_token)
    print("expert_offsets:", plan.expert_offsets)
    print("token_ids:     ", plan.token_ids)
    print("weights:       ", plan.weights)
    if plan.topk_ids is not None:
        print("topk_ids (first 3 tokens):", plan.topk_ids[:3].tolist())
    print()

print("compiled routers:", usmoe.cache_info()["compilations"])
