"""The user-facing API: route(), Router and compile()."""

from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from . import _arrays, _ir, cpu, emulator
from .reference import Plan

_MODES = ("unified", "token", "expert")
_EXPERT_SCORES = ("sigmoid", "softmax_tokens")
_DEVICES = ("cpu", "cuda")


def _native():
    from ._native_loader import native
    return native()


class _CompileCache:
    """Compiled routers keyed by (options, dtype, E, device); T stays dynamic,
    so a new sequence length never recompiles."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = {}
        self.compilations = 0
        self.generation = 0

    def get(self, key, build):
        with self._lock:
            fn = self._entries.get(key)
            if fn is None:
                fn = build()
                self._entries[key] = fn
                self.compilations += 1
            return fn

    def clear(self):
        with self._lock:
            self._entries.clear()
            self.generation += 1  # what Routers remember goes too


_cache = _CompileCache()


def _gpu_function(key: tuple, ir, entry: str):
    """Function `entry` of the IR `ir()` builds, for the GPU at hand: the
    compiler's host code with its kernels (cuda.host_function; built once
    per `key` and chip, then from the on-disk cache). RuntimeError without
    a GPU."""
    from . import cuda
    chip, features = cuda.target_for_device()
    return _cache.get(key + (entry, chip),
                      lambda: cuda.host_function(ir(), entry, chip, features))


def cache_info() -> dict:
    """How many routers/layers were built in this process (`compilations`)
    and are held (`entries`), where device="cuda" runs now (`gpu`: "cuda",
    or "emulator" under USMOE_GPU_EMULATOR=1), and the on-disk cache of GPU
    functions (host code + kernels): where, how many it supplied (`hits`)
    and how many were compiled (`misses`)."""
    from . import _kernel_cache
    return {"compilations": _cache.compilations, "entries": len(_cache._entries),
            "gpu": "emulator" if emulator.enabled() else "cuda",
            "kernel_cache": {"dir": _kernel_cache.cache_dir(), "hits": _kernel_cache.hits,
                             "misses": _kernel_cache.misses}}


def _cpu_compile_state() -> tuple:
    """What a compiled CPU function depends on besides its IR and shapes:
    the CPU settings (`cpu.key()`) and the compile cache's generation."""
    return (cpu.key(), _cache.generation)


def clear_cache() -> None:
    _cache.clear()


def _as_logits(logits) -> _arrays.HostArray:
    """[T, E] or [B, T, E] host logits -> a HostArray of [B, T, E]."""
    host = _arrays.host_array(logits, "logits")
    host.data = host.data.reshape(_arrays.logits_shape(host.data.shape))
    return host


def _device_logits(logits, stream) -> Optional[_arrays.DeviceView]:
    view = _arrays.device_view(logits, "logits", stream)
    if view is not None:
        view.shape = _arrays.logits_shape(view.shape)
    return view


def _plan_of(out) -> Plan:
    """The Plan of a compiled router function's results: gates, mask, the
    CSR, and the [B*T, k] lists when it has them (Token Choice)."""
    plan = Plan(gates=out[0], mask=out[1], expert_offsets=out[2], token_ids=out[3],
                weights=out[4])
    if len(out) > 5:
        plan.topk_ids, plan.topk_weights = out[5], out[6]
    return plan


def packed_offsets(cu_seqlens, num_tokens: int) -> np.ndarray:
    """`cu_seqlens` as int32 offsets of packed sequences: S + 1 integers
    from 0 to `num_tokens`, never decreasing (ValueError otherwise)."""
    if hasattr(cu_seqlens, "detach") and hasattr(cu_seqlens, "cpu"):  # torch.Tensor
        cu_seqlens = cu_seqlens.detach().cpu().numpy()
    cu = np.asarray(cu_seqlens)
    if cu.ndim != 1 or cu.size < 1:
        raise ValueError(f"cu_seqlens must be a vector of S + 1 offsets, got shape {cu.shape}")
    if not np.issubdtype(cu.dtype, np.integer):
        raise TypeError(f"cu_seqlens must be integers, got {cu.dtype}")
    if cu[0] != 0 or cu[-1] != num_tokens or (np.diff(cu) < 0).any():
        raise ValueError(f"cu_seqlens must start at 0, never decrease and end at the number of "
                         f"tokens ({num_tokens}), got {cu.tolist()}")
    return np.ascontiguousarray(cu, np.int32)


