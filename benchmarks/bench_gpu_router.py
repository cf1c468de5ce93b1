#!/usr/bin/env python3
"""usmoe's GPU routers against what a PyTorch user runs instead, on one GPU.

    bench_gpu_router.py prefill DIR   here (MLIR, no GPU; the fake driver):
                                      compile every router of the table for
                                      sm_90 into DIR/kernel-cache and write
                                      DIR/bench-floors.json, each router's
                                      HBM floor (the kernel table's
                                      floor_bytes, summed) per shape
    bench_gpu_router.py run DIR       on the GPU machine (PyTorch with CUDA,
                                      no MLIR): time and print the table
    bench_gpu_router.py dry-run       the same harness on the CPU with tiny
                                      shapes (CI: the script itself works)

Every row times, side by side in one process, on [1, T, E] logits already
on the GPU: usmoe's router + plan (one stream call of the compiler's host
code: gates, mask, the expert-major CSR, and for Token Choice the [T, k]
lists), the USMoE authors' eager PyTorch selection (softmax f32, sigmoid,
mix, view(B, T*E), torch.topk(floor(k*T)), mask) or for Token Choice eager
`softmax -> topk`, the same under torch.compile, PyTorch eager with the
plan too (nonzero, bincount: what dispatch needs), and the HBM floor: the
bytes the router must move over the bandwidth a device-to-device copy
reaches. CUDA events, the L2 cache flushed before every timed call (a 256
MB write), medians of `--repeats` calls. Ratios are peer time / usmoe time
(> 1: usmoe is faster); "x floor" is usmoe's time over the floor.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

TOKENS = [1, 64, 1024, 16384, 65536]
EXPERTS = [8, 64, 256]
ROUTERS = [("token k=2", dict(mode="token", k=2)),
           ("token k=8", dict(mode="token", k=8)),
           ("unified k=1.5", dict(mode="unified", k=1.5))]
DTYPES = ["float32", "bfloat16"]
ELEMENT = {"float32": "f32", "bfloat16": "bf16"}


def configs(tokens=TOKENS, experts=EXPERTS, dtypes=DTYPES):
    for name, options in ROUTERS:
        for e in experts:
            if options.get("k", 0) > e:
                continue
            for dtype in dtypes:
                for t in tokens:
                    yield name, options, e, dtype, t


def key(name, e, dtype, t):
    return f"{name}|{e}|{dtype}|{t}"


def selection_only(mode, k, alpha=0.5):
    """The peer users write: Token Choice softmax -> topk; Unified the
    authors' code (mix, one top-N over each sequence's T x E, a mask)."""
    import torch

    def token(logits):
        p = torch.softmax(logits.float(), dim=-1)
        return p.topk(k, dim=-1)

    def unified(logits):
        b, t, e = logits.shape
        p = torch.softmax(logits.float(), dim=-1)
        u = (1 - alpha) * p + alpha * (2.0 / e) * torch.sigmoid(logits.float())
        flat = u.view(b, t * e)
        _, ids = flat.topk(int(np.floor(k * t)), dim=-1)
        return torch.zeros_like(flat, dtype=torch.bool).scatter_(-1, ids, True)

    return token if mode == "token" else unified


def prefill(directory):
    """Compiles every router's host library into the pack's cache (with the
    fake driver posing as an sm_90 GPU) and evaluates its floor_bytes."""
    os.environ["USMOE_CACHE_DIR"] = os.path.join(directory, "kernel-cache")
    os.environ.setdefault("FAKE_CUDA_CC", "9.0")
    import usmoe
    from usmoe import _usmoe
    floors = {}
    for name, options, e, dtype, t in configs():
        fn = usmoe.Router(device="cuda", **options).compiled(ELEMENT[dtype], e)
        m = usmoe.cuda.selected_pairs(options["mode"], options, (1, t, e))
        symbols = {"B": 1, "T": t, "E": e, "M": m, "K": int(options["k"])}
        floors[key(name, e, dtype, t)] = sum(
            _usmoe.evaluate_shape_expr(kernel["floor_bytes"], symbols)
            for kernel in fn.kernels.values() if "floor_bytes" in kernel)
    with open(os.path.join(directory, "bench-floors.json"), "w") as f:
        json.dump(floors, f, indent=1)
    print(f"prefilled {len(floors)} router shapes into {os.environ['USMOE_CACHE_DIR']}")


class Timer:
    """Median time of a call: CUDA events with the L2 cache flushed before
    each call on the GPU, perf_counter on the CPU (dry run)."""

    def __init__(self, device, repeats):
        import torch
        self.torch, self.device, self.repeats = torch, device, repeats
        if device == "cuda":
            self.flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")

    def __call__(self, fn):
        torch = self.torch
        fn()  # warm-up (and compilation)
        times = []
        for _ in range(self.repeats):
            if self.device == "cuda":
                self.flush.zero_()
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) * 1e3)
            else:
                begin = time.perf_counter()
                fn()
                times.append((time.perf_counter() - begin) * 1e6)
        return statistics.median(times)


def copy_bandwidth_gbs(torch):
    """What a device-to-device copy of 1 GiB reaches (read + write), GB/s."""
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(5):
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3)
    return 2 * src.numel() / statistics.median(times) / 1e9


def start(directory, floors_file, device, torch, note=""):
    """A benchmark run's setup: the pack's kernel cache and floors (none on
    a dry run), the copy bandwidth on a GPU, and the header line (with
    `note`). Returns (floors, bandwidth GB/s or None)."""
    floors, bandwidth = {}, None
    if directory:
        os.environ["USMOE_CACHE_DIR"] = os.path.join(directory, "kernel-cache")
        with open(os.path.join(directory, floors_file)) as f:
            floors = json.load(f)
    if device == "cuda":
        bandwidth = copy_bandwidth_gbs(torch)
        print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; "
              f"device-to-device copy {bandwidth:.0f} GB/s{note}")
    else:
        print(f"dry run on the CPU; torch {torch.__version__}{note}")
    return floors, bandwidth


def run(directory, device, repeats, compile_peers, tokens, experts, dtypes):
    import torch
    import usmoe
    from bench_cpu_vs_torch import torch_router
    floors, bandwidth = start(directory, "bench-floors.json", device, torch)
    timer = Timer(device, repeats)
    rng = np.random.default_rng(0)
    compiled = {}
    rows = []
    for name, options, e, dtype, t in configs(tokens, experts, dtypes):
        x = torch.from_numpy(rng.normal(size=(1, t, e)).astype(np.float32))
        logits = x.to(getattr(torch, dtype)).to(device)
        router = usmoe.Router(device="cuda" if device == "cuda" else "cpu", **options)
        mode, k = options["mode"], options["k"]
        peer = selection_only(mode, int(k) if mode == "token" else k)
        times = {"usmoe": timer(lambda: router(logits)),
                 "eager": timer(lambda: peer(logits)),
                 "eager+plan": timer(lambda: torch_router(logits, mode, k))}
        if compile_peers:
            if (name, dtype) not in compiled:  # one compilation for every shape
                compiled[name, dtype] = torch.compile(peer, dynamic=True)
            fn = compiled[name, dtype]
            times["compile"] = timer(lambda: fn(logits))
        floor = floors.get(key(name, e, dtype, t))
        floor_us = floor / (bandwidth * 1e3) if floor and bandwidth else None
        rows.append((name, e, dtype, t, times, floor_us))
        print(f"  {name} E={e} {dtype} T={t}: " +
              ", ".join(f"{n} {v:.1f} us" for n, v in times.items()), flush=True)
    peers = ["eager", "compile", "eager+plan"] if compile_peers else ["eager", "eager+plan"]
    print()
    print("| router | E | dtype | tokens | usmoe (us) | " +
          " | ".join(f"{p} (us) | {p} / usmoe" for p in peers) + " | HBM floor (us) | x floor |")
    print("|---|---|---|---|---|" + "---|---|" * len(peers) + "---|---|")
    for name, e, dtype, t, times, floor_us in rows:
        mine = times["usmoe"]
        cells = [f"{times[p]:.1f} | {times[p] / mine:.2f}" for p in peers]
        floor_cells = (f"{floor_us:.2f} | {mine / floor_us:.1f}" if floor_us else "- | -")
        print(f"| {name} | {e} | {dtype} | {t} | {mine:.1f} | " + " | ".join(cells) +
              f" | {floor_cells} |")
    return 0


def torch_sees_a_gpu(script):
    """Whether PyTorch is installed and sees a GPU; says so on stderr when
    not (the benchmarks then exit with 2)."""
    try:
        import torch
        usable = torch.cuda.is_available()
    except ImportError:
        usable = False
    if not usable:
        print(f"{script}: no PyTorch with a GPU here; nothing timed", file=sys.stderr)
    return usable


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["prefill", "run", "dry-run"])
    parser.add_argument("directory", nargs="?")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true",
                        help="leave out the torch.compile peer (its compilations take minutes)")
    args = parser.parse_args()
    if args.mode == "prefill":
        return prefill(os.path.abspath(args.directory)) or 0
    if args.mode == "dry-run":
        return run(None, "cpu", 2, not args.no_compile, [1, 64], [8], ["float32"])
    if not torch_sees_a_gpu("bench_gpu_router"):
        return 2
    return run(os.path.abspath(args.directory), "cuda", args.repeats, not args.no_compile,
               TOKENS, EXPERTS, DTYPES)


if __name__ == "__main__":
    sys.exit(main())
