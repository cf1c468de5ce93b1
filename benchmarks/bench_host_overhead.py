#!/usr/bin/env python3
"""Host-side cost of one device="cuda" call: Python, argument checks,
allocations and launches, with kernels that take no time.

Runs against the fake driver (test/lib/FakeCudaDriver: launches are recorded,
not run), so it needs no GPU and measures only usmoe's own overhead per call:

    LD_LIBRARY_PATH=build/test/fake-cuda PYTHONPATH=build/python_packages \\
        /usr/bin/python3 benchmarks/bench_host_overhead.py

On a GPU machine without the fake driver it measures the same calls with
real launches (then kernel time is included unless the GPU keeps up).
"""

import statistics
import time

import numpy as np

import usmoe


class OnDevice:
    """Logits 'on the GPU' (with the fake driver, device memory is host memory)."""

    def __init__(self, a):
        self.a = a
        self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str,
                                         "data": (a.ctypes.data, False), "version": 3,
                                         "strides": None}


def time_calls(fn, repeats=2000):
    for _ in range(50):
        fn()
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats // 5):
            fn()
        samples.append((time.perf_counter() - start) / (repeats // 5) * 1e6)
    return statistics.median(samples)


def main():
    rng = np.random.default_rng(0)
    logits = OnDevice(rng.normal(size=(4096, 64)).astype(np.float32))
    rows = []
    for title, options in [("token k=8", dict(mode="token", k=8)),
                           ("unified k=1.5", dict(mode="unified", k=1.5)),
                           ("expert cf=1.25 k=2", dict(mode="expert", capacity_factor=1.25, k=2))]:
        router = usmoe.Router(device="cuda", **options)
        us = time_calls(lambda: router(logits))
        rows.append((title, us))
    e, d, f = 64, 256, 512
    w = [np.zeros(s, np.float32) for s in ((e, d, f), (e, d, f), (e, f, d))]
    layer = usmoe.MoeLayer(*w, mode="token", k=2, device="cuda")
    hidden = OnDevice(np.zeros((4096, d), np.float32))
    rows.append(("MoeLayer token k=2 (8 launches)", time_calls(lambda: layer(hidden, logits), 500)))
    from usmoe import cuda
    print(f"device: {cuda.compute_capability()}")
    print("| call | host time per call (us) |")
    print("|---|---|")
    for title, us in rows:
        print(f"| {title} | {us:.1f} |")


if __name__ == "__main__":
    main()
