#!/usr/bin/env python3
"""Pack half of scripts/gpu-check.sh (runs where LLVM/MLIR is, no GPU needed).

For every case: compile a Token Choice router with usmoe-to-nvvm to a cubin
(and PTX) plus its JSON metadata, make random logits of several shapes, and
compute the expected gates and mask with the CPU path (the oracle). Writes
everything, the runtime library and run.py into the pack directory.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "build", "python_packages"))
import usmoe  # noqa: E402

# (experts, k, dtype, renormalize): the expert counts and k of real models.
CASES = [
    (8, 1, "f32", False), (8, 2, "f16", True), (60, 2, "bf16", True),
    (60, 6, "f32", False), (64, 6, "f16", False), (64, 8, "f32", True),
    (128, 8, "bf16", True), (256, 8, "f32", False), (384, 8, "bf16", False),
    (512, 32, "f32", False),
]
SHAPES = [(1, 1), (2, 7), (3, 129), (1, 1000)]
MLIR_TYPE = {"f32": "f32", "f16": "f16", "bf16": "bf16"}


def router_ir(e, k, dtype, renorm):
    t = f"tensor<?x?x{e}x{MLIR_TYPE[dtype]}>"
    r = " renormalize" if renorm else ""
    return (f"func.func @router(%l: {t}) -> (tensor<?x?x{e}xf32>, tensor<?x?x{e}xi1>) {{\n"
            f"  %g, %m = moe.route token %l k = {float(k)}{r} : {t}\n"
            f"  return %g, %m : tensor<?x?x{e}xf32>, tensor<?x?x{e}xi1>\n}}\n")


def make_logits(rng, b, t, e, dtype):
    x = rng.normal(0, 2, size=(b, t, e)).astype(np.float32)
    if t > 2:  # special rows: ties, a NaN, a dead row
        x[0, 0, :] = np.round(x[0, 0, :])
        x[0, 1, 3 % e] = np.nan
        x[0, 2, :] = -np.inf
    if dtype == "f16":
        return x.astype(np.float16), x.astype(np.float16)
    if dtype == "bf16":
        import torch
        tb = torch.from_numpy(x).to(torch.bfloat16)
        return tb, tb.view(torch.int16).numpy().view(np.uint16)
    return x, x


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    args = parser.parse_args()
    opt = os.path.join(ROOT, "build", "bin", "usmoe-opt")
    extract = os.path.join(ROOT, "build", "bin", "usmoe-extract-binary")
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(2026)
    manifest = []
    for i, (e, k, dtype, renorm) in enumerate(CASES):
        name = f"case{i}_e{e}_k{k}_{dtype}{'_renorm' if renorm else ''}"
        case_dir = os.path.join(args.out, name)
        os.makedirs(case_dir, exist_ok=True)
        ir = router_ir(e, k, dtype, renorm)
        for fmt in ("bin", "isa"):
            lowered = subprocess.run([opt, "-", f"-usmoe-to-nvvm=format={fmt}"], input=ir,
                                     capture_output=True, text=True, check=True).stdout
            subprocess.run([extract, "-o", case_dir], input=lowered, text=True, check=True)
        inputs = []
        for j, (b, t) in enumerate(SHAPES):
            logits, raw = make_logits(rng, b, t, e, dtype)
            plan = usmoe.route(logits, mode="token", k=k, renormalize=renorm)
            np.save(os.path.join(case_dir, f"in{j}.npy"), raw)
            np.save(os.path.join(case_dir, f"gates{j}.npy"), plan.gates)
            np.save(os.path.join(case_dir, f"mask{j}.npy"), plan.mask)
            inputs.append({"index": j, "shape": [b, t, e]})
        manifest.append({"dir": name, "experts": e, "k": k, "dtype": dtype,
                         "renormalize": renorm, "inputs": inputs})
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"cases": manifest, "bench_tokens": 16384}, f, indent=1)
    shutil.copy(os.path.join(ROOT, "build", "lib", "libusmoe_cuda_runtime.so"), args.out)
    shutil.copy(os.path.join(ROOT, "scripts", "gpu_check", "run.py"), args.out)
    print(f"packed {len(manifest)} cases into {args.out}")


if __name__ == "__main__":
    main()