def _number(name, value):
    """A router parameter as a float (None stays None); range and
    finiteness are the compiler's rules to check."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def _integer(name, value):
    """A router parameter that counts something, as an int (None stays None)."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


class Router:
    """A router with its options bound once; compiled on first use per
    (dtype, E, device) and reused for every sequence length."""

    def __init__(self, mode: str = "unified", k=None, alpha=None, expert_score=None,
                 renormalize: bool = False, capacity=None, capacity_factor=None,
                 budget=None, device: str = "cpu", bias=None, routed_scaling_factor=None,
                 softcap=None, n_group=None, topk_group=None):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if device not in _DEVICES:
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if expert_score is not None and expert_score not in _EXPERT_SCORES:
            raise ValueError(f"expert_score must be one of {_EXPERT_SCORES}, got {expert_score!r}")
        if not isinstance(renormalize, (bool, np.bool_)):
            raise TypeError(f"renormalize must be a bool, got {type(renormalize).__name__}")
        self.mode, self.device = mode, device
        self.k = _number("k", k)
        self.capacity = _integer("capacity", capacity)
        self.budget = _integer("budget", budget)
        self.capacity_factor = _number("capacity_factor", capacity_factor)
        given_alpha = _number("alpha", alpha)
        self.alpha = 0.5 if given_alpha is None else given_alpha
        self.expert_score = expert_score or "sigmoid"
        self.renormalize = bool(renormalize)
        self.routed_scaling_factor = _number("routed_scaling_factor", routed_scaling_factor)
        self.softcap = _number("softcap", softcap)
        self.n_group = _integer("n_group", n_group)
        self.topk_group = _integer("topk_group", topk_group)

        self.bias = None
        if bias is not None:
            if hasattr(bias, "detach"):
                bias = bias.detach().cpu().float().numpy()
            self.bias = np.ascontiguousarray(np.asarray(bias, dtype=np.float32))
        # The compiler's own rules (the verifier's, in its words): every
        # option that does not belong to the mode, every out-of-range value.
        from . import cuda
        self._rules = cuda.RouterOptions.of(
            mode, k=self.k, budget=self.budget, capacity=self.capacity,
            capacity_factor=self.capacity_factor, alpha=given_alpha,
            expert_score=expert_score, renormalize=self.renormalize,
            bias=self.bias is not None, routed_scaling_factor=self.routed_scaling_factor,
            softcap=self.softcap, n_group=self.n_group, topk_group=self.topk_group)
        self._rules.check()
        self._passed = set()
        self._cpu_functions = {}
        self._last_host_call = None
        if self.bias is not None:
            if self.bias.ndim != 1:
                raise ValueError(f"bias must be a vector of one value per expert, got shape "
                                 f"{self.bias.shape}")
            if not np.isfinite(self.bias).all():
                raise ValueError("bias must be finite")

    # -- per-call checks that need the shape ---------------------------------
    def _check_against(self, t: int, e: int) -> None:
        if self.bias is not None and self.bias.shape[0] != e:
            raise ValueError(f"bias must have one value per expert ({e}), got {self.bias.shape[0]}")
        # The rules depend on (T, E) only: a shape that passed once passes
        # again (decode calls repeat one shape; the check is a foreign call).
        if (t, e) in self._passed:
            return
        # An empty sequence selects nothing: only E-dependent rules apply.
        self._rules.check(experts=e, tokens=t if t > 0 else None)
        if len(self._passed) < 4096:
            self._passed.add((t, e))

    @property
    def attribute(self) -> str:
        """The router as the compiler writes it (`#moe.token<k = 2>`), printed
        by the compiler's router rules: the one writer of router IR."""
        return self._rules.attribute()

    def _check_packed(self, cu_seqlens, e: int) -> None:
        """The rules that need T, for the shortest non-empty packed sequence
        (each rule is monotone in T)."""
        lengths = np.diff(cu_seqlens)
        self._check_against(int(lengths[lengths > 0].min()) if (lengths > 0).any() else 0, e)

    def _ir(self, element: str, e: int, packed: bool = False) -> str:
        topk = int(self.k) if self.mode == "token" else None
        return _ir.router_function(self.attribute, e, element, topk=topk,
                                   bias=self.bias is not None, seqlens=packed)

    def _key(self, element: str, e: int, packed: bool = False):
        # The bias values are an argument of the compiled function: only their
        # presence is part of the key.
        return (self.mode, self.k, self.alpha, self.expert_score, self.renormalize,
                self.capacity, self.capacity_factor, self.budget, self.bias is not None,
                self.routed_scaling_factor, self.softcap, self.n_group, self.topk_group,
                element, e, self.device, packed)

    def _cpu_function(self, element: str, e: int, packed: bool):
        """compiled() for the CPU, remembered per Router (a decode step calls
        it per token: no key tuple or IR to build again)."""
        key = (element, e, packed) + _cpu_compile_state()
        fn = self._cpu_functions.get(key)
        if fn is None:
            fn = _cache.get(self._key(element, e, packed) + key[3],
                            lambda: cpu.jit(self._ir(element, e, packed), "router"))
            self._cpu_functions[key] = fn
        return fn

    def compiled(self, element: str, num_experts: int, packed: bool = False):
        """The compiled router for logits of `element` and E experts (with
        `packed`: for one packed batch with sequence offsets): a CPU JIT
        function, or for device="cuda" the compiler's host code with its
        kernels (cuda.HostFunction; on the GPU emulator: JIT-compiled with
        the emulated kernels)."""
        if self.device == "cuda" and emulator.enabled():
            return _cache.get(self._key(element, num_experts, packed) + ("emulator",),
                              lambda: emulator.jit(self._ir(element, num_experts, packed),
                                                   "router"))
        if self.device == "cuda":
            return _gpu_function(self._key(element, num_experts, packed),
                                 lambda: self._ir(element, num_experts, packed), "router")
        return self._cpu_function(element, num_experts, packed)

    def _device_bias(self):
        """The bias vector on the GPU, uploaded once per Router."""
        if self.bias is None:
            return None
        if getattr(self, "_bias_on_device", None) is None:
            from . import cuda
            self._bias_on_device = cuda.DeviceArray(self.bias.nbytes)
            self._bias_on_device.upload(self.bias)
        return self._bias_on_device

    def _call_cuda(self, array, element, source: Optional[_arrays.DeviceView], stream) -> Plan:
        """Route on the GPU through the compiler's host code. Logits already
        on the device stay there and so does the plan (in the caller's
        framework): a stream call, nothing synchronizes (M is known on the
        host). Host logits are uploaded and the plan comes back as NumPy
        arrays."""
        from . import cuda
        e = (array.shape if source is None else source.shape)[2]
        fn = self.compiled(element, e)
        if source is None:
            return _plan_of(cuda.call_on_host(fn, self._host_args(array), stream or 0))
        if stream is None:
            stream = source.stream
        args = [(source.ptr, source.shape)]
        if self.bias is not None:
            args.append((self._device_bias().ptr.value, [e]))
        raw = fn.call_device(args, stream)
        return _plan_of(_arrays.wrap_stream_results(raw, fn.results, source.framework, stream,
                                                    keep_alive=[source.keep_alive]))

    def _call_packed(self, logits, cu_seqlens, stream) -> Plan:
        """Routes one packed batch [N, E] of sequences with offsets. On a
        real GPU from host logits only: the plan's size depends on the
        offsets and is read back, so the call waits for the GPU."""
        real_gpu = self.device == "cuda" and not emulator.enabled()
        if real_gpu and _arrays.device_view(logits, "logits") is not None:
            raise NotImplementedError(
                "cu_seqlens with logits on the GPU: the packed plan's size is read back from "
                "the device, which a stream call cannot do; pass host logits")
        if stream is not None:
            raise ValueError("stream applies to device='cuda' with logits on the GPU only")
        host = _as_logits(logits)
        array, element = host.data, host.element
        if array.shape[0] != 1:
            raise ValueError("with cu_seqlens the logits are one packed batch [N, E], got "
                             f"{array.shape[0]} sequences of equal length")
        _, n, e = array.shape
        cu = packed_offsets(cu_seqlens, n)
        self._check_packed(cu, e)
        fn = self.compiled(element, e, packed=True)
        args = self._host_args(array) + [cu]
        if real_gpu:
            from . import cuda
            return _plan_of(cuda.call_on_host(fn, args))
        return _plan_of(fn(args))

    def __call__(self, logits, stream=None, cu_seqlens=None) -> Plan:
        """Routes `logits`. With device="cuda", `stream` (a handle, a
        torch.cuda.Stream or a CuPy stream) is where the kernels run; by
        default the current stream of the logits' framework, else the legacy
        default stream. With `cu_seqlens` (S + 1 offsets), `logits` [N, E]
        are S packed sequences of different lengths, each with its own
        budget (see `route`)."""
        if cu_seqlens is not None:
            return self._call_packed(logits, cu_seqlens, stream)
        if stream is None:
            plan = self._repeat_host_call(logits)
            if plan is not None:
                return plan
        stream = _arrays.stream_handle(stream)
        emulated = self.device == "cuda" and emulator.enabled()
        if self.device == "cuda" and not emulated:
            source = _device_logits(logits, stream)
            if source is not None:
                self._check_against(source.shape[1], source.shape[2])
                return self._call_cuda(None, source.element, source, stream)
        elif stream is not None and not emulated:
            raise ValueError("stream applies to device='cuda' only")
        host = _as_logits(logits)
        array, element = host.data, host.element
        _, t, e = array.shape
        self._check_against(t, e)
        if self.device == "cuda" and not emulated:
            return self._call_cuda(array, element, None, stream)
        fn = self.compiled(element, e)
        out = fn(self._host_args(array))
        if self.device == "cpu" and type(logits) is np.ndarray and array.dtype is logits.dtype:
            # Read in place (no conversion): the same call can be repeated.
            self._last_host_call = (logits.dtype, logits.shape, _cpu_compile_state(),
                                    array.shape, fn)
        return _plan_of(out)

    def _host_args(self, array: np.ndarray) -> list:
        """The compiled router's host arguments: the [B, T, E] logits, then
        the bias vector when the router has one."""
        return [array] if self.bias is None else [array, self.bias]

    def _repeat_host_call(self, logits) -> Optional[Plan]:
        """A decode step repeats its call: NumPy logits of the dtype object
        and shape that the last CPU call read in place, under the same
        settings and compile cache, go straight to the function it used
        (everything the full path checks and looks up depends on those
        alone). None when the call is not such a repeat."""
        last = self._last_host_call
        if last is None or type(logits) is not np.ndarray:
            return None
        dtype, shape, state, batched_shape, fn = last
        if (logits.dtype is not dtype or logits.shape != shape
                or not logits.flags.c_contiguous or state != _cpu_compile_state()):
            return None
        return _plan_of(fn(self._host_args(logits.reshape(batched_shape))))


