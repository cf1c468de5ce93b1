#!/usr/bin/env python3
"""The cases of a gpu-check pack on the GPU emulator (no GPU needed).

    emulate.py DIR

Runs every packed case (routers and the layer, the same options, inputs and
CPU-path expectations that run.py checks on a GPU) through the GPU path's
kernels on the emulator (USMOE_GPU_EMULATOR=1, in order and under a schedule
seed), with run.py's tolerances (tolerances.py): selections exact, floats
within the stated bounds. A GPU run then only has to confirm what
the emulator already passed. Prints a table; exit 1 on any mismatch.
"""

import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "build", "python_packages"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ["USMOE_GPU_EMULATOR"] = "1"
import usmoe  # noqa: E402
from pack import LAYER_OPTIONS  # noqa: E402
from tolerances import GATE_RTOL, LAYER_TOL, gate_err, layer_err  # noqa: E402


def logits_of(raw, dtype):
    if dtype == "bf16":
        import torch
        return torch.from_numpy(raw.view(np.int16)).view(torch.bfloat16)
    return raw


def check_router(case, case_dir, j):
    load = lambda key: np.load(os.path.join(case_dir, f"{key}{j}.npy"))  # noqa: E731
    options = dict(case["options"])
    if options.pop("bias", False):
        options["bias"] = np.load(os.path.join(case_dir, "bias.npy"))
    plan = usmoe.route(logits_of(load("in"), case["dtype"]), mode=case["mode"], device="cuda",
                       **options)
    mism = int((plan.mask != load("mask")).sum())
    mism += int((plan.expert_offsets != load("offsets")).sum())
    mism += int(plan.token_ids.shape != load("ids").shape or (plan.token_ids != load("ids")).any())
    worst = max(gate_err(plan.gates, load("gates")), gate_err(plan.weights, load("weights")))
    if case["mode"] == "token":
        mism += int((plan.topk_ids != load("topk_ids")).sum())
        worst = max(worst, gate_err(plan.topk_weights, load("topk_weights")))
    return mism, worst, GATE_RTOL


def check_layer(case, case_dir, j, layer):
    """The layer's output (its plan is what the router cases check)."""
    load = lambda key: np.load(os.path.join(case_dir, f"{key}.npy"))  # noqa: E731
    y = layer(load(f"hidden{j}"), load(f"logits{j}"), init=load(f"init{j}"))
    return 0, layer_err(y, load(f"y{j}")), LAYER_TOL


def main(directory):
    manifest = json.load(open(os.path.join(directory, "manifest.json")))
    failures = 0
    print("| case (GPU emulator) | schedule | inputs | mismatches | max rel err | result |")
    print("|---|---|---|---|---|---|")
    for seed in ("", "1"):
        os.environ["USMOE_EMU_SEED"] = seed
        for case in manifest["cases"]:
            case_dir = os.path.join(directory, case["dir"])
            layer = None
            if case["mode"] == "layer":
                layer = usmoe.MoeLayer(*(np.load(os.path.join(case_dir, f"{w}.npy"))
                                         for w in ("w1", "w3", "w2")),
                                       device="cuda", **LAYER_OPTIONS)
            mism, worst, tolerance = 0, 0.0, 0
            for item in case["inputs"]:
                j = item["index"]
                m, w, tolerance = (check_layer(case, case_dir, j, layer) if layer else
                                   check_router(case, case_dir, j))
                mism, worst = mism + m, max(worst, w)
            ok = mism == 0 and worst <= tolerance
            failures += not ok
            print(f"| {case['dir']} | {'seed ' + seed if seed else 'in order'} | "
                  f"{len(case['inputs'])} | {mism} | {worst:.2e} | {'ok' if ok else 'FAIL'} |")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(os.path.abspath(sys.argv[1])))
