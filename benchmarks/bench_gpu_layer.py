#!/usr/bin/env python3
"""usmoe's MoE layer against a PyTorch MoE on the same plan, on one GPU.

    bench_gpu_layer.py prefill DIR   here (MLIR, no GPU; the fake driver):
                                     compile every layer of the table for
                                     sm_90 into DIR/kernel-cache and write
                                     DIR/layer-floors.json (the kernel
                                     table's floor_bytes and FLOPs per shape)
    bench_gpu_layer.py run DIR       on the GPU machine (PyTorch with CUDA,
                                     no MLIR): time and print the tables
    bench_gpu_layer.py dry-run       the same harness on the CPU with tiny
                                     shapes (CI: the script itself works)

bf16 layers of Mixtral's shape (D = 4096, F = 14336, E = 8, Token Choice
k = 2) and DeepSeek-V2-Lite's (D = 2048, F = 1408, E = 64, k = 6) at T in
{128, 4096, 16384}: usmoe's whole layer (router, plan, the two tensor-core
grouped GEMMs with the gather and SwiGLU fused, combine: one stream call)
against the experts alone of a PyTorch MoE on a plan made beforehand
(gather, torch._grouped_mm for gate/up and down where the installed torch
has it, else a loop over experts, SwiGLU, index_add_), so the peer's
routing is free. Then the paper's cost claim at Mixtral's shape, T = 4096:
Token Choice k = 2 against Unified k = 2, 1.5 and 1.0, with the routed
FLOPs per token. CUDA events, the L2 cache flushed before every call,
medians of `--repeats` calls. "TFLOPS" is the routed FLOPs (M * 6 * D * F)
over the time; "x floor" is usmoe's time over the HBM floor (floor_bytes
over the measured copy bandwidth; the compute floor depends on the chip's
peak: compare TFLOPS with it); "max diff / max" compares the two layers'
outputs (the tensor-core kernels' first check on hardware).
"""

import argparse
import json
import os
import statistics
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SHAPES = {"mixtral": dict(d=4096, f=14336, e=8, k=2),
          "deepseek": dict(d=2048, f=1408, e=64, k=6)}
TOKENS = [128, 4096, 16384]
BUDGET_SHAPE, BUDGET_TOKENS = "mixtral", 4096
#: The largest output difference (over the largest output) usmoe's layer
#: and the peer may have: both round h to bf16, sum in other orders.
MAX_DIFF = 2e-2
BUDGETS = [("token k=2", dict(mode="token", k=2)),
           ("unified k=2", dict(mode="unified", k=2.0)),
           ("unified k=1.5", dict(mode="unified", k=1.5)),
           ("unified k=1.0", dict(mode="unified", k=1.0))]


def configs(shapes=SHAPES, tokens=TOKENS, budget_tokens=BUDGET_TOKENS):
    """(table, shape name, router name, router options, T) of every row."""
    for name, shape in shapes.items():
        for t in tokens:
            yield "layers", name, f"token k={shape['k']}", dict(mode="token", k=shape["k"]), t
    for router, options in BUDGETS:
        yield "budgets", BUDGET_SHAPE, router, options, budget_tokens


def key(shape, router, t):
    return f"{shape}|{router}|{t}"


def weights(torch, shape, device, empty=False):
    """w1, w3 [E, D, F] and w2 [E, F, D] bf16 (uninitialized when `empty`:
    the prefill needs shapes only)."""
    e, d, f = shape["e"], shape["d"], shape["f"]
    make = torch.empty if empty else (lambda *s, **kw: torch.randn(*s, **kw) * 0.02)
    return [make(e, d, f, dtype=torch.bfloat16, device=device),
            make(e, d, f, dtype=torch.bfloat16, device=device),
            make(e, f, d, dtype=torch.bfloat16, device=device)]


