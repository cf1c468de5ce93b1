"""Driver glue for usmoe's GPU path: libusmoe_cuda_runtime.so through
ctypes (device memory, streams, the router rules) and the compiler's host
code, which launches the kernels (`HostFunction`: compiled into a shared
library, called as a stream call of the runtime).

Needs NumPy and the CUDA driver only (no MLIR) to run a host library built
elsewhere, so the same file serves `usmoe.route(..., device="cuda")` and
the run half of scripts/gpu-check.sh. Grids, budgets and kernel order are
the compiler's: nothing here launches a kernel itself.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
from typing import Optional

import numpy as np

_runtime = None


def _find_runtime() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("USMOE_CUDA_RUNTIME", ""),
                  os.path.join(here, "libusmoe_cuda_runtime.so"),
                  os.path.join(here, "..", "..", "lib", "libusmoe_cuda_runtime.so")]
    for path in candidates:
        if path and os.path.exists(path):
            return path
    raise RuntimeError("libusmoe_cuda_runtime.so not found (set USMOE_CUDA_RUNTIME)")


def runtime_path() -> str:
    """Where libusmoe_cuda_runtime.so is (RuntimeError if nowhere)."""
    return os.path.abspath(_find_runtime())


def library():
    """The runtime library, loaded but not initialized (its router rules
    need no driver)."""
    global _runtime
    if _runtime is None:
        # Global: host libraries resolve their mgpu* calls to this instance.
        lib = ctypes.CDLL(_find_runtime(), mode=ctypes.RTLD_GLOBAL)
        lib.usmoe_rt_last_error.restype = ctypes.c_char_p
        lib.usmoe_rt_router_pairs.restype = ctypes.c_int64
        lib.usmoe_rt_router_budget.restype = ctypes.c_int64
        lib.usmoe_rt_router_format.restype = ctypes.c_size_t
        lib.usmoe_rt_mgpu_failure_count.restype = ctypes.c_uint64
        _runtime = lib
    return _runtime


def runtime():
    """The runtime library, initialized (RuntimeError with the driver's reason
    when there is no driver or no GPU)."""
    check(library().usmoe_rt_init(), "CUDA")
    return _runtime


def check(status, what):
    if status != 0:
        raise RuntimeError(f"{what}: {_runtime.usmoe_rt_last_error().decode()}")


def compute_capability():
    """(major, minor) of device 0."""
    name = ctypes.create_string_buffer(256)
    major, minor = ctypes.c_int(), ctypes.c_int()
    check(runtime().usmoe_rt_device_info(name, 256, ctypes.byref(major), ctypes.byref(minor)),
          "device info")
    return major.value, minor.value


def target_for(major: int, minor: int):
    """usmoe-to-nvvm's (chip, features) for a compute capability: the
    device's own sm_XY, with a PTX ISA version that the architecture needs
    and CUDA 13's ptxas accepts."""
    if major < 7 or (major == 7 and minor < 5):
        raise RuntimeError(f"compute capability {major}.{minor} is not supported "
                           "(CUDA 13 needs sm_75 or newer)")
    if major < 10:
        features = "+ptx80"
    elif major in (10, 12):  # sm_100/101/103, sm_120/121: PTX 8.6 to 8.8
        features = "+ptx88"
    else:  # sm_110 and newer: PTX 9.0
        features = "+ptx90"
    return f"sm_{major}{minor}", features


_device_target = None


def target_for_device():
    """(chip, features) for device 0 (asked once per process)."""
    global _device_target
    if _device_target is None:
        _device_target = target_for(*compute_capability())
    return _device_target


