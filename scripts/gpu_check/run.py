#!/usr/bin/env python3
"""Run half of scripts/gpu-check.sh (runs on the GPU machine: no MLIR needed).

Runs each packed case through the compiler's own host code (a shared
library with the cubin embedded: its launch sequence, grids, budgets and
M, nothing re-derived here), called through libusmoe_cuda_runtime.so by
usmoe's driver glue (usmoe/cuda.py, packed as usmoe_cuda.py) as a stream
call; compares every packed input with the CPU path's results (masks,
plans and top-k ids exactly, gates, weights and layer outputs within
tolerances.py) and times each router (route + plan, + lists for Token
Choice) at B*T = 16384 tokens. Prints a short table last; exit code 1 on
any mismatch, 2 when there is no GPU.
"""

import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("USMOE_CUDA_RUNTIME", os.path.join(HERE, "libusmoe_cuda_runtime.so"))
sys.path.insert(0, HERE)
import usmoe_cuda as cuda  # noqa: E402
from tolerances import GATE_RTOL, LAYER_TOL, gate_err, layer_err  # noqa: E402

ROUTER_RESULTS = ["gates", "mask", "offsets", "ids", "weights", "topk_ids", "topk_weights"]


def host_function(case, d):
    return cuda.HostFunction(os.path.join(d, case["host"]["library"]), case["host"])


def check_layer(case, d):
    """The whole layer (route, plan, dispatch, experts, combine) from its
    host library, on every packed input."""
    fn = host_function(case, d)
    weights = [np.load(os.path.join(d, f"{k}.npy")) for k in ("w1", "w3", "w2")]
    worst = 0.0
    for inp in case["inputs"]:
        j = inp["index"]
        load = lambda key: np.load(os.path.join(d, f"{key}{j}.npy"))  # noqa: E731
        (y,) = cuda.call_on_host(fn, [load("logits"), load("hidden"), load("init"), *weights])
        worst = max(worst, layer_err(y, load("y")))
    return 0, worst, LAYER_TOL


def case_arguments(case, d, logits):
    """The router's host arguments: the logits, and the bias if it has one."""
    if not case["options"].get("bias"):
        return [logits]
    return [logits, np.load(os.path.join(d, "bias.npy"))]


def check_router(case, d):
    """The router on every packed input, against the CPU path."""
    fn = host_function(case, d)
    mism, worst = 0, 0.0
    for inp in case["inputs"]:
        j = inp["index"]
        got = cuda.call_on_host(fn, case_arguments(
            case, d, np.load(os.path.join(d, f"in{j}.npy"))))
        for name, value in zip(ROUTER_RESULTS, got):
            expected = np.load(os.path.join(d, f"{name}{j}.npy"))
            if name in ("gates", "weights", "topk_weights"):
                if value.shape != expected.shape:
                    mism += 1
                else:
                    worst = max(worst, gate_err(value, expected))
            elif value.shape != expected.shape or \
                    (value.astype(expected.dtype) != expected).any():
                mism += 1
    return mism, worst, GATE_RTOL


def time_router(case, tokens, d):
    """Median microseconds of one router call (a stream call of the host
    code on uploaded logits) plus a synchronization."""
    fn = host_function(case, d)
    x = np.random.default_rng(0).normal(size=(1, tokens, case["experts"])).astype(np.float32)
    if case["dtype"] == "f16":
        x = x.astype(np.float16)
    elif case["dtype"] == "bf16":
        x = (x.view(np.uint32) >> 16).astype(np.uint16)
    uploaded = []
    for a in case_arguments(case, d, x):
        buffer = cuda.DeviceArray(a.nbytes)
        buffer.upload(a)
        uploaded.append((buffer, list(a.shape)))
    args = [(buffer.ptr.value, shape) for buffer, shape in uploaded]
    times = []
    for _ in range(25):
        start = time.perf_counter()
        raw = fn.call_device(args)
        cuda.synchronize()
        times.append(time.perf_counter() - start)
        for allocation, _, _ in raw:
            cuda.runtime().usmoe_rt_free_async(cuda.ctypes.c_uint64(allocation), None)
    return statistics.median(times[5:]) * 1e6


def main():
    rt = cuda.runtime()
    import ctypes
    name = ctypes.create_string_buffer(256)
    major, minor = ctypes.c_int(), ctypes.c_int()
    cuda.check(rt.usmoe_rt_device_info(name, 256, ctypes.byref(major), ctypes.byref(minor)),
               "device info")
    device = f"{name.value.decode()} (sm_{major.value}{minor.value})"
    manifest = json.load(open(os.path.join(HERE, "manifest.json")))
    tokens = manifest["bench_tokens"]
    rows, failures = [], 0
    for case in manifest["cases"]:
        d = os.path.join(HERE, case["dir"])
        if case["mode"] == "layer":
            mism, worst, tol = check_layer(case, d)
            us = float("nan")
        else:
            mism, worst, tol = check_router(case, d)
            us = time_router(case, tokens, d)
        ok = mism == 0 and worst <= tol
        failures += 0 if ok else 1
        rows.append((case["dir"], mism, worst, us, "ok" if ok else "FAIL"))
    print(f"device: {device}")
    print(f"| case | mismatches | max rel err | call+sync at {tokens} tokens (us) | result |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2e} | {r[3]:.1f} | {r[4]} |")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as error:  # no driver, no GPU, a failed launch
        print(f"gpu-check: {error}", file=sys.stderr)
        sys.exit(2)
