"""The CPU path's settings: where the expert GEMMs of compiled layers run,
and how many threads the CPU path uses.

Built with oneDNN (Debian's libdnnl-dev; scripts/setup.sh installs it),
usmoe lowers moe.expert_ffn of f32 and bf16 layers to calls of
libusmoe_cpu_runtime.so, which runs oneDNN matmuls on every core
(convert-moe-to-loops{expert-gemm=onednn}); f16 layers, routers and
everything else are generated code. USMOE_CPU_GEMM=loops (read when a
function is compiled) keeps the expert GEMMs in generated loops.

The generated code's parallel loops (the rows of Token Choice) run on LLVM's
OpenMP runtime (libomp-22-dev; usmoe-to-cpu{openmp}); USMOE_CPU_OPENMP=0
(read when a function is compiled) runs them on the calling thread. Its
threads wait 1 ms for the next loop before they sleep (KMP_BLOCKTIME=1
unless set): the loops of one call find them awake (a sleeping thread's
wake-up cost more than a mid-size router's loops), and they do not spin
on against the GEMMs' threads or the caller's other libraries for
libomp's default 200 ms.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Optional

ENV = "USMOE_CPU_GEMM"
OPENMP_ENV = "USMOE_CPU_OPENMP"
_LIBRARY = "libusmoe_cpu_runtime.so"
# How long (ms) libomp's threads wait for the next loop before sleeping.
BLOCKTIME_MS = "1"


def _setting(name: str, default: str) -> str:
    """os.environ.get(name, default), read on every router call. For an
    unset name os.environ.get raises and catches a KeyError inside (0.75 us
    a call, two per decode step); CPython's os.environ keeps the raw
    environment in `_data`, which answers in 0.05 us."""
    raw = getattr(os.environ, "_data", None)
    if raw is None:
        return os.environ.get(name, default)
    key = _ENCODED_NAMES.get(name)
    if key is None:
        key = _ENCODED_NAMES[name] = os.environ.encodekey(name)
    value = raw.get(key)
    return default if value is None else os.environ.decodevalue(value)


_ENCODED_NAMES: dict = {}


@functools.lru_cache(maxsize=None)
def runtime_path() -> Optional[str]:
    """Where libusmoe_cpu_runtime.so is, or None (built without oneDNN).
    Looked up once: every CPU router call reads it (through key())."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.path.join(here, _LIBRARY), os.path.join(here, "..", "..", "lib", _LIBRARY)):
        if os.path.exists(path):
            return os.path.abspath(path)
    return None


def expert_gemm() -> str:
    """"onednn" when the runtime is there (unless USMOE_CPU_GEMM=loops),
    else "loops"."""
    wanted = _setting(ENV, "")
    if wanted not in ("", "onednn", "loops"):
        raise ValueError(f"{ENV} must be 'onednn' or 'loops', got {wanted!r}")
    if wanted == "loops" or runtime_path() is None:
        if wanted == "onednn":
            raise RuntimeError(f"{ENV}=onednn, but usmoe was built without oneDNN "
                               "(install libdnnl-dev and rebuild)")
        return "loops"
    return "onednn"


@functools.lru_cache(maxsize=None)
def _built_openmp_runtime() -> Optional[str]:
    try:
        from . import _build_info
    except ImportError:  # a source tree, not a build
        return None
    path = getattr(_build_info, "OPENMP_RUNTIME", "")
    return path if path and os.path.exists(path) else None


def openmp_runtime() -> Optional[str]:
    """LLVM's libomp that parallel loops run on, or None (not found at build
    time, or USMOE_CPU_OPENMP=0)."""
    if _setting(OPENMP_ENV, "1") == "0":
        return None
    return _built_openmp_runtime()


def jit(source: str, entry: str):
    """The function `entry` of `source` compiled for the CPU (usmoe-to-cpu
    with the expert GEMMs of `expert_gemm()`, parallel loops on OpenMP when
    `openmp_runtime()` is there)."""
    from ._native_loader import native
    openmp = openmp_runtime()
    if openmp:
        os.environ.setdefault("KMP_BLOCKTIME", BLOCKTIME_MS)  # before libomp starts
        _apply_threads_to(openmp)
    return native().JitFunction.for_cpu(source, entry, expert_gemm(), runtime_path() or "",
                                        openmp or "")


def key() -> tuple:
    """What a compiled CPU function depends on besides its IR."""
    return ("cpu", expert_gemm(), openmp_runtime() is not None)


@functools.lru_cache(maxsize=None)
def _runtime() -> ctypes.CDLL:
    path = runtime_path()
    if path is None:
        raise RuntimeError("usmoe was built without oneDNN: the CPU path runs on one thread")
    library = ctypes.CDLL(path)  # the instance the JIT'ed code links against
    library.usmoe_cpu_set_num_threads.argtypes = [ctypes.c_int32]
    library.usmoe_cpu_get_num_threads.restype = ctypes.c_int32
    return library


_threads = 0  # 0: the runtimes' defaults


@functools.lru_cache(maxsize=None)
def _openmp(path: str):
    """libomp (the instance JIT'ed code links against) and its own default
    thread count (OMP_NUM_THREADS or every core), read before usmoe sets
    one."""
    library = ctypes.CDLL(path)
    return library, int(library.omp_get_max_threads())


def _apply_threads_to(openmp: str) -> None:
    library, default = _openmp(openmp)
    library.omp_set_num_threads(ctypes.c_int(_threads or default))


def set_num_threads(threads: int) -> None:
    """Threads of the CPU path (the expert GEMMs and the parallel loops; 0:
    the defaults, OMP_NUM_THREADS or every core). Results do not depend on
    it. Applies to the calling thread."""
    global _threads
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise ValueError(f"threads must be an int >= 0, got {threads!r}")
    _threads = threads
    if runtime_path() is not None:
        _runtime().usmoe_cpu_set_num_threads(threads)
    openmp = openmp_runtime()
    if openmp:
        _apply_threads_to(openmp)


def get_num_threads() -> int:
    if runtime_path() is not None:
        return int(_runtime().usmoe_cpu_get_num_threads())
    return _threads or os.cpu_count() or 1
