"""Launching usmoe's GPU kernels through libusmoe_cuda_runtime.so (ctypes).

Needs NumPy and the CUDA driver only (no MLIR), so the same file serves
`usmoe.route(..., device="cuda")` and the run half of scripts/gpu-check.sh.
The launch sequences mirror the host code that convert-moe-to-gpu emits;
kernel parameters follow the metadata (a memref argument expands to
allocated ptr, aligned ptr, offset, sizes, strides).
"""

from __future__ import annotations

import ctypes
import json
import os
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
        lib = ctypes.CDLL(_find_runtime())
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


class HostLibrary:
    """The compiler's host code for one function, compiled ahead of time
    into a shared library (usmoe-to-nvvm, then mlir-translate and clang
    -shared against libusmoe_cuda_runtime.so: scripts/gpu_check/pack.py), so
    a machine without MLIR runs it: `_mlir_ciface_<entry>` is called through
    ctypes as a stream call of the runtime (launches asynchronous on
    `stream`, results device memory allocated there). `results`: the
    (element, rank) of each result."""

    def __init__(self, path: str, entry: str, results):
        library()  # the runtime the library links against, loaded first
        self._lib = ctypes.CDLL(os.path.abspath(path))
        self._fn = getattr(self._lib, "_mlir_ciface_" + entry)
        self._fn.restype = None
        self.results = [(element, int(rank)) for element, rank in results]

    def __call__(self, args, stream: int = 0):
        """`args`: (device pointer, shape) of row-major arrays. Returns
        (allocation, data, shape) per result: free `allocation` (0: owned by
        another result) with usmoe_rt_free_async on `stream`."""
        rt = runtime()
        descriptors = [(ctypes.c_int64 * (3 + 2 * len(shape)))(*_descriptor(ptr, shape))
                       for ptr, shape in args]
        sizes = [3 + 2 * rank for _, rank in self.results]
        out = (ctypes.c_int64 * max(sum(sizes), 1))()
        failures = rt.usmoe_rt_mgpu_failure_count()
        rt.usmoe_rt_mgpu_begin_stream_call(ctypes.c_void_p(stream or None))
        try:
            call_args = ([ctypes.byref(out)] if self.results else []) + \
                [ctypes.byref(d) for d in descriptors]
            self._fn(*call_args)
        finally:
            rt.usmoe_rt_mgpu_end_stream_call()
        results, owned, at = [], set(), 0
        for (element, rank), size in zip(self.results, sizes):
            allocated, aligned, offset = out[at], out[at + 1], out[at + 2]
            itemsize = np.dtype(_RESULT_DTYPES[element] if element != "bf16" else np.uint16) \
                .itemsize
            shape = [out[at + 3 + d] for d in range(rank)]
            owner = allocated if allocated and allocated not in owned else 0
            owned.add(allocated)
            results.append((owner, aligned + offset * itemsize, shape))
            at += size
        if rt.usmoe_rt_mgpu_failure_count() != failures:
            for owner, _, _ in results:
                if owner:
                    rt.usmoe_rt_free_async(ctypes.c_uint64(owner), ctypes.c_void_p(stream or None))
            message = ctypes.create_string_buffer(512)
            rt.usmoe_rt_mgpu_last_failure(message, ctypes.c_size_t(512))
            raise RuntimeError(f"the GPU function failed: {message.value.decode()}")
        return results


_RESULT_DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": "bfloat16", "i32": np.int32,
                  "i64": np.int64, "i1": np.bool_}


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
        from .cuda_array import CudaArray
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
        out = []
        for (allocation, data, shape), (element, _) in zip(raw, self._jit.results):
            owner = StreamAllocation(allocation, handle) if allocation else None
            out.append(CudaArray(DeviceArray(0, ptr=data, owner=owner), shape,
                                 _RESULT_DTYPES[element], handle,
                                 keep_alive=[v.keep_alive for v in views if v.keep_alive]))
        return out


def _descriptor(ptr: int, shape):
    """The words of a row-major memref descriptor: allocated, aligned,
    offset, sizes, strides."""
    strides, s = [], 1
    for d in reversed(shape):
        strides.insert(0, s)
        s *= d
    return [ptr, ptr, 0, *shape, *strides]


def memref_params(array: DeviceArray, shape):
    """A memref's descriptor as kernel parameters (pointers as u64)."""
    words = _descriptor(array.ptr.value, shape)
    return [ctypes.c_uint64(w) for w in words[:2]] + [ctypes.c_int64(w) for w in words[2:]]


