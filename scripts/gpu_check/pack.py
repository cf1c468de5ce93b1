#!/usr/bin/env python3
"""Pack half of scripts/gpu-check.sh (runs where LLVM/MLIR is, no GPU needed).

For every case: compile a router (Token Choice, Expert Choice or Unified:
route, plan and for Token Choice topk_list) for sm_90 into a host library
(the compiler's host code with the cubin embedded; PTX and the kernels'
JSON metadata beside it for reading), make random logits of several
shapes, and compute the expected gates, mask, plan and top-k lists with the
CPU path (the oracle). The same for a whole layer. Writes everything, the
runtime library and run.py into the pack directory.
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
import usmoe.cuda  # noqa: E402

# Token Choice: (experts, k, dtype, renormalize), the E and k of real models.
TOKEN_CASES = [
    (8, 1, "f32", False), (8, 2, "f16", True), (60, 2, "bf16", True),
    (60, 6, "f32", False), (64, 6, "f16", False), (64, 8, "f32", True),
    (128, 8, "bf16", True), (256, 8, "f32", False), (384, 8, "bf16", False),
    (512, 32, "f32", False),
]
# Unified and Expert Choice: (experts, dtype, options for moe.route / usmoe.route).
OTHER_CASES = [
    (8, "f32", "unified", dict(k=2.0, alpha=0.5)),
    (64, "bf16", "unified", dict(k=1.5, alpha=0.5)),
    (60, "f16", "unified", dict(k=2.75, alpha=0.25, expert_score="softmax_tokens")),
    (128, "f32", "unified", dict(budget=100, alpha=1.0)),
    (64, "f32", "expert", dict(capacity_factor=1.25, k=2)),
    (8, "bf16", "expert", dict(capacity=1)),
    # DeepSeek-V3 scoring: the bias vector is packed as bias.npy.
    (256, "bf16", "token", dict(k=8, renormalize=True, bias=True)),
]
SHAPES = [(1, 1), (2, 7), (3, 129), (1, 1000)]
# The GPU the pack is for (H100/H200) and the PTX ISA it needs.
CHIP, FEATURES = "sm_90", "+ptx80"
# With few experts, also columns of more than 16384 tokens: Expert Choice
# then spreads each column over several blocks (so does Unified).
LONG_SHAPES = [(1, 16500)]


def router_ir(e, dtype, mode, opts):
    """route + plan (+ topk_list for Token Choice): the IR usmoe.Router
    itself compiles (one writer of router IR)."""
    route_opts = dict(opts)
    if route_opts.pop("bias", False):
        route_opts["bias"] = np.zeros(e, np.float32)
    return usmoe.Router(mode=mode, **route_opts)._ir(dtype, e)


def host_library(ir, case_dir, entry):
    """The compiler's host code of `ir`'s function `entry`, kernels
    embedded, as a shared library that runs without MLIR (built the way
    usmoe.Router builds its own: usmoe.cuda.build_host_library), and its
    metadata for usmoe_cuda.HostFunction."""
    name = f"{entry}_host.so"
    metadata = usmoe.cuda.build_host_library(ir, entry, CHIP, FEATURES,
                                             os.path.join(case_dir, name))
    return dict(metadata, library=name)


LAYER_OPTIONS = dict(mode="unified", k=1.5)


def pack_layer(out, opt, extract, rng, e=16, d=64, ffn=96):
    """A whole MoE layer (route, plan, dispatch, SwiGLU experts, combine),
    the CPU path's results as expectations."""
    name = f"layer_unified_e{e}_d{d}"
    case_dir = os.path.join(out, name)
    os.makedirs(case_dir, exist_ok=True)
    w1 = rng.normal(0, 0.2, size=(e, d, ffn)).astype(np.float32)
    w3 = rng.normal(0, 0.2, size=(e, d, ffn)).astype(np.float32)
    w2 = rng.normal(0, 0.2, size=(e, ffn, d)).astype(np.float32)
    layer = usmoe.MoeLayer(w1, w3, w2, **LAYER_OPTIONS)
    ir = layer._ir("f32")  # the IR MoeLayer itself compiles
    extract_ptx(ir, opt, extract, case_dir)
    for key, value in dict(w1=w1, w3=w3, w2=w2).items():
        np.save(os.path.join(case_dir, f"{key}.npy"), value)
    inputs = []
    for j, t in enumerate([1, 9, 300]):
        logits = rng.normal(size=(1, t, e)).astype(np.float32)
        hidden = rng.normal(size=(t, d)).astype(np.float32)
        init = rng.normal(size=(t, d)).astype(np.float32)
        y = layer(hidden, logits, init=init)
        plan = usmoe.route(logits, **LAYER_OPTIONS)
        for key, value in dict(logits=logits, hidden=hidden, init=init, y=y,
                               offsets=plan.expert_offsets, ids=plan.token_ids).items():
            np.save(os.path.join(case_dir, f"{key}{j}.npy"), value)
        inputs.append({"index": j, "tokens": t})
    return {"dir": name, "experts": e, "hidden": d, "ffn": ffn, "mode": "layer",
            "options": {"k": LAYER_OPTIONS["k"]}, "inputs": inputs,
            "host": host_library(ir, case_dir, "layer")}