def route(logits, mode: str = "unified", k=None, alpha=None,
          expert_score=None, renormalize: bool = False, capacity=None,
          capacity_factor=None, budget=None, device: str = "cpu", bias=None,
          stream=None, routed_scaling_factor=None, softcap=None, n_group=None,
          topk_group=None, cu_seqlens=None) -> Plan:
    """Route [T, E] or [B, T, E] logits with one of the three routers.

    `bias` ([E]) selects the DeepSeek-V3 Token Choice variant: experts ranked
    by sigmoid(L) + bias, gates sigmoid(L). Options of real models, every
    mode: `routed_scaling_factor` multiplies the selected gates (after
    renormalization; DeepSeek-V3), `softcap` caps every logit to
    softcap * tanh(L / softcap) before any score. Token Choice only:
    `n_group` / `topk_group` (DeepSeek-V3) pick the k experts inside the
    topk_group best of n_group expert groups.

    Batches: [B, T, E] logits are B sequences of T tokens and every budget
    (Expert Choice's C, Unified's N) is per sequence; [T, E] logits are one
    sequence. Sequences of different lengths go in one packed batch: logits
    [N, E] with `cu_seqlens` (S + 1 offsets, as in FlashAttention's varlen
    API), sequence i being rows cu_seqlens[i] .. cu_seqlens[i+1] with its
    own T_i. Token ids in the plan are the packed row indices.

    Returns a Plan with `gates` [B, T, E] f32, `mask`, the expert-major CSR
    (`expert_offsets` [E+1], `token_ids` [M], `weights` [M]) and, for
    mode="token", `topk_ids` / `topk_weights` [B*T, k].

    device="cuda": logits already on the GPU (PyTorch, CuPy, any
    __cuda_array_interface__ or DLPack array) are read in place and the plan
    stays on the GPU, as tensors of the same framework (CudaArray
    otherwise), with no host round trip; host logits give a NumPy plan.
    `stream` picks the CUDA stream (default: the framework's current one).
    With USMOE_GPU_EMULATOR=1, device="cuda" runs the same GPU kernels on
    the CPU emulator (usmoe.emulator), host arrays in and out.
    """
    router = Router(mode=mode, k=k, alpha=alpha, expert_score=expert_score,
                    renormalize=renormalize, capacity=capacity,
                    capacity_factor=capacity_factor, budget=budget, device=device,
                    bias=bias, routed_scaling_factor=routed_scaling_factor,
                    softcap=softcap, n_group=n_group, topk_group=topk_group)
    return router(logits, stream=stream, cu_seqlens=cu_seqlens)