class DeviceArray:
    """A device allocation (owned), or a view of someone else's memory (ptr
    given; `owner`, e.g. the framework tensor holding it, is kept alive)."""

    def __init__(self, nbytes: int, ptr: Optional[int] = None, owner=None):
        self.owned = ptr is None
        self.owner = owner
        self.ptr = ctypes.c_uint64(ptr or 0)
        if self.owned:
            check(runtime().usmoe_rt_malloc(ctypes.byref(self.ptr), ctypes.c_size_t(max(nbytes, 1))),
                  "cuMemAlloc")

    def upload(self, array):
        a = np.ascontiguousarray(array)
        check(runtime().usmoe_rt_copy_to_device(self.ptr, a.ctypes.data_as(ctypes.c_void_p),
                                                ctypes.c_size_t(a.nbytes)), "copy to device")

    def zero(self, nbytes: int, stream: int = 0):
        """Zeroes the first `nbytes` (a multiple of 4) on `stream`."""
        check(runtime().usmoe_rt_zero_async(self.ptr, ctypes.c_size_t(nbytes),
                                            ctypes.c_void_p(stream or None)), "memset")

    def download(self, shape, dtype):
        out = np.empty(shape, dtype)
        check(runtime().usmoe_rt_copy_to_host(out.ctypes.data_as(ctypes.c_void_p), self.ptr,
                                              ctypes.c_size_t(out.nbytes)), "copy to host")
        return out

    def __del__(self):
        if self.owned and _runtime is not None:
            _runtime.usmoe_rt_free(self.ptr)


class StreamAllocation:
    """Device memory the compiler's host code allocated on `stream` in a
    stream call (cuMemAllocAsync); freed on that stream when dropped, so the
    stream must outlive it."""

    def __init__(self, ptr: int, stream: int):
        self.ptr, self.stream = int(ptr), int(stream)

    def __del__(self):
        if self.ptr and _runtime is not None:
            _runtime.usmoe_rt_free_async(ctypes.c_uint64(self.ptr),
                                         ctypes.c_void_p(self.stream or None))


class HostFunction:
    """The compiler's host code for one GPU function, compiled into a shared
    library (`host_function`), so that it runs without MLIR: called through
    the runtime's usmoe_rt_host_call as a stream call (launches
    asynchronous on `stream`, results device memory allocated there).
    `metadata`: what compile_gpu_host returned, less the object."""

    def __init__(self, path: str, metadata: dict):
        library()  # the runtime its mgpu* calls resolve to, loaded first
        self._lib = ctypes.CDLL(os.path.abspath(path))
        self._packed = getattr(self._lib, metadata["packed"])
        self.arguments = [(element, list(shape)) for element, shape in metadata["arguments"]]
        self.results = [(element, list(shape)) for element, shape in metadata["results"]]
        self.host_reads_device = bool(metadata["host_reads_device"])
        #: The kernels it launches: name -> kind, launch shape, cost (the
        #: compiler's kernel table).
        self.kernels = json.loads(metadata["kernels"])["kernels"] if metadata["kernels"] else {}

    def call_device(self, args, stream: int = 0):
        """`args`: (device pointer, shape) of row-major arrays. Returns
        (allocation, data, shape) per result, like JitFunction.call_device:
        free `allocation` (0: owned by another result or an argument) with
        usmoe_rt_free_async on `stream`."""
        if self.host_reads_device:
            raise ValueError("this function's host code reads device memory on the host (a "
                             "moe.plan of a selection that is not a moe.route's reads its row "
                             "count back), so it cannot run as a stream call")
        return self._call(args, stream, sync=False)

    def call_sync(self, args):
        """The same, not as a stream call: the host code runs as compiled and
        waits for its kernels (any function, host_reads_device too). Free
        each `allocation` with usmoe_rt_free."""
        return self._call(args, 0, sync=True)

    def _call(self, args, stream: int, sync: bool):
        if len(args) != len(self.arguments):
            raise ValueError(f"expected {len(self.arguments)} arguments, got {len(args)}")
        for i, ((_, shape), (_, want)) in enumerate(zip(args, self.arguments)):
            if len(shape) != len(want) or any(w >= 0 and w != d for d, w in zip(shape, want)):
                raise ValueError(f"argument {i} has shape {list(shape)}, expected {want} "
                                 "(-1: any)")
        rt = runtime()
        descriptors = [(ctypes.c_int64 * (3 + 2 * len(shape)))(*_descriptor(ptr, shape))
                       for ptr, shape in args]
        sizes = [3 + 2 * len(shape) for _, shape in self.results]
        out = (ctypes.c_int64 * max(sum(sizes), 1))()
        # The packed interface: a pointer to each C-interface argument (the
        # results' descriptor first, then each argument's descriptor).
        pointers = ([ctypes.cast(out, ctypes.c_void_p)] if self.results else []) + \
            [ctypes.cast(d, ctypes.c_void_p) for d in descriptors]
        slots = (ctypes.c_void_p * len(pointers))(*pointers)
        packed = (ctypes.c_void_p * len(pointers))(
            *[ctypes.addressof(slots) + i * ctypes.sizeof(ctypes.c_void_p)
              for i in range(len(pointers))])
        message = ctypes.create_string_buffer(512)
        entry = ctypes.cast(self._packed, ctypes.c_void_p)
        if sync:
            status = rt.usmoe_rt_host_call_sync(entry, packed, message, 512)
        else:
            status = rt.usmoe_rt_host_call(entry, packed, ctypes.c_void_p(stream or None),
                                           message, 512)
        if status == _CHECK_FAILED:
            raise ValueError(message.value.decode())
        results = read_results(out, self.results, [ptr for ptr, _ in args])
        if status != 0:
            for owner, _, _ in results:
                if owner and sync:
                    rt.usmoe_rt_free(ctypes.c_uint64(owner))
                elif owner:
                    rt.usmoe_rt_free_async(ctypes.c_uint64(owner), ctypes.c_void_p(stream or None))
            raise RuntimeError(message.value.decode())
        return results