def prefill(directory):
    """Compiles every layer's host library into the pack's cache (the fake
    driver posing as an sm_90 GPU) and evaluates its floor bytes and FLOPs."""
    os.environ["USMOE_CACHE_DIR"] = os.path.join(directory, "kernel-cache")
    os.environ.setdefault("FAKE_CUDA_CC", "9.0")
    import torch
    import usmoe
    from usmoe import _usmoe
    floors, layers = {}, {}
    for _, name, router, options, t in configs():
        shape = SHAPES[name]
        if (name, router) not in layers:
            layer = usmoe.MoeLayer(*weights(torch, shape, "cpu", empty=True), device="cuda",
                                   **options)
            layers[name, router] = layer.compiled("bf16")
        fn = layers[name, router]
        m = usmoe.cuda.selected_pairs(options["mode"], options, (1, t, shape["e"]))
        symbols = {"B": 1, "T": t, "E": shape["e"], "M": m, "K": int(options["k"]),
                   "D": shape["d"], "F": shape["f"]}
        total = {"floor_bytes": 0, "flops": 0}
        for kernel in fn.kernels.values():
            for field in total:
                if field in kernel:
                    total[field] += _usmoe.evaluate_shape_expr(kernel[field], symbols)
        floors[key(name, router, t)] = dict(total, rows=m)
    with open(os.path.join(directory, "layer-floors.json"), "w") as f:
        json.dump(floors, f, indent=1)
    print(f"prefilled {len(layers)} layers ({len(floors)} shapes) into "
          f"{os.environ['USMOE_CACHE_DIR']}")


def grouped_mm(torch):
    """torch._grouped_mm(a [M, K], b [E, K, N], offs) where this torch has
    it for the device, else None."""
    fn = getattr(torch, "_grouped_mm", None)
    if fn is None:
        return None
    try:
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        a = torch.zeros(32, 16, dtype=torch.bfloat16, device=dev)
        b = torch.zeros(2, 16, 16, dtype=torch.bfloat16, device=dev)
        fn(a, b, offs=torch.tensor([16, 32], dtype=torch.int32, device=dev))
        return fn
    except Exception:  # not built for this device / dtype
        return None


def torch_experts(torch, w1, w3, w2, gmm):
    """A PyTorch MoE's experts on a plan (offsets [E+1], token ids, gates
    [M]): what the peer times."""
    silu = torch.nn.functional.silu

    def experts(hidden, offsets, ids, gates):
        x = hidden[ids]
        if gmm is not None:
            ends = offsets[1:].to(torch.int32)
            h = silu(gmm(x, w1, offs=ends)) * gmm(x, w3, offs=ends)
            y = gmm(h, w2, offs=ends)
        else:
            bounds = offsets.tolist()
            y = torch.empty(x.shape[0], w2.shape[2], dtype=x.dtype, device=x.device)
            for e in range(w1.shape[0]):
                lo, hi = bounds[e], bounds[e + 1]
                if hi > lo:
                    xe = x[lo:hi]
                    y[lo:hi] = (silu(xe @ w1[e]) * (xe @ w3[e])) @ w2[e]
        out = torch.zeros_like(hidden, dtype=torch.float32)
        out.index_add_(0, ids, y.float() * gates[:, None])
        return out.to(hidden.dtype)

    return experts