def extract_ptx(ir, opt, extract, case_dir):
    """The kernels as PTX and their JSON metadata, for reading (ptxas -v,
    ncu); the host library embeds the cubin it launches."""
    lowered = subprocess.run([opt, "-", "-usmoe-to-nvvm=format=isa"], input=ir,
                             capture_output=True, text=True, check=True).stdout
    subprocess.run([extract, "-o", case_dir], input=lowered, text=True, check=True)


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
    cases = [(e, dtype, "token", dict(k=k, renormalize=renorm))
             for e, k, dtype, renorm in TOKEN_CASES] + OTHER_CASES
    for i, (e, dtype, mode, opts) in enumerate(cases):
        label = "_".join(f"{key}{value}" for key, value in opts.items() if value is not False)
        name = f"case{i}_{mode}_e{e}_{dtype}_{label}".replace(".", "p")
        case_dir = os.path.join(args.out, name)
        os.makedirs(case_dir, exist_ok=True)
        ir = router_ir(e, dtype, mode, opts)
        extract_ptx(ir, opt, extract, case_dir)
        host = host_library(ir, case_dir, "router")
        route_opts = dict(opts)
        if opts.get("bias"):
            route_opts["bias"] = rng.normal(0, 0.05, size=e).astype(np.float32)
            np.save(os.path.join(case_dir, "bias.npy"), route_opts["bias"])
        inputs = []
        for j, (b, t) in enumerate(SHAPES + (LONG_SHAPES if e <= 8 else [])):
            logits, raw = make_logits(rng, b, t, e, dtype)
            plan = usmoe.route(logits, mode=mode, **route_opts)
            np.save(os.path.join(case_dir, f"in{j}.npy"), raw)
            expected = dict(gates=plan.gates, mask=plan.mask, offsets=plan.expert_offsets,
                            ids=plan.token_ids, weights=plan.weights)
            if mode == "token":
                expected.update(topk_ids=plan.topk_ids, topk_weights=plan.topk_weights)
            for key, value in expected.items():
                np.save(os.path.join(case_dir, f"{key}{j}.npy"), value)
            inputs.append({"index": j, "shape": [b, t, e]})
        manifest.append({"dir": name, "experts": e, "dtype": dtype, "mode": mode,
                         "options": opts, "inputs": inputs, "host": host})
    manifest.append(pack_layer(args.out, opt, extract, rng))
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"cases": manifest, "bench_tokens": 16384}, f, indent=1)
    shutil.copy(os.path.join(ROOT, "build", "lib", "libusmoe_cuda_runtime.so"), args.out)
    for script in ("run.py", "tolerances.py"):
        shutil.copy(os.path.join(ROOT, "scripts", "gpu_check", script), args.out)
    shutil.copy(os.path.join(ROOT, "python", "usmoe", "cuda.py"),
                os.path.join(args.out, "usmoe_cuda.py"))
    print(f"packed {len(manifest)} cases into {args.out}")


if __name__ == "__main__":
    main()