class KernelModule:
    """A loaded cubin/fatbin/PTX image and its kernels, by kind."""

    def __init__(self, image: bytes, metadata):
        rt = runtime()
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        self.module = ctypes.c_void_p()
        check(rt.usmoe_rt_module_load(image, ctypes.c_size_t(len(image)), ctypes.byref(self.module)),
              "cuModuleLoadData")
        self.kernels = {}
        for name, meta in sorted(metadata["kernels"].items()):
            function = ctypes.c_void_p()
            check(rt.usmoe_rt_module_function(self.module, name.encode(), ctypes.byref(function)),
                  "cuModuleGetFunction")
            self.kernels[name] = (function.value, meta)

    def by_kind(self, kind):
        return [(f, m) for f, m in self.kernels.values() if m["kind"] == kind or
                m["kind"].startswith(kind + "_")]

    def by_exact_kind(self, kind):
        return [(f, m) for f, m in self.kernels.values() if m["kind"] == kind]

    def launch(self, function, meta, values, grid, stream: int = 0):
        """Launches on `stream` (a CUstream handle; 0 = the legacy default
        stream), asynchronously."""
        assert len(values) == len(meta["params"]), "kernel parameter layout mismatch"
        if grid == 0:
            return
        # cuLaunchKernel takes the address of each parameter's value.
        params = (ctypes.c_void_p * len(values))(*map(ctypes.addressof, values))
        bx, by, bz = meta["block"]
        check(runtime().usmoe_rt_launch_on_stream(ctypes.c_void_p(function), grid, 1, 1, bx, by,
                                                  bz, 0, ctypes.c_void_p(stream or None),
                                                  params), "cuLaunchKernel")

    def synchronize(self, stream: int = 0):
        synchronize(stream)


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


def _options(mode: str, options: dict) -> RouterOptions:
    return RouterOptions.of(mode, k=options.get("k"), budget=options.get("budget"),
                            capacity=options.get("capacity"),
                            capacity_factor=options.get("capacity_factor"))


def budget(mode: str, options: dict, tokens: int, experts: int) -> int:
    """N (Unified) or C (Expert Choice), by the compiler's rules."""
    return _options(mode, options).set_budget(tokens, experts)


def selected_pairs(mode: str, options: dict, shape) -> int:
    """M, the number of (token, expert) pairs a router selects."""
    return _options(mode, options).pairs(shape)