def read_results(words, signature, arguments):
    """(allocation, data, shape) of each result a packed call wrote into
    `words` (its results' descriptor; `signature`: (element, shape) per
    result), read by the runtime's usmoe_rt_read_results: `allocation` is 0
    where an earlier result or one of the `arguments` pointers owns it."""
    n = len(signature)
    ranks = (ctypes.c_int32 * max(n, 1))(*[len(shape) for _, shape in signature])
    sizes = (ctypes.c_int32 * max(n, 1))(*[_ITEMSIZE[element] for element, _ in signature])
    args = (ctypes.c_uint64 * max(len(arguments), 1))(*arguments)
    allocation = (ctypes.c_uint64 * max(n, 1))()
    data = (ctypes.c_uint64 * max(n, 1))()
    shapes = (ctypes.c_int64 * max(sum(len(shape) for _, shape in signature), 1))()
    runtime().usmoe_rt_read_results(words, ctypes.c_int32(n), ranks, sizes, args,
                                    ctypes.c_int32(len(arguments)), allocation, data, shapes)
    results, at = [], 0
    for i, (_, shape) in enumerate(signature):
        results.append((allocation[i], data[i], list(shapes[at:at + len(shape)])))
        at += len(shape)
    return results


_CHECK_FAILED = 5  # USMOE_RT_CHECK_FAILED
#: The NumPy dtype of a result element's memory (bf16: its raw uint16 bits;
#: i1: one byte).
ELEMENT_DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16, "i32": np.int32,
                  "i64": np.int64, "i1": np.bool_}
_ITEMSIZE = {element: np.dtype(dtype).itemsize for element, dtype in ELEMENT_DTYPES.items()}


def _linker():
    """The command that links a shared library ($CC, else cc)."""
    return os.environ.get("CC", "cc").split()


def build_host_library(ir: str, entry: str, chip: str, features: str, path: str) -> dict:
    """Compiles function `entry` of `ir` for the GPU (chip, features) with
    usmoe's compiler and links its host code, kernels embedded, into the
    shared library `path` ($CC, else cc, -shared). Returns the metadata
    HostFunction takes. RuntimeError where the compiler cannot load;
    _NoLinker where nothing links."""
    try:
        from ._native_loader import native
        compiled = native().compile_gpu_host(ir, entry, chip, features)
    except ImportError as error:
        raise RuntimeError(f"no cached GPU function for this router/layer on {chip}, and "
                           f"usmoe's compiler cannot load here to build one ({error}): "
                           "fill the cache (USMOE_CACHE_DIR) on a machine that has it") \
            from error
    obj = path[:-3] + ".o"
    with open(obj, "wb") as f:
        f.write(compiled.pop("object"))
    try:
        linked = subprocess.run(_linker() + ["-shared", "-o", path, obj], capture_output=True,
                                text=True)
    except FileNotFoundError as error:
        raise _NoLinker(str(error)) from error
    finally:
        os.unlink(obj)
    if linked.returncode != 0:
        raise _NoLinker(linked.stderr.strip())
    return compiled


