#!/usr/bin/env python3
"""usmoe's CPU routers and layers against what a CPU user would run instead:
PyTorch 2.x eager (its default threads and 1 thread), torch.compile and
NumPy 2, side by side in one process, interleaved, medians.

Every implementation computes the same thing: router + plan (gates, mask and
the expert-major token list with its offsets, which dispatch needs), or the
whole SwiGLU layer on one plan. Run it in the venv scripts/test.sh makes
(PyPI NumPy 2, PyTorch 2.x):

    PYTHONPATH=build/python_packages build/venv-numpy2/bin/python \\
        benchmarks/bench_cpu_vs_torch.py [--part routers|layers|all] [--quick]

Prints the machine, versions and thread counts, then Markdown tables; the
ratio columns are peer time / usmoe time (> 1: usmoe is faster).
"""

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

import usmoe

ROUTER_SIZES = [1, 64, 1024, 16384, 65536]  # B*T
ROUTER_EXPERTS = [8, 64, 256]
ROUTERS = [("token k=2", dict(mode="token", k=2)),
           ("token k=8", dict(mode="token", k=8)),
           ("expert cf=1 k=2", dict(mode="expert", capacity_factor=1.0, k=2)),
           ("unified k=1.5", dict(mode="unified", k=1.5))]
LAYER_SHAPES = [(512, 1024, 16), (1024, 2816, 8)]  # (D, F, E)
LAYER_TOKENS = [1, 128, 2048]


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds of each function over two rounds, the second in the
    reverse order (so that drift hits all alike); in each round a function
    gets one untimed call, then `repeats` timed ones back to back (calling
    libraries with different thread pools alternately on 2 cores would time
    the pools waking up and spinning, not the work)."""
    times = {name: [] for name in fns}
    names = list(fns)
    for order in (names, names[::-1]):
        for name in order:
            fns[name]()
            for _ in range(repeats):
                start = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def timed_at_default_and_one_thread(fns: dict, one_thread: dict, repeats: int) -> dict:
    """`fns` at every library's default thread count, then `one_thread`
    (named "... 1t") with usmoe ("usmoe 1t"), both on 1 thread: switching
    thread counts between calls would time the pools' reconfiguration."""
    medians = interleaved_medians(fns, repeats)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    usmoe.cpu.set_num_threads(1)
    try:
        again = interleaved_medians(dict(one_thread, **{"usmoe 1t": fns["usmoe"]}), repeats)
    finally:
        torch.set_num_threads(before)
        usmoe.cpu.set_num_threads(0)
    medians.update(again)
    return medians


# -- routers + plan in PyTorch and NumPy, as users write them ---------------

def torch_router(logits, mode, k, capacity_factor=None, alpha=0.5):
    """Gates, mask and the expert-major plan (offsets, token ids, weights)."""
    b, t, e = logits.shape
    p = torch.softmax(logits.float(), dim=-1)
    if mode == "token":
        w, ids = p.topk(k, dim=-1)
        mask = torch.zeros_like(p, dtype=torch.bool).scatter_(-1, ids, True)
    elif mode == "expert":
        c = max(1, min(t, int(np.ceil(capacity_factor * t * k / e))))
        _, ids = p.topk(c, dim=1)
        mask = torch.zeros_like(p, dtype=torch.bool).scatter_(1, ids, True)
    else:  # the USMoE authors' code: mix, one top-N over each sequence's T x E
        u = (1 - alpha) * p + alpha * (2.0 / e) * torch.sigmoid(logits.float())
        n = int(np.floor(k * t))
        flat = u.view(b, t * e)
        _, ids = flat.topk(n, dim=-1)
        mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(-1, ids, True).view(b, t, e)
        p = u
    gates = p * mask
    pairs = mask.view(b * t, e).t().nonzero()  # (expert, token), expert-major
    offsets = torch.nn.functional.pad(torch.bincount(pairs[:, 0], minlength=e).cumsum(0), (1, 0))
    return gates, mask, offsets, pairs[:, 1], gates.view(b * t, e)[pairs[:, 1], pairs[:, 0]]


