"""The GPU emulator mode: with USMOE_GPU_EMULATOR=1, device="cuda" runs the
GPU path's kernels on the CPU.

The very kernels and launches that usmoe-to-nvvm compiles for a GPU (the
same convert-moe-to-gpu output) are lowered by usmoe-to-gpu-emu: every GPU
thread runs as a fiber of libusmoe_gpu_emulator.so, with barriers, warp
shuffles and shared memory as the hardware defines them, and checks for data
races, reads of uninitialized shared memory, divergent barriers, partial-warp
shuffles, out-of-bounds accesses and launch shapes beyond hardware limits. A
failed check raises RuntimeError naming the kernel, the check and the IR
location. USMOE_EMU_SEED=<n> randomizes the order of blocks and of threads
after each barrier. Arrays go in and come out on the host (NumPy, or CPU
tensors of the caller's framework), as in Triton's TRITON_INTERPRET=1 mode.
"""

from __future__ import annotations

import os

ENV = "USMOE_GPU_EMULATOR"


def enabled() -> bool:
    """Whether device="cuda" runs on the emulator (read at each call)."""
    return os.environ.get(ENV, "") not in ("", "0")


def runtime_path() -> str:
    """Where libusmoe_gpu_emulator.so is (RuntimeError if nowhere)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.environ.get("USMOE_GPU_EMULATOR_RUNTIME", ""),
                 os.path.join(here, "libusmoe_gpu_emulator.so"),
                 os.path.join(here, "..", "..", "lib", "libusmoe_gpu_emulator.so")):
        if path and os.path.exists(path):
            return os.path.abspath(path)
    raise RuntimeError("libusmoe_gpu_emulator.so not found (set USMOE_GPU_EMULATOR_RUNTIME)")


def jit(source: str, entry: str):
    """The function `entry` of `source` compiled for the emulator: takes and
    returns host arrays, like a CPU JitFunction."""
    from ._native_loader import native
    return native().JitFunction.for_emulator(source, entry, runtime_path())