def host_function(ir: str, entry: str, chip: str, features: str):
    """Function `entry` of `ir` on the GPU (chip, features) as a
    HostFunction: from the on-disk cache, else built here
    (build_host_library) and cached. Where no C compiler links, the host
    code is JIT-compiled in this process instead (the same calls, no disk
    cache); where usmoe's compiler cannot load (no LLVM/MLIR), only cached
    functions run."""
    from . import _kernel_cache
    try:
        path, metadata = _kernel_cache.host_library(
            ir, entry, chip, features,
            lambda path: build_host_library(ir, entry, chip, features, path))
    except _NoLinker:
        from ._native_loader import native
        return native().JitFunction.for_gpu(ir, entry, chip, features, runtime_path())
    return HostFunction(path, metadata)


class _NoLinker(Exception):
    """`cc -shared` failed or is missing: fall back to the JIT."""


def call_on_host(fn, arrays, stream: int = 0):
    """Calls a GPU function (HostFunction or JitFunction.for_gpu) on host
    arrays (NumPy; or (device pointer, shape) of an argument already on the
    GPU): uploads them, calls it on `stream` (a function whose host code
    reads device memory: not as a stream call), waits, and returns its
    results as host arrays (bf16 as raw uint16 bits); device memory freed."""
    if not isinstance(fn, HostFunction) and not any(isinstance(a, tuple) for a in arrays):
        return fn(arrays)  # the JIT stages host arrays itself
    uploaded, args = [], []
    for a in arrays:
        if isinstance(a, tuple):
            args.append((a[0], list(a[1])))
            continue
        buffer = DeviceArray(a.nbytes)
        buffer.upload(a)
        uploaded.append(buffer)
        args.append((buffer.ptr.value, list(a.shape)))
    sync = getattr(fn, "host_reads_device", False)
    raw = fn.call_sync(args) if sync else fn.call_device(args, stream)
    try:
        synchronize(stream)
        return [DeviceArray(0, ptr=data).download(shape, ELEMENT_DTYPES[element])
                for (_, data, shape), (element, _) in zip(raw, fn.results)]
    finally:
        for allocation, _, _ in raw:
            if allocation and sync:
                runtime().usmoe_rt_free(ctypes.c_uint64(allocation))
            elif allocation:
                runtime().usmoe_rt_free_async(ctypes.c_uint64(allocation),
                                              ctypes.c_void_p(stream or None))



class GpuFunction:
    """usmoe.compile(..., target="cuda"): the function's host code (from
    usmoe-to-nvvm, JIT-compiled) with its kernels on the GPU. NumPy arguments
    are staged in managed memory and results come back as NumPy arrays after
    the call has finished. Arguments already on the GPU (PyTorch or CuPy
    arrays, `__cuda_array_interface__` or DLPack; float32, float16 or
    bfloat16) make a stream call instead: the host code launches its kernels
    asynchronously on `stream` (default: the arguments' framework's current
    stream, else the legacy default stream) and its results stay on the GPU
    as CudaArray, freed on that stream when dropped. No synchronization."""

    def __init__(self, jit):
        self._jit = jit

    @property
    def arguments(self):
        return self._jit.arguments

    @property
    def results(self):
        return self._jit.results

    def __call__(self, arrays, stream=None):
        from . import _arrays
        arrays = list(arrays)
        handle = _arrays.stream_handle(stream)
        views = [_arrays.device_view(a, f"argument {i}", handle) for i, a in enumerate(arrays)]
        if not any(v is not None for v in views):
            if stream is not None:
                raise ValueError("stream applies to arguments on the GPU")
            return self._jit(arrays)
        if not all(v is not None for v in views):
            raise ValueError("arguments must all be on the GPU or all on the host")
        if handle is None:
            handle = next((v.stream for v in views if v.stream), 0)
        raw = self._jit.call_device([(v.ptr, list(v.shape)) for v in views], handle)
        return _arrays.wrap_stream_results(raw, self._jit.results, None, handle,
                                           keep_alive=[v.keep_alive for v in views])


def _descriptor(ptr: int, shape):
    """The words of a row-major memref descriptor: allocated, aligned,
    offset, sizes, strides."""
    strides, s = [], 1
    for d in reversed(shape):
        strides.insert(0, s)
        s *= d
    return [ptr, ptr, 0, *shape, *strides]


def synchronize(stream: int = 0):
    """Waits for `stream` (0: the whole context, as the legacy default
    stream's users expect)."""
    if stream:
        check(runtime().usmoe_rt_stream_synchronize(ctypes.c_void_p(stream)), "synchronize")
    else:
        check(runtime().usmoe_rt_synchronize(), "synchronize")