def run(directory, device, repeats, shapes, tokens, budget_tokens):
    import torch
    import usmoe
    from bench_cpu_vs_torch import torch_router
    from bench_gpu_router import Timer, start
    gmm = grouped_mm(torch)
    peer_name = "torch._grouped_mm" if gmm is not None else "per-expert loop"
    floors, bandwidth = start(directory, "layer-floors.json", device, torch,
                              f"; peer experts: {peer_name}")
    timer = Timer(device, repeats)
    rng = np.random.default_rng(0)
    bound, rows = {}, []
    for table, name, router, options, t in configs(shapes, tokens, budget_tokens):
        shape = shapes[name]
        if name not in bound:
            torch.manual_seed(0)
            bound.clear()  # one shape's weights on the device at a time
            bound[name] = weights(torch, shape, device)
        w1, w3, w2 = bound[name]
        layer = usmoe.MoeLayer(w1, w3, w2, device="cuda" if device == "cuda" else "cpu",
                               **options)
        logits = torch.from_numpy(rng.normal(size=(1, t, shape["e"])).astype(np.float32))
        logits = logits.to(device)
        hidden = (torch.randn(t, shape["d"], device=device) * 0.5).to(torch.bfloat16)
        _, _, offsets, ids, gates = torch_router(logits, options["mode"], options["k"])
        experts = torch_experts(torch, w1, w3, w2, gmm)
        times = {"usmoe": timer(lambda: layer(hidden, logits)),
                 "peer": timer(lambda: experts(hidden, offsets, ids, gates))}
        # The two outputs agree (same plan; h rounded to bf16 in both).
        mine, theirs = layer(hidden, logits).float(), experts(hidden, offsets, ids, gates).float()
        diff = float((mine - theirs).abs().max() / theirs.abs().max().clamp_min(1e-30))
        m = int(ids.shape[0])
        flops = m * 6 * shape["d"] * shape["f"]
        floor = floors.get(key(name, router, t), {})
        floor_us = (floor["floor_bytes"] / (bandwidth * 1e3)
                    if floor.get("floor_bytes") and bandwidth else None)
        rows.append((table, name, router, t, m, flops, times, floor_us, diff))
        print(f"  {name} {router} T={t} M={m}: usmoe {times['usmoe']:.1f} us, "
              f"{peer_name} {times['peer']:.1f} us", flush=True)
    print()
    print(f"| shape | router | tokens | rows M | usmoe (us) | usmoe TFLOPS | {peer_name} (us) "
          f"| peer / usmoe | HBM floor (us) | x floor | max diff / max |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for table, name, router, t, m, flops, times, floor_us, diff in rows:
        if table != "layers":
            continue
        mine = times["usmoe"]
        floor_cells = f"{floor_us:.1f} | {mine / floor_us:.1f}" if floor_us else "- | -"
        print(f"| {name} | {router} | {t} | {m} | {mine:.1f} | {flops / mine / 1e6:.1f} | "
              f"{times['peer']:.1f} | {times['peer'] / mine:.2f} | {floor_cells} | "
              f"{diff:.1e} |")
    print()
    print(f"| {BUDGET_SHAPE}, T = {budget_tokens} | rows M | routed GFLOP per token | "
          "usmoe (us) | / token k=2 | peer (us) |")
    print("|---|---|---|---|---|---|")
    reference = next((r[6]["usmoe"] for r in rows if r[0] == "budgets"), None)
    for table, name, router, t, m, flops, times, _, _ in rows:
        if table == "budgets":
            print(f"| {router} | {m} | {flops / t / 1e9:.3f} | {times['usmoe']:.1f} | "
                  f"{times['usmoe'] / reference:.2f} | {times['peer']:.1f} |")
    differing = [r for r in rows if r[8] > MAX_DIFF]
    for r in differing:
        print(f"bench_gpu_layer: {r[1]} {r[2]} T={r[3]}: usmoe and the peer differ by "
              f"{r[8]:.1e} of the largest output (> {MAX_DIFF})", file=sys.stderr)
    return 1 if differing else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["prefill", "run", "dry-run"])
    parser.add_argument("directory", nargs="?")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if args.mode == "prefill":
        return prefill(os.path.abspath(args.directory)) or 0
    if args.mode == "dry-run":
        tiny = {"tiny": dict(d=32, f=48, e=4, k=2)}
        global BUDGET_SHAPE
        BUDGET_SHAPE = "tiny"
        return run(None, "cpu", 2, tiny, [16], 16)
    from bench_gpu_router import torch_sees_a_gpu
    if not torch_sees_a_gpu("bench_gpu_layer"):
        return 2
    return run(os.path.abspath(args.directory), "cuda", args.repeats, SHAPES, TOKENS,
               BUDGET_TOKENS)


if __name__ == "__main__":
    sys.exit(main())
