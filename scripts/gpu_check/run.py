#!/usr/bin/env python3
"""Run half of scripts/gpu-check.sh (runs on the GPU machine: no MLIR needed).

Loads each packed cubin through libusmoe_cuda_runtime.so (ctypes), launches
the kernel on every packed input, compares with the CPU path's results
(mask exactly, gates to 1e-6 relative) and times the kernel at B*T = 16384
tokens. Prints a short table last; exit code 1 on any mismatch.
"""

import ctypes
import json
import math
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
rt = ctypes.CDLL(os.path.join(HERE, "libusmoe_cuda_runtime.so"))
rt.usmoe_rt_last_error.restype = ctypes.c_char_p
ITEMSIZE = {"f32": 4, "f16": 2, "bf16": 2}


def check(status, what):
    if status != 0:
        raise RuntimeError(f"{what}: {rt.usmoe_rt_last_error().decode()}")


class DeviceArray:
    def __init__(self, nbytes):
        self.ptr = ctypes.c_uint64()
        check(rt.usmoe_rt_malloc(ctypes.byref(self.ptr), ctypes.c_size_t(nbytes)), "malloc")

    def upload(self, array):
        a = np.ascontiguousarray(array)
        check(rt.usmoe_rt_copy_to_device(self.ptr, a.ctypes.data_as(ctypes.c_void_p),
                                         ctypes.c_size_t(a.nbytes)), "copy to device")

    def download(self, shape, dtype):
        out = np.empty(shape, dtype)
        check(rt.usmoe_rt_copy_to_host(out.ctypes.data_as(ctypes.c_void_p), self.ptr,
                                       ctypes.c_size_t(out.nbytes)), "copy to host")
        return out

    def __del__(self):
        rt.usmoe_rt_free(self.ptr)


def memref_params(ptr, shape):
    """allocated, aligned, offset, sizes, strides (row-major) of a memref."""
    strides, s = [], 1
    for d in reversed(shape):
        strides.insert(0, s)
        s *= d
    return [ctypes.c_uint64(ptr.value), ctypes.c_uint64(ptr.value), ctypes.c_int64(0)] + \
           [ctypes.c_int64(d) for d in shape] + [ctypes.c_int64(d) for d in strides]


def launch_one(function, meta, values, grid):
    assert len(values) == len(meta["params"]), "parameter layout mismatch"
    if grid == 0:
        return
    params = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.byref(v), ctypes.c_void_p)
                                               for v in values])
    bx, by, bz = meta["block"]
    check(rt.usmoe_rt_launch(ctypes.c_void_p(function), grid, 1, 1, bx, by, bz, 0, params),
          "launch")


def budget(case, t):
    """N (Unified) or C (Expert Choice) exactly as the spec defines them."""
    o, e = case["options"], case["experts"]
    if case["mode"] == "unified":
        return int(o["budget"]) if "budget" in o else int(math.floor(float(o["k"]) * t))
    if "capacity" in o:
        return int(o["capacity"])
    return max(1, min(t, math.ceil(o["capacity_factor"] * t * o["k"] / e)))


def memref_rank(type_text):
    """Rank of a printed memref type: memref<?x64xf32> -> 2."""
    return len(type_text[len("memref<"):-1].split("x")) - 1


def kernel_by_kind(kernels, kind):
    for function, meta in kernels.values():
        if meta["kind"] == kind:
            return function, meta
    raise KeyError(kind)


def run_layer(case, kernels, j, d):
    """route (scores, select) -> plan (count, scan, read M, fill) -> dispatch
    -> combine, as the lowered host code does; returns (y, offsets, ids)."""
    logits = np.load(os.path.join(d, f"logits{j}.npy"))
    hidden = np.load(os.path.join(d, f"hidden{j}.npy"))
    init = np.load(os.path.join(d, f"init{j}.npy"))
    _, t, e = logits.shape
    width = hidden.shape[1]
    dl, dg, dm = DeviceArray(logits.nbytes), DeviceArray(logits.size * 4), DeviceArray(logits.size)
    dl.upload(logits)
    case_like = {"mode": "unified", "options": case["options"], "experts": e}
    route = {k: v for k, v in kernels.items() if v[1]["kind"].startswith(("scores_", "select_"))}
    launch(case_like, route, dl, dg, dm, logits.shape)
    doff = DeviceArray((e + 1) * 4)
    gp, mp = memref_params(dg.ptr, logits.shape), memref_params(dm.ptr, logits.shape)
    op = memref_params(doff.ptr, (e + 1,))
    f, meta = kernel_by_kind(kernels, "plan_count")
    launch_one(f, meta, mp + op, e)
    f, meta = kernel_by_kind(kernels, "plan_scan")
    launch_one(f, meta, op, 1)
    check(rt.usmoe_rt_synchronize(), "synchronize")
    offsets = doff.download((e + 1,), np.int32)
    m = int(offsets[-1])
    dids, dw = DeviceArray(max(m, 1) * 4), DeviceArray(max(m, 1) * 4)
    ip, wp = memref_params(dids.ptr, (m,)), memref_params(dw.ptr, (m,))
    f, meta = kernel_by_kind(kernels, "plan_fill")
    launch_one(f, meta, gp + mp + op + ip + wp, e)
    dh, dx = DeviceArray(hidden.nbytes), DeviceArray(max(m, 1) * width * 4)
    dh.upload(hidden)
    hp, xp = memref_params(dh.ptr, hidden.shape), memref_params(dx.ptr, (m, width))
    f, meta = kernel_by_kind(kernels, "dispatch")
    launch_one(f, meta, hp + ip + xp, m)
    dinit, dy = DeviceArray(init.nbytes), DeviceArray(init.nbytes)
    dinit.upload(init)
    np_, yp = memref_params(dinit.ptr, init.shape), memref_params(dy.ptr, init.shape)
    f, meta = kernel_by_kind(kernels, "combine")
    launch_one(f, meta, xp + ip + wp + op + np_ + yp, t)
    check(rt.usmoe_rt_synchronize(), "synchronize")
    return dy.download(init.shape, np.float32), offsets, dids.download((m,), np.int32)


