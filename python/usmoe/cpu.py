"""The CPU path's settings: where the expert GEMMs of compiled layers run,
and how many threads they use.

Built with oneDNN (Debian's libdnnl-dev; scripts/setup.sh installs it),
usmoe lowers moe.expert_ffn of f32 and bf16 layers to calls of
libusmoe_cpu_runtime.so, which runs oneDNN matmuls on every core
(convert-moe-to-loops{expert-gemm=onednn}); f16 layers, routers and
everything else are generated code. USMOE_CPU_GEMM=loops (read when a
function is compiled) keeps the expert GEMMs in generated loops.
"""

from __future__ import annotations

import ctypes
import os
from typing import Optional

ENV = "USMOE_CPU_GEMM"
_LIBRARY = "libusmoe_cpu_runtime.so"


def runtime_path() -> Optional[str]:
    """Where libusmoe_cpu_runtime.so is, or None (built without oneDNN)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.path.join(here, _LIBRARY), os.path.join(here, "..", "..", "lib", _LIBRARY)):
        if os.path.exists(path):
            return os.path.abspath(path)
    return None


def expert_gemm() -> str:
    """"onednn" when the runtime is there (unless USMOE_CPU_GEMM=loops),
    else "loops"."""
    wanted = os.environ.get(ENV, "")
    if wanted not in ("", "onednn", "loops"):
        raise ValueError(f"{ENV} must be 'onednn' or 'loops', got {wanted!r}")
    if wanted == "loops" or runtime_path() is None:
        if wanted == "onednn":
            raise RuntimeError(f"{ENV}=onednn, but usmoe was built without oneDNN "
                               "(install libdnnl-dev and rebuild)")
        return "loops"
    return "onednn"


def jit(source: str, entry: str):
    """The function `entry` of `source` compiled for the CPU (usmoe-to-cpu
    with the expert GEMMs of `expert_gemm()`)."""
    from ._native_loader import native
    return native().JitFunction.for_cpu(source, entry, expert_gemm(), runtime_path() or "")


def _runtime() -> ctypes.CDLL:
    path = runtime_path()
    if path is None:
        raise RuntimeError("usmoe was built without oneDNN: the CPU path runs on one thread")
    library = ctypes.CDLL(path)  # the instance the JIT'ed code links against
    library.usmoe_cpu_set_num_threads.argtypes = [ctypes.c_int32]
    library.usmoe_cpu_get_num_threads.restype = ctypes.c_int32
    return library


def set_num_threads(threads: int) -> None:
    """Threads of the expert GEMMs (0: OpenMP's default, OMP_NUM_THREADS or
    every core). Results do not depend on it."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise ValueError(f"threads must be an int >= 0, got {threads!r}")
    _runtime().usmoe_cpu_set_num_threads(threads)


def get_num_threads() -> int:
    return int(_runtime().usmoe_cpu_get_num_threads())