def numpy_router(logits, mode, k, capacity_factor=None, alpha=0.5):
    b, t, e = logits.shape
    x = logits.astype(np.float32)
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    p = z / z.sum(axis=-1, keepdims=True)
    if mode == "token":
        mask = np.zeros_like(p, bool)
        np.put_along_axis(mask, np.argpartition(-p, k - 1, axis=-1)[..., :k], True, axis=-1)
    elif mode == "expert":
        c = max(1, min(t, int(np.ceil(capacity_factor * t * k / e))))
        mask = np.zeros_like(p, bool)
        np.put_along_axis(mask, np.argpartition(-p, c - 1, axis=1)[:, :c, :], True, axis=1)
    else:
        p = (1 - alpha) * p + alpha * (2.0 / e) / (1 + np.exp(-x))
        n = int(np.floor(k * t))
        flat = p.reshape(b, -1)
        mask = np.zeros_like(flat, bool)
        np.put_along_axis(mask, np.argpartition(-flat, n - 1, axis=-1)[:, :n], True, axis=-1)
        mask = mask.reshape(p.shape)
    gates = np.where(mask, p, 0)
    experts, tokens = np.nonzero(mask.reshape(b * t, e).T)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(experts, minlength=e))])
    return gates, mask, offsets, tokens, gates.reshape(b * t, e)[tokens, experts]