class RouterOptions(ctypes.Structure):
    """UsmoeRouterOptions: a router's options as given (the has_* flags say
    which), for the compiler's router rules in the runtime library."""
    _fields_ = [("mode", ctypes.c_int32), ("has_k", ctypes.c_int32), ("has_n", ctypes.c_int32),
                ("has_capacity", ctypes.c_int32), ("has_capacity_factor", ctypes.c_int32),
                ("has_alpha", ctypes.c_int32), ("expert_score", ctypes.c_int32),
                ("renormalize", ctypes.c_int32), ("bias", ctypes.c_int32),
                ("k", ctypes.c_double), ("n", ctypes.c_int64), ("capacity", ctypes.c_int64),
                ("capacity_factor", ctypes.c_double), ("alpha", ctypes.c_double),
                ("has_routed_scaling_factor", ctypes.c_int32), ("has_softcap", ctypes.c_int32),
                ("routed_scaling_factor", ctypes.c_double), ("softcap", ctypes.c_double),
                ("has_n_group", ctypes.c_int32), ("has_topk_group", ctypes.c_int32),
                ("n_group", ctypes.c_int64), ("topk_group", ctypes.c_int64)]

    MODES = {"token": 0, "expert": 1, "unified": 2}

    @classmethod
    def of(cls, mode: str, k=None, budget=None, capacity=None, capacity_factor=None,
           alpha=None, expert_score=None, renormalize=False, bias=False,
           routed_scaling_factor=None, softcap=None, n_group=None, topk_group=None):
        """From usmoe.route-style options (None: not given; `budget` is N).
        Integers must fit in int64 (ValueError)."""
        scores = {None: 0, "sigmoid": 1, "softmax_tokens": 2}
        o = cls(mode=cls.MODES[mode], expert_score=scores[expert_score],
                renormalize=bool(renormalize), bias=bool(bias))
        for name, value in (("k", k), ("capacity_factor", capacity_factor), ("alpha", alpha),
                            ("routed_scaling_factor", routed_scaling_factor),
                            ("softcap", softcap)):
            if value is not None:
                setattr(o, "has_" + name, 1)
                setattr(o, name, float(value))
        for name, field, value in (("budget", "n", budget), ("capacity", "capacity", capacity),
                                   ("n_group", "n_group", n_group),
                                   ("topk_group", "topk_group", topk_group)):
            if value is not None:
                if not -2**63 <= int(value) < 2**63:
                    raise ValueError(f"{name} must fit in a 64-bit integer, got {value}")
                setattr(o, "has_" + field, 1)
                setattr(o, field, int(value))
        return o

    def check(self, experts=None, tokens=None):
        """ValueError with the verifier's words unless the options are valid
        for E experts and T tokens (None: not known yet)."""
        message = ctypes.create_string_buffer(512)
        if library().usmoe_rt_router_check(ctypes.byref(self), -1 if experts is None else experts,
                                           -1 if tokens is None else tokens, message, 512):
            raise ValueError(message.value.decode())

    def attribute(self) -> str:
        """The router attribute as the compiler prints it, for IR text."""
        size = library().usmoe_rt_router_format(ctypes.byref(self), None, 0) + 1
        text = ctypes.create_string_buffer(size)
        library().usmoe_rt_router_format(ctypes.byref(self), text, size)
        return text.value.decode()

    def set_budget(self, tokens: int, experts: int) -> int:
        """What each select set gets: N per sequence, C per expert."""
        return library().usmoe_rt_router_budget(ctypes.byref(self), tokens, experts)

    def pairs(self, shape) -> int:
        """M, the (token, expert) pairs selected in a [B, T, E] batch: known
        on the host before anything runs, so that the plan needs no
        device-to-host read of its row count."""
        b, t, e = shape
        return library().usmoe_rt_router_pairs(ctypes.byref(self), b, t, e)


def selected_pairs(mode: str, options: dict, shape) -> int:
    """M, the number of (token, expert) pairs a router selects."""
    return RouterOptions.of(mode, k=options.get("k"), budget=options.get("budget"),
                            capacity=options.get("capacity"),
                            capacity_factor=options.get("capacity_factor")).pairs(shape)