def launch_route(mod: KernelModule, mode: str, options: dict, logits: DeviceArray,
                 gates: DeviceArray, mask: DeviceArray, shape, bias: Optional[DeviceArray] = None,
                 stream: int = 0, alloc=DeviceArray, lists=None):
    """moe.route: the token kernel, or scores (+ column mix) then select.
    `alloc(nbytes)` makes the multi-block select's workspace (stream-ordered
    memory, or a DeviceArray whose free waits for the device). `lists`: the
    [B*T, k] (ids, weights) buffers a Token Choice kernel that writes its
    top-k lists itself fills."""
    b, t, e = shape
    if b * t == 0:
        return  # nothing to score; the select kernels would scan empty sets
    lp, gp, mp = (memref_params(x, shape) for x in (logits, gates, mask))
    for f, meta in mod.by_kind("route_token"):
        extra = memref_params(bias, (e,)) if meta["kind"] == "route_token_bias" else []
        if meta.get("lists"):
            k = meta["k"]
            extra = extra + memref_params(lists[0], (b * t, k)) + \
                memref_params(lists[1], (b * t, k))
        mod.launch(f, meta, lp + gp + mp + extra, -(-(b * t) // 4), stream)
    for f, meta in mod.by_kind("scores"):
        mod.launch(f, meta, lp + gp, -(-(b * t) // 4), stream)
    for f, meta in mod.by_kind("mix_softmax_tokens"):
        mod.launch(f, meta, lp + gp, b * e, stream)
    for kind in ("select_sequence", "select_column"):
        for f, meta in mod.by_exact_kind(kind):
            sets, count = (b, t * e) if kind == "select_sequence" else (b * e, t)
            n = ctypes.c_int64(budget(mode, options, t, e))
            if ("chunk" not in meta or count <= max(meta["chunk"], meta["spread"])
                    or sets >= meta["spread_max_sets"]):
                mod.launch(f, meta, gp + mp + [n], sets, stream)
                continue
            # Few large sets: each spread over its chunks' blocks.
            grid = sets * -(-count // meta["chunk"])
            words = sets * meta["workspace_words"]
            workspace = alloc(words * 4)
            wp = memref_params(workspace, (words,))
            (fz, mz), = mod.by_exact_kind(kind + "_zero")
            mod.launch(fz, mz, wp, -(-words // mz["block"][0]), stream)
            (fh, mh), = mod.by_exact_kind(kind + "_histogram")
            for digit in range(meta["passes"]):
                mod.launch(fh, mh, gp + wp + [n, ctypes.c_int64(digit)], grid, stream)
            (fm, mm), = mod.by_exact_kind(kind + "_mark")
            mod.launch(fm, mm, gp + mp + wp, grid, stream)


def launch_plan(mod: KernelModule, gates: DeviceArray, mask: DeviceArray, shape,
                rows: Optional[int] = None, stream: int = 0, alloc=DeviceArray):
    """moe.plan: count and fill over tiles of rows, scan in between. `rows`
    is M if the caller knows it (selected_pairs); otherwise M is read back
    from the device (a synchronization). `alloc(nbytes)` makes the result
    buffers. Returns (offsets, ids, weights) device arrays and M."""
    b, t, e = shape
    offsets = alloc((e + 1) * 4)
    gp, mp = memref_params(gates, shape), memref_params(mask, shape)
    op = memref_params(offsets, (e + 1,))
    (fc, mc), = mod.by_kind("plan_count")
    num_tiles = -(-(b * t) // mc["tile_rows"])
    tiles = alloc(max(num_tiles * e, 1) * 4)
    tp = memref_params(tiles, (max(num_tiles * e, 1),))
    mod.launch(fc, mc, mp + tp, num_tiles, stream)
    (fs, ms), = mod.by_kind("plan_scan")
    mod.launch(fs, ms, tp + op + [ctypes.c_int64(num_tiles)], 1, stream)
    m = rows
    if m is None:
        synchronize(stream)
        m = int(offsets.download((e + 1,), np.int32)[-1])
    ids, weights = alloc(m * 4), alloc(m * 4)
    (ff, mf), = mod.by_kind("plan_fill")
    mod.launch(ff, mf, gp + mp + tp + memref_params(ids, (m,)) + memref_params(weights, (m,)),
               num_tiles, stream)
    return offsets, ids, weights, m


def launch_topk_list(mod: KernelModule, gates: DeviceArray, mask: DeviceArray, shape, k: int,
                     stream: int = 0, alloc=DeviceArray, out=None):
    """moe.topk_list: [B*T, k] expert ids and weights, one warp per token,
    into `out` (ids, weights) or new buffers; nothing to launch when the
    route kernel wrote them (no topk_list kernel). Returns the two device
    arrays."""
    b, t, _ = shape
    ids, weights = out or (alloc(b * t * k * 4), alloc(b * t * k * 4))
    if not mod.by_kind("topk_list"):
        return ids, weights
    (f, meta), = mod.by_kind("topk_list")
    mod.launch(f, meta, memref_params(gates, shape) + memref_params(mask, shape)
               + memref_params(ids, (b * t, k)) + memref_params(weights, (b * t, k)),
               -(-(b * t) // 4), stream)
    return ids, weights


def launch_moe_layer(mod: KernelModule, mode: str, options: dict, logits: DeviceArray, shape,
                     hidden: DeviceArray, init: DeviceArray, w1: DeviceArray, w3: DeviceArray,
                     w2: DeviceArray, hidden_size: int, ffn_size: int, itemsize: int,
                     bias: Optional[DeviceArray] = None, stream: int = 0, alloc=DeviceArray):
    """A whole MoE layer: route, plan, dispatch, SwiGLU experts, combine.
    Returns (y, temporaries): y [B*T, D] and the device buffers the kernels
    use, which must outlive the launches (all asynchronous on `stream`)
    unless `alloc` hands out stream-ordered memory (a framework's caching
    allocator on `stream`)."""
    b, t, e = shape
    g, d, f = b * t, hidden_size, ffn_size
    gates, mask = alloc(g * e * 4), alloc(g * e)
    launch_route(mod, mode, options, logits, gates, mask, shape, bias=bias, stream=stream,
                 alloc=alloc)
    m = selected_pairs(mode, options, shape)
    offsets, ids, weights, _ = launch_plan(mod, gates, mask, shape, rows=m, stream=stream,
                                           alloc=alloc)
    rows, experts = alloc(m * d * itemsize), alloc(m * d * 4)  # expert rows are f32
    scratch = alloc(m * f * 4)
    y = alloc(g * d * itemsize)
    ip, wp = memref_params(ids, (m,)), memref_params(weights, (m,))
    op = memref_params(offsets, (e + 1,))
    xp, hp = memref_params(rows, (m, d)), memref_params(experts, (m, d))
    (fd, md), = mod.by_kind("dispatch")
    mod.launch(fd, md, memref_params(hidden, (g, d)) + ip + xp, m, stream)
    (ff, mf), = mod.by_kind("expert_ffn")
    mod.launch(ff, mf, xp + op + memref_params(w1, (e, d, f)) + memref_params(w3, (e, d, f))
               + memref_params(w2, (e, f, d)) + memref_params(scratch, (m, f)) + hp, m, stream)
    (fc, mc), = mod.by_kind("combine")
    mod.launch(fc, mc, hp + ip + wp + op + memref_params(init, (g, d)) + memref_params(y, (g, d)),
               g, stream)
    return y, (gates, mask, offsets, ids, weights, rows, experts, scratch)