def router_rows(repeats, sizes, experts):
    rng = np.random.default_rng(0)
    for tokens in sizes:
        for batch in ([1] if tokens < 16 else [1, 16]):
            for e in experts:
                logits = rng.normal(0, 2, size=(batch, tokens // batch, e)).astype(np.float32)
                tl = torch.from_numpy(logits)
                for title, options in ROUTERS:
                    if options.get("k", 0) > e:
                        continue
                    router = usmoe.Router(**options)
                    compiled = torch.compile(torch_router, dynamic=True)
                    fns = {"usmoe": lambda: router(logits),
                           "torch": lambda: torch_router(tl, **options),
                           "compile": lambda: compiled(tl, **options),
                           "numpy": lambda: numpy_router(logits, **options)}
                    med = timed_at_default_and_one_thread(
                        fns, {"torch 1t": lambda: torch_router(tl, **options)}, repeats)
                    yield tokens, batch, e, title, med


# -- layers -----------------------------------------------------------------

def torch_layer(hidden, plan, w1, w3, w2):
    """The SwiGLU layer on a plan, per expert (gather, GEMMs, scatter-add)."""
    offsets, ids, weights = plan
    out = torch.zeros(hidden.shape, dtype=torch.float32)
    for e in range(w1.shape[0]):
        a, b = offsets[e], offsets[e + 1]
        if a == b:
            continue
        rows = ids[a:b]
        x = hidden[rows]
        h = torch.nn.functional.silu(x @ w1[e]) * (x @ w3[e])
        out.index_add_(0, rows, (h @ w2[e]).float() * weights[a:b, None])
    return out.to(hidden.dtype)


def numpy_layer(hidden, plan, w1, w3, w2):
    offsets, ids, weights = plan
    out = np.zeros_like(hidden)
    for e in range(w1.shape[0]):
        a, b = offsets[e], offsets[e + 1]
        if a == b:
            continue
        x = hidden[ids[a:b]]
        g, u = x @ w1[e], x @ w3[e]
        np.add.at(out, ids[a:b], ((g / (1 + np.exp(-g)) * u) @ w2[e]) * weights[a:b, None])
    return out


def with_loops(call):
    """`call` with the expert GEMMs in generated loops (the CPU path before
    oneDNN; USMOE_CPU_GEMM is read when the layer looks up its code)."""
    os.environ[usmoe.cpu.ENV] = "loops"
    try:
        return call()
    finally:
        del os.environ[usmoe.cpu.ENV]


def layer_rows(repeats, quick):
    rows = []
    rng = np.random.default_rng(1)
    for d, f, e in LAYER_SHAPES[:1] if quick else LAYER_SHAPES:
        w = [rng.normal(0, 0.05, shape).astype(np.float32)
             for shape in ((e, d, f), (e, d, f), (e, f, d))]
        for tokens in LAYER_TOKENS:
            hidden = rng.normal(size=(tokens, d)).astype(np.float32)
            logits = rng.normal(size=(tokens, e)).astype(np.float32)
            options = dict(mode="token", k=2)
            plan = usmoe.route(logits, **options)
            np_plan = (plan.expert_offsets, plan.token_ids, plan.weights)
            t_plan = (plan.expert_offsets.tolist(), torch.from_numpy(plan.token_ids.astype(np.int64)),
                      torch.from_numpy(plan.weights))
            for dtype in (torch.float32, torch.bfloat16):
                tw = [torch.from_numpy(x).to(dtype) for x in w]
                th = torch.from_numpy(hidden).to(dtype)
                layer = usmoe.MoeLayer(*tw, **options)
                fns = {"usmoe": lambda: layer(th, logits),
                       "usmoe loops": lambda: with_loops(lambda: layer(th, logits)),
                       "torch": lambda: torch_layer(th, t_plan, *tw)}
                if dtype == torch.float32:
                    fns["numpy"] = lambda: numpy_layer(hidden, np_plan, *w)
                with torch.no_grad():
                    med = timed_at_default_and_one_thread(
                        fns, {"torch 1t": lambda: torch_layer(th, t_plan, *tw)}, repeats)
                flops = 6 * d * f * plan.token_ids.size
                rows.append(((d, f, e), tokens, str(dtype).split(".")[1], flops, med))
    return rows


def main():
    # One compiled torch_router serves every mode and shape (dynamic=True):
    # let it keep a graph per mode instead of falling back to eager.
    for limit in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, limit):
            setattr(torch._dynamo.config, limit, 1024)
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["routers", "layers", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the largest sizes")
    parser.add_argument("--sizes", type=int, nargs="*", default=None,
                        help="router B*T values (default: all)")
    parser.add_argument("--experts", type=int, nargs="*", default=ROUTER_EXPERTS,
                        help="router E values")
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"machine: {cpu}, {os.cpu_count()} cores; python {platform.python_version()}, "
          f"numpy {np.__version__}, torch {torch.__version__} (default threads "
          f"{torch.get_num_threads()}); usmoe threads {usmoe.cpu.get_num_threads()}; "
          f"medians of 2 x "
          f"{args.repeats} calls (two rounds, the second in reverse order); "
          f"ratio = peer / usmoe")
    if args.part in ("routers", "all"):
        print("\n| B*T | B | E | router | usmoe ms | torch ms | usmoe 1t ms | torch 1t ms | "
              "compile ms | numpy ms | torch/usmoe | torch 1t/usmoe 1t | numpy/usmoe |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        sizes = args.sizes or (ROUTER_SIZES[:4] if args.quick else ROUTER_SIZES)
        for tokens, batch, e, title, m in router_rows(args.repeats, sizes, args.experts):
            ms = {k: v * 1e3 for k, v in m.items()}
            print(f"| {tokens} | {batch} | {e} | {title} | {ms['usmoe']:.3f} | {ms['torch']:.3f} "
                  f"| {ms['usmoe 1t']:.3f} | {ms['torch 1t']:.3f} | {ms['compile']:.3f} | "
                  f"{ms['numpy']:.3f} | "
                  f"{m['torch'] / m['usmoe']:.2f} | {m['torch 1t'] / m['usmoe 1t']:.2f} | "
                  f"{m['numpy'] / m['usmoe']:.2f} |", flush=True)
    if args.part in ("layers", "all"):
        print(f"\n(usmoe: expert GEMMs on {usmoe.cpu.expert_gemm()}; "
              "usmoe loops: the generated GEMM loops, one thread)")
        print("\n| (D, F, E) | T | dtype | usmoe ms | usmoe GFLOP/s | usmoe loops ms | torch ms | "
              "usmoe 1t ms | torch 1t ms | numpy ms | torch/usmoe | torch 1t/usmoe 1t |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for shape, tokens, dtype, flops, m in layer_rows(args.repeats, args.quick):
            ms = {k: v * 1e3 for k, v in m.items()}
            numpy_ms = f"{ms['numpy']:.2f}" if "numpy" in ms else "-"
            print(f"| {shape} | {tokens} | {dtype} | {ms['usmoe']:.2f} | "
                  f"{flops / m['usmoe'] / 1e9:.1f} | {ms['usmoe loops']:.2f} | {ms['torch']:.2f} | "
                  f"{ms['usmoe 1t']:.2f} | {ms['torch 1t']:.2f} | "
                  f"{numpy_ms} | {m['torch'] / m['usmoe']:.2f} | "
                  f"{m['torch 1t'] / m['usmoe 1t']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
