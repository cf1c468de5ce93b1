#!/usr/bin/env python3
"""Run half of scripts/gpu-check.sh (runs on the GPU machine: no MLIR needed).

Loads each packed cubin through libusmoe_cuda_runtime.so with usmoe's own
launcher (usmoe/cuda.py, packed as usmoe_cuda.py), runs every packed input,
compares with the CPU path's results (masks, plans and top-k ids exactly,
gates, weights and layer outputs within tolerances.py) and times each router at B*T = 16384
tokens. Prints a short table last; exit code 1 on any mismatch, 2 when
there is no GPU.
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

ITEMSIZE = {"f32": 4, "f16": 2, "bf16": 2}


def check_layer(case, mod, d):
    """route -> plan -> dispatch -> experts -> combine, as usmoe.MoeLayer
    launches them."""
    weights_host = {k: np.load(os.path.join(d, f"{k}.npy")) for k in ("w1", "w3", "w2")}
    dweights = {}
    for k, v in weights_host.items():
        dweights[k] = cuda.DeviceArray(v.nbytes)
        dweights[k].upload(v)
    mism, worst = 0, 0.0
    for inp in case["inputs"]:
        j = inp["index"]
        load = lambda key: np.load(os.path.join(d, f"{key}{j}.npy"))  # noqa: E731
        logits, hidden, init = load("logits"), load("hidden"), load("init")
        device = {}
        for key, value in dict(logits=logits, hidden=hidden, init=init).items():
            device[key] = cuda.DeviceArray(value.nbytes)
            device[key].upload(value)
        y, (_, _, offsets, ids, _, _, _, _) = cuda.launch_moe_layer(
            mod, "unified", case["options"], device["logits"], logits.shape, device["hidden"],
            device["init"], dweights["w1"], dweights["w3"], dweights["w2"], hidden.shape[1],
            case["ffn"], 4)
        mod.synchronize()
        e = logits.shape[2]
        m = cuda.selected_pairs("unified", case["options"], logits.shape)
        mism += int((offsets.download((e + 1,), np.int32) != load("offsets")).sum())
        got_ids = ids.download((m,), np.int32)
        mism += int(got_ids.size != load("ids").size or (got_ids != load("ids")).any())
        worst = max(worst, layer_err(y.download(init.shape, np.float32), load("y")))
    return mism, worst, LAYER_TOL


def case_bias(case, d):
    """The packed bias vector on the device, for the sigmoid_bias variant."""
    if not case["options"].get("bias"):
        return None
    host = np.load(os.path.join(d, "bias.npy"))
    dev = cuda.DeviceArray(host.nbytes)
    dev.upload(host)
    return dev


def router_inputs(case, d):
    """Per packed input of a router case: its shape, the CPU path's result
    of a name (`want`), and the logits uploaded to the device."""
    item = ITEMSIZE[case["dtype"]]
    for inp in case["inputs"]:
        j, shape = inp["index"], tuple(inp["shape"])
        dl = cuda.DeviceArray(int(np.prod(shape)) * item)
        dl.upload(np.load(os.path.join(d, f"in{j}.npy")))
        yield shape, (lambda key, j=j: np.load(os.path.join(d, f"{key}{j}.npy"))), dl


def check_router(case, mod, d):
    """route, plan (M from the host-side formula, as usmoe.route does) and
    for Token Choice topk_list, against the CPU path."""
    bias = case_bias(case, d)
    mism, worst = 0, 0.0
    for shape, want, dl in router_inputs(case, d):
        n = int(np.prod(shape))
        dg, dm = cuda.DeviceArray(n * 4), cuda.DeviceArray(n)
        lists = topk = None
        if case["mode"] == "token":
            k = int(case["options"]["k"])
            lists = (cuda.DeviceArray(n // shape[2] * k * 4), cuda.DeviceArray(n // shape[2] * k * 4))
        cuda.launch_route(mod, case["mode"], case["options"], dl, dg, dm, shape, bias=bias,
                          lists=lists)
        m = cuda.selected_pairs(case["mode"], case["options"], shape)
        offsets, ids, weights, _ = cuda.launch_plan(mod, dg, dm, shape, rows=m)
        if lists is not None:
            topk = cuda.launch_topk_list(mod, dg, dm, shape, k, out=lists)
        mod.synchronize()
        want_g = want("gates")
        mism += int((dm.download(shape, np.uint8).astype(bool) != want("mask")).sum())
        got_g = dg.download(shape, np.float32)
        worst = max(worst, gate_err(got_g, want_g))
        e = shape[2]
        mism += int((offsets.download((e + 1,), np.int32) != want("offsets")).sum())
        mism += int(m != want("ids").size)
        if m == want("ids").size:
            mism += int((ids.download((m,), np.int32) != want("ids")).sum())
            worst = max(worst, gate_err(weights.download((m,), np.float32), want("weights")))
        if topk is not None:
            k = int(case["options"]["k"])
            rows = shape[0] * shape[1]
            mism += int((topk[0].download((rows, k), np.int32) != want("topk_ids")).sum())
            worst = max(worst, gate_err(topk[1].download((rows, k), np.float32),
                                        want("topk_weights")))
    return mism, worst, GATE_RTOL


DTYPES = {"f32": np.float32, "i1": np.uint8, "i32": np.int32}


def check_router_host(case, d):
    """The same router through the compiler's own host code (packed as a
    shared library: its launch sequence, budgets and M, nothing replayed
    here), run as a stream call; against the CPU path."""
    host = case["host"]
    lib = cuda.HostLibrary(os.path.join(d, host["library"]), host["entry"], host["results"])
    bias = case_bias(case, d)
    mism, worst = 0, 0.0
    for shape, want, dl in router_inputs(case, d):
        args = [(dl.ptr.value, list(shape))]
        if bias is not None:
            args.append((bias.ptr.value, [shape[2]]))
        out = lib(args)
        cuda.synchronize()
        got = [cuda.DeviceArray(0, ptr=data).download(dims, DTYPES[element])
               for (_, data, dims), (element, _) in zip(out, lib.results)]
        for allocation, _, _ in out:
            cuda.runtime().usmoe_rt_free_async(cuda.ctypes.c_uint64(allocation), None)
        names = ["gates", "mask", "offsets", "ids", "weights", "topk_ids", "topk_weights"]
        for name, value in zip(names, got):
            expected = want(name)
            if name in ("gates", "weights", "topk_weights"):
                if value.shape != expected.shape:
                    mism += 1
                else:
                    worst = max(worst, gate_err(value, expected))
            elif value.shape != expected.shape or \
                    (value.astype(expected.dtype) != expected).any():
                mism += 1
    return mism, worst, GATE_RTOL


def time_router(case, mod, tokens, d):
    shape = (1, tokens, case["experts"])
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    if case["dtype"] == "f16":
        x = x.astype(np.float16)
    elif case["dtype"] == "bf16":
        x = (x.view(np.uint32) >> 16).astype(np.uint16)
    n = x.size
    dl, dg, dm = cuda.DeviceArray(x.nbytes), cuda.DeviceArray(n * 4), cuda.DeviceArray(n)
    dl.upload(x)
    bias = case_bias(case, d)
    lists = None
    if case["mode"] == "token":
        k = int(case["options"]["k"])
        lists = (cuda.DeviceArray(tokens * k * 4), cuda.DeviceArray(tokens * k * 4))
    times = []
    for _ in range(25):
        start = time.perf_counter()
        cuda.launch_route(mod, case["mode"], case["options"], dl, dg, dm, shape, bias=bias,
                          lists=lists)
        mod.synchronize()
        times.append(time.perf_counter() - start)
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
        mod = cuda.KernelModule(open(os.path.join(d, "usmoe_kernels.cubin"), "rb").read(),
                                open(os.path.join(d, "usmoe_kernels.json")).read())
        if case["mode"] == "layer":
            mism, worst, tol = check_layer(case, mod, d)
            us = float("nan")
        else:
            mism, worst, tol = check_router(case, mod, d)
            us = time_router(case, mod, tokens, d)
        ok = mism == 0 and worst <= tol
        failures += 0 if ok else 1
        rows.append((case["dir"], mism, worst, us, "ok" if ok else "FAIL"))
        if "host" in case:
            mism, worst, _ = check_router_host(case, d)
            ok = mism == 0 and worst <= tol
            failures += 0 if ok else 1
            rows.append((case["dir"] + " (host code)", mism, worst, float("nan"),
                         "ok" if ok else "FAIL"))
    print(f"device: {device}")
    print(f"| case | mismatches | max rel err | launch+sync at {tokens} tokens (us) | result |")
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