def launch(case, kernels, logits_dev, gates_dev, mask_dev, shape):
    """The launch sequence the lowered host code performs for this route."""
    b, t, e = shape
    lp, gp, mp = (memref_params(d.ptr, shape) for d in (logits_dev, gates_dev, mask_dev))
    for name, (function, meta) in kernels.items():
        kind = meta["kind"]
        if kind == "route_token":
            launch_one(function, meta, lp + gp + mp, -(-(b * t) // 4))
        elif kind.startswith("scores_"):
            launch_one(function, meta, lp + gp, -(-(b * t) // 4))
    for name, (function, meta) in kernels.items():
        if meta["kind"] == "mix_softmax_tokens":
            launch_one(function, meta, lp + gp, -(-(b * e) // 128))
    for name, (function, meta) in kernels.items():
        if meta["kind"].startswith("select_"):
            sets = b if meta["kind"] == "select_sequence" else b * e
            launch_one(function, meta, gp + mp + [ctypes.c_int64(budget(case, t))], sets)
    check(rt.usmoe_rt_synchronize(), "synchronize")


def main():
    check(rt.usmoe_rt_init(), "init")
    name = ctypes.create_string_buffer(256)
    major, minor = ctypes.c_int(), ctypes.c_int()
    check(rt.usmoe_rt_device_info(name, 256, ctypes.byref(major), ctypes.byref(minor)), "info")
    device = f"{name.value.decode()} (sm_{major.value}{minor.value})"
    manifest = json.load(open(os.path.join(HERE, "manifest.json")))
    rows, failures = [], 0
    for case in manifest["cases"]:
        d = os.path.join(HERE, case["dir"])
        meta = json.load(open(os.path.join(d, "usmoe_kernels.json")))
        image = open(os.path.join(d, "usmoe_kernels.cubin"), "rb").read()
        module = ctypes.c_void_p()
        check(rt.usmoe_rt_module_load(image, ctypes.c_size_t(len(image)), ctypes.byref(module)),
              "module load")
        kernels = {}
        for kernel_name, kernel_meta in sorted(meta["kernels"].items()):
            function = ctypes.c_void_p()
            check(rt.usmoe_rt_module_function(module, kernel_name.encode(),
                                              ctypes.byref(function)), "function")
            kernels[kernel_name] = (function.value, kernel_meta)
        if case["mode"] == "layer":
            mism, worst = 0, 0.0
            for inp in case["inputs"]:
                j = inp["index"]
                y, offsets, ids = run_layer(case, kernels, j, d)
                mism += int((offsets != np.load(os.path.join(d, f"offsets{j}.npy"))).sum())
                want_ids = np.load(os.path.join(d, f"ids{j}.npy"))
                mism += int(ids.size != want_ids.size or (ids != want_ids).any())
                want_y = np.load(os.path.join(d, f"y{j}.npy"))
                worst = max(worst, float((np.abs(y - want_y) / np.maximum(np.abs(want_y), 1e-3)).max(initial=0)))
            ok = mism == 0 and worst <= 1e-5
            failures += 0 if ok else 1
            rows.append((case["dir"], mism, worst, float("nan"), "ok" if ok else "FAIL"))
            rt.usmoe_rt_module_unload(module)
            continue
        item = ITEMSIZE[case["dtype"]]
        mism, worst = 0, 0.0
        for inp in case["inputs"]:
            j, shape = inp["index"], tuple(inp["shape"])
            logits = np.load(os.path.join(d, f"in{j}.npy"))
            want_g = np.load(os.path.join(d, f"gates{j}.npy"))
            want_m = np.load(os.path.join(d, f"mask{j}.npy"))
            n = int(np.prod(shape))
            dl, dg, dm = DeviceArray(n * item), DeviceArray(n * 4), DeviceArray(n)
            dl.upload(logits)
            launch(case, kernels, dl, dg, dm, shape)
            got_g = dg.download(shape, np.float32)
            got_m = dm.download(shape, np.uint8).astype(bool)
            mism += int((got_m != want_m).sum())
            denom = np.maximum(np.abs(want_g), 1e-30)
            worst = max(worst, float((np.abs(got_g - want_g) / denom)[want_g != 0].max(initial=0)))
        # Timing at B*T = bench_tokens.
        tokens = manifest["bench_tokens"]
        shape = (1, tokens, case["experts"])
        n = int(np.prod(shape))
        x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        if case["dtype"] == "f16":
            x = x.astype(np.float16)
        elif case["dtype"] == "bf16":
            x = (x.view(np.uint32) >> 16).astype(np.uint16)
        dl, dg, dm = DeviceArray(n * item), DeviceArray(n * 4), DeviceArray(n)
        dl.upload(x)
        times = []
        for _ in range(25):
            start = time.perf_counter()
            launch(case, kernels, dl, dg, dm, shape)
            times.append(time.perf_counter() - start)
        us = statistics.median(times[5:]) * 1e6
        ok = mism == 0 and worst <= 1e-6
        failures += 0 if ok else 1
        rows.append((case["dir"], mism, worst, us, "ok" if ok else "FAIL"))
        rt.usmoe_rt_module_unload(module)
    print(f"device: {device}")
    print(f"| case | mask mismatches | max gate rel err | launch+sync at {manifest['bench_tokens']} tokens (us) | result |")
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
