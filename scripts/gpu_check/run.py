#!/usr/bin/env python3
"""Run half of scripts/gpu-check.sh (runs on the GPU machine: no MLIR needed).

Loads each packed cubin through libusmoe_cuda_runtime.so (ctypes), launches
the kernel on every packed input, compares with the CPU path's results
(mask exactly, gates to 1e-6 relative) and times the kernel at B*T = 16384
tokens. Prints a short table last; exit code 1 on any mismatch.
"""

import ctypes
import json
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


def launch(function, meta, logits_dev, gates_dev, mask_dev, shape):
    b, t, _ = shape
    values = (memref_params(logits_dev.ptr, shape) + memref_params(gates_dev.ptr, shape)
              + memref_params(mask_dev.ptr, shape))
    assert len(values) == len(meta["params"]), "parameter layout mismatch"
    params = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.byref(v), ctypes.c_void_p)
                                               for v in values])
    rows = b * t
    per_block = meta["rows_per_block"]
    grid = (rows + per_block - 1) // per_block
    bx, by, bz = meta["block"]
    check(rt.usmoe_rt_launch(ctypes.c_void_p(function), grid, 1, 1, bx, by, bz, 0, params),
          "launch")
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
        kernel_name, kernel_meta = next(iter(meta["kernels"].items()))
        image = open(os.path.join(d, "usmoe_kernels.cubin"), "rb").read()
        module, function = ctypes.c_void_p(), ctypes.c_void_p()
        check(rt.usmoe_rt_module_load(image, ctypes.c_size_t(len(image)), ctypes.byref(module)),
              "module load")
        check(rt.usmoe_rt_module_function(module, kernel_name.encode(), ctypes.byref(function)),
              "function")
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
            launch(function.value, kernel_meta, dl, dg, dm, shape)
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
            launch(function.value, kernel_meta, dl, dg, dm, shape)
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