def _host_values(value, name: str) -> np.ndarray:
    """A NumPy view of a host array, torch tensor or nested list, any dtype."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be an array or a nested list, got {type(value).__name__}")
    return value


def _given_selection(topk_ids, topk_weights):
    """[R, k] expert ids (int32) and weights (f32) of a selection made
    elsewhere; their values are the compiled code's to check."""
    ids, weights = _host_values(topk_ids, "topk_ids"), _host_values(topk_weights, "topk_weights")
    if ids.ndim != 2:
        raise ValueError(f"topk_ids must be [R, k], got shape {ids.shape}")
    if weights.shape != ids.shape:
        raise ValueError(f"topk_weights must have the shape of topk_ids {ids.shape}, got "
                         f"{weights.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"topk_ids must be integers, got {ids.dtype}")
    if not (np.issubdtype(weights.dtype, np.floating) or np.issubdtype(weights.dtype, np.integer)):
        raise TypeError(f"topk_weights must be numbers, got {weights.dtype}")
    if ids.size and (ids.min() < np.iinfo(np.int32).min or ids.max() > np.iinfo(np.int32).max):
        raise ValueError("topk_ids must fit in int32")
    ids32 = np.ascontiguousarray(ids, np.int32)
    w32 = np.ascontiguousarray(weights, np.float32)
    return ids32, w32


def plan_from_topk(topk_ids, topk_weights, num_experts: int, device: str = "cpu") -> Plan:
    """A plan from a selection made elsewhere (bring your own router):
    `topk_ids` [R, k] (integers, each in [0, num_experts), no expert twice
    in a row) and `topk_weights` [R, k] (the gates). The rows are one
    sequence of R tokens: the plan's gates and mask are [1, R, E] and its
    CSR lists rows by index, ascending inside each expert, exactly as for a
    usmoe router. Ids out of range or repeated raise ValueError (checked by
    the compiled code). device="cuda" runs on the GPU (host arrays in and
    out; the call waits for the GPU) or, with USMOE_GPU_EMULATOR=1, on the
    GPU emulator."""
    e = _integer("num_experts", num_experts)
    if e is None or e < 1:
        raise ValueError(f"num_experts must be >= 1, got {num_experts}")
    if device not in _DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    ids32, w32 = _given_selection(topk_ids, topk_weights)
    k = ids32.shape[1]
    ir = _ir.given_selection_function(e, k)
    key = ("given", e, k, device)
    if device == "cuda" and not emulator.enabled():
        from . import cuda
        return _plan_of(cuda.call_on_host(_gpu_function(key, lambda: ir, "given"),
                                          [ids32, w32]))
    if device == "cuda":
        fn = _cache.get(key + ("emulator",), lambda: emulator.jit(ir, "given"))
    else:
        fn = _cache.get(key + cpu.key(), lambda: cpu.jit(ir, "given"))
    out = fn([ids32, w32])
    return _plan_of(out)


class GpuArtifacts:
    """Kernels compiled for NVIDIA GPUs: `files` ({name: bytes}), `image`
    (the first object's bytes), `ptx` (text, for target="ptx") and `kernels`
    (name -> kind, launch shape, arguments, expanded parameter list)."""

    def __init__(self, files, metadata):
        import json
        self.files = dict(files)
        self.metadata = json.loads(metadata)
        self.kernels = self.metadata["kernels"]
        self.image = next(iter(self.files.values()))

    @property
    def ptx(self):
        for name, data in self.files.items():
            if name.endswith(".ptx"):
                return data.decode()
        return None


_GPU_FORMATS = {"ptx": "isa", "cubin": "bin", "fatbin": "fatbin"}


def compile(source: str, pipeline: Optional[str] = None, target: str = "cpu",
            entry: Optional[str] = None, chip: str = "sm_90", features: str = "+ptx80"):
    """Compile moe IR (text, or a module of MLIR's Python bindings).

    target="mlir": return the IR after `pipeline` (default: moe-fuse-routing,
    canonicalize). target="llvm": the LLVM dialect after usmoe-to-cpu.
    target="cpu": a callable for the function `entry` that takes and returns
    NumPy arrays (JIT-compiled through usmoe-to-cpu).
    target="cuda": the same callable with the function's kernels on the GPU
    (usmoe-to-nvvm for the device at hand; the host code JIT-compiled and
    linked to libusmoe_cuda_runtime.so): NumPy arguments are staged in
    managed memory; arguments already on the GPU make it run asynchronously
    on a stream with its results left on the GPU (see cuda.GpuFunction).
    With USMOE_GPU_EMULATOR=1, target="cuda" compiles with usmoe-to-gpu-emu
    instead and the kernels run on the CPU emulator (no GPU needed).
    target="ptx" | "cubin" | "fatbin": GpuArtifacts from usmoe-to-nvvm for
    `chip` / `features` (needs the CUDA toolkit, not a GPU).
    """
    if not isinstance(source, str) and hasattr(source, "operation"):
        source = str(source)  # an mlir.ir.Module of the upstream bindings prints as text
    if not isinstance(source, str):
        raise ValueError(f"source must be MLIR text or an MLIR module, got "
                         f"{type(source).__name__}")
    if target == "mlir":
        return _native().run_pipeline(source, pipeline or "moe-fuse-routing,canonicalize")
    if target == "llvm":
        return _native().run_pipeline(source, pipeline or "usmoe-to-cpu")
    if target == "cpu":
        if entry is None:
            raise ValueError("target='cpu' needs the name of the function to call (entry=...)")
        return cpu.jit(source, entry)
    if target == "cuda":
        if entry is None:
            raise ValueError("target='cuda' needs the name of the function to call (entry=...)")
        if emulator.enabled():
            return emulator.jit(source, entry)
        from . import cuda
        chip, features = cuda.target_for_device()  # RuntimeError without a GPU
        return cuda.GpuFunction(_native().JitFunction.for_gpu(source, entry, chip, features,
                                                              cuda.runtime_path()))
    if target in _GPU_FORMATS:
        files, metadata = _native().compile_gpu(source, chip, features, _GPU_FORMATS[target])
        return GpuArtifacts(files, metadata)
    raise ValueError("target must be 'mlir', 'llvm', 'cpu', 'cuda', 'ptx', 'cubin' or 'fatbin', "
                     f"got {target!r}")
