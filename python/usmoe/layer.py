"""MoeLayer: a whole routed MoE layer (route, plan, dispatch, SwiGLU
experts, combine) compiled once per shape class and run on CPU or GPU."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import _arrays, _ir, cpu, emulator
from .api import Router, _cache, _given_selection, _gpu_function, packed_offsets

#: How stacked expert weights may be laid out (moe.expert_ffn's `layout`).
WEIGHT_LAYOUTS = ("in_out", "out_in")


def check_weight_layout(weight_layout: str) -> None:
    if weight_layout not in WEIGHT_LAYOUTS:
        raise ValueError(f"weight_layout must be one of {', '.join(WEIGHT_LAYOUTS)}, got "
                         f"{weight_layout!r}")


def in_out_views(w1, w3, w2, weight_layout: str = "in_out"):
    """w1, w3 [E, D, F] and w2 [E, F, D] as views of expert weights in any
    layout MoeLayer reads (w3=None: w1 is the fused gate/up weight, gate
    first along F). NumPy arrays or torch tensors (views keep autograd)."""
    check_weight_layout(weight_layout)
    in_out = weight_layout == "in_out"
    if w3 is None:
        f = w1.shape[2 if in_out else 1] // 2
        w1, w3 = (w1[:, :, :f], w1[:, :, f:]) if in_out else (w1[:, :f], w1[:, f:])
    if not in_out:
        w1, w3, w2 = (w.swapaxes(1, 2) for w in (w1, w3, w2))
    return w1, w3, w2


class MoeLayer:
    """y = init + sum over the selected (g, e) of gate * FFN_e(hidden[g]),
    FFN_e(x) = W2_e (silu(W1_e x) * (W3_e x)), with any of the three
    routers: the spec's MoE layer. The residual and shared experts stay
    outside; pass their sum as `init` to have it added.

    Expert weights, all of one dtype (f32, f16, bf16), which is also the
    dtype of hidden states and outputs, read where they are (no copies on
    the CPU):
    - weight_layout="in_out" (default): w1, w3 [E, D, F]; w2 [E, F, D];
    - weight_layout="out_in" (nn.Linear's, Hugging Face checkpoints'): w1,
      w3 [E, F, D]; w2 [E, D, F];
    - w3=None: w1 is a fused gate/up weight, gate first: [E, D, 2F]
      ("in_out") or [E, 2F, D] ("out_in", HF's `gate_up_proj`).
    Router options are those of usmoe.Router. The weights are bound once
    (and for device="cuda" uploaded once, in their layout); a new number of
    tokens compiles nothing.
    """

    def __init__(self, w1, w3, w2, mode: str = "unified", device: str = "cpu",
                 weight_layout: str = "in_out", **router_options):
        check_weight_layout(weight_layout)
        self.router = Router(mode=mode, device=device, **router_options)
        self.device = device
        self.weight_layout = weight_layout
        self.fused = w3 is None
        named = [(w1, "w1"), (w2, "w2")] if self.fused else [(w1, "w1"), (w3, "w3"), (w2, "w2")]
        # Weights already on the GPU (device="cuda"): read in place, never
        # copied; their owners are kept alive by the layer.
        views = [None] * len(named)
        if device == "cuda" and not emulator.enabled():
            views = [_arrays.device_view(w, name) for w, name in named]
        self._device_weights = None
        if any(v is not None for v in views):
            if not all(v is not None for v in views):
                raise ValueError("the expert weights must all be on the GPU or all on the host")
            from . import cuda
            self._weights = None
            self._device_weights = [(cuda.DeviceArray(0, ptr=v.ptr, owner=w), list(v.shape))
                                    for v, (w, _) in zip(views, named)]
            elements = [v.element for v in views]
            shapes = [tuple(v.shape) for v in views]
        else:
            weights = [_arrays.host_array(w, name) for w, name in named]
            self._weights = [w.data for w in weights]
            elements = [w.element for w in weights]
            shapes = [w.data.shape for w in weights]
        if len(set(elements)) != 1:
            raise ValueError(", ".join(n for _, n in named) + " must have the same dtype, got "
                             + ", ".join(elements))
        self.element = elements[0]
        w2_shape = shapes[-1]
        if len(w2_shape) != 3:
            raise ValueError(f"w2 must be 3-D, got shape {w2_shape}")
        in_out = weight_layout == "in_out"
        e = w2_shape[0]
        f, d = w2_shape[1:] if in_out else w2_shape[:0:-1]
        if min(e, d, f) < 1:
            raise ValueError(f"expert weights must be non-empty, got [E, D, F] = {(e, d, f)}")
        up = (e, d, f) if in_out else (e, f, d)
        words = "[E, D, F]" if in_out else "[E, F, D]"
        if self.fused:
            fused = (e, d, 2 * f) if in_out else (e, 2 * f, d)
            fused_words = "[E, D, 2F]" if in_out else "[E, 2F, D]"
            if shapes[0] != fused:
                raise ValueError(f"fused gate/up w1 must be {fused_words} = {fused} for w2 "
                                 f"{w2_shape} (weight_layout={weight_layout!r}), got "
                                 f"{shapes[0]}")
        else:
            for shape, name in ((shapes[0], "w1"), (shapes[1], "w3")):
                if shape != up:
                    raise ValueError(f"{name} must be {words} = {up} for w2 {w2_shape} "
                                     f"(weight_layout={weight_layout!r}), got {shape}")
        self.num_experts, self.hidden_size, self.ffn_size = e, d, f

    def _ir(self, logits_element: str, packed: bool = False) -> str:
        return _ir.layer_function(self.router.attribute, self.num_experts, self.hidden_size,
                                  self.ffn_size, logits_element, self.element,
                                  bias=self.router.bias is not None, seqlens=packed,
                                  layout=self.weight_layout, fused=self.fused)

    def compiled(self, logits_element: str, packed: bool = False):
        """The compiled layer for logits of `logits_element` (with `packed`:
        one packed batch with sequence offsets): a CPU JIT function or, for
        device="cuda", the compiler's host code with its kernels
        (cuda.HostFunction), cached like routers."""
        key = ("layer", self.router._key(logits_element, self.num_experts, packed),
               self.element, self.hidden_size, self.ffn_size, self.weight_layout, self.fused)
        if self.device == "cuda" and emulator.enabled():
            return _cache.get(key + ("emulator",),
                              lambda: emulator.jit(self._ir(logits_element, packed), "layer"))
        if self.device == "cuda":
            return _gpu_function(key, lambda: self._ir(logits_element, packed), "layer")
        return _cache.get(key + cpu.key(),
                          lambda: cpu.jit(self._ir(logits_element, packed), "layer"))

    def _check(self, logits_shape, hidden_shape, init_shape):
        b, t, e = logits_shape
        if e != self.num_experts:
            raise ValueError(f"logits have {e} experts, the weights {self.num_experts}")
        if len(hidden_shape) != 2 or tuple(hidden_shape) != (b * t, self.hidden_size):
            raise ValueError(f"hidden must be [B*T, D] = {(b * t, self.hidden_size)}, got "
                             f"{tuple(hidden_shape)}")
        if init_shape is not None and tuple(init_shape) != tuple(hidden_shape):
            raise ValueError(f"init must have the shape of hidden {tuple(hidden_shape)}, got "
                             f"{tuple(init_shape)}")
        self.router._check_against(t, e)

    def _check_dtype(self, name, element):
        if element != self.element:
            raise ValueError(f"{name} must have the weights' dtype ({self.element}), got "
                             f"{element}")

    def __call__(self, hidden, logits, init=None, stream=None, cu_seqlens=None):
        """hidden [B*T, D] (token g = b*T + t), logits [T, E] or [B, T, E],
        optional init [B*T, D] (default zeros) -> y [B*T, D] in the dtype of
        the weights: on the GPU in the caller's framework when hidden and
        logits live there, else on the host. With `cu_seqlens`, logits [N, E]
        and hidden [N, D] are packed sequences (see usmoe.route); CPU and GPU
        emulator for now."""
        stream = _arrays.stream_handle(stream)
        emulated = self.device == "cuda" and emulator.enabled()
        packed = cu_seqlens is not None
        if self.device == "cuda" and not emulated:
            if packed and (_arrays.device_view(hidden, "hidden") is not None or
                           _arrays.device_view(logits, "logits") is not None):
                raise NotImplementedError(
                    "cu_seqlens with arrays on the GPU: the packed plan's size is read back "
                    "from the device, which a stream call cannot do; pass host arrays")
            on_device = None if packed else self._call_device(hidden, logits, init, stream)
            if on_device is not None:
                return on_device
        elif stream is not None and not emulated:
            raise ValueError("stream applies to device='cuda' only")
        h = _arrays.host_array(hidden, "hidden")
        self._check_dtype("hidden", h.element)
        lg = _arrays.host_array(logits, "logits")
        lg.data = lg.data.reshape(_arrays.logits_shape(lg.data.shape))
        if packed and lg.data.shape[0] != 1:
            raise ValueError("with cu_seqlens the logits are one packed batch [N, E]")
        start = None
        if init is not None:
            start = _arrays.host_array(init, "init")
            self._check_dtype("init", start.element)
        self._check(lg.data.shape, h.data.shape, None if start is None else start.data.shape)
        init_data = np.zeros_like(h.data) if start is None else start.data
        extra = []
        if packed:
            cu = packed_offsets(cu_seqlens, lg.data.shape[1])
            self.router._check_packed(cu, self.num_experts)
            extra.append(cu)
        if self.device == "cuda" and not emulated:
            from . import cuda
            weights = self._weights_on_device()
            (y,) = cuda.call_on_host(self.compiled(lg.element, packed),
                                     [lg.data, h.data, init_data, *weights, *extra],
                                     stream or 0)
        else:
            args = [lg.data, h.data, init_data, *self._weights]
            if self.router.bias is not None:
                args.append(self.router.bias)
            (y,) = self.compiled(lg.element, packed)(args + extra)
        return _arrays.from_host_result(y, self.element, h.framework)

    def forward_topk(self, hidden, topk_ids, topk_weights, init=None):
        """The layer on a selection made elsewhere (bring your own router):
        hidden [R, D], topk_ids / topk_weights [R, k] (ids in [0, E), no
        expert twice in a row; the weights are the gates, used as given),
        optional init [R, D] -> y [R, D]. The layer's own router options are
        not used. On the CPU, or for device="cuda" on the GPU (host arrays in
        and out; the call waits) or the GPU emulator."""
        emulated = self.device == "cuda" and emulator.enabled()
        ids, weights = _given_selection(topk_ids, topk_weights)
        h = _arrays.host_array(hidden, "hidden")
        self._check_dtype("hidden", h.element)
        rows, k = ids.shape
        if h.data.shape != (rows, self.hidden_size):
            raise ValueError(f"hidden must be [R, D] = {(rows, self.hidden_size)}, got "
                             f"{h.data.shape}")
        init_data = np.zeros_like(h.data)
        if init is not None:
            start = _arrays.host_array(init, "init")
            self._check_dtype("init", start.element)
            if start.data.shape != h.data.shape:
                raise ValueError(f"init must have the shape of hidden {h.data.shape}, got "
                                 f"{start.data.shape}")
            init_data = start.data
        key = ("given_layer", self.num_experts, k, self.element, self.hidden_size,
               self.ffn_size, self.device, self.weight_layout, self.fused)
        ir = _ir.given_layer_function(self.num_experts, k, self.hidden_size, self.ffn_size,
                                      self.element, layout=self.weight_layout, fused=self.fused)
        if self.device == "cuda" and not emulated:
            from . import cuda
            (y,) = cuda.call_on_host(_gpu_function(key, lambda: ir, "layer"),
                                     [ids, weights, h.data, init_data,
                                      *self._weights_on_device(with_bias=False)])
            return _arrays.from_host_result(y, self.element, h.framework)
        if emulated:
            fn = _cache.get(key + ("emulator",), lambda: emulator.jit(ir, "layer"))
        else:
            fn = _cache.get(key + cpu.key(), lambda: cpu.jit(ir, "layer"))
        (y,) = fn([ids, weights, h.data, init_data, *self._weights])
        return _arrays.from_host_result(y, self.element, h.framework)

    # -- the GPU -------------------------------------------------------------
    def _weights_on_device(self, with_bias: bool = True):
        """(device pointer, shape) of each weight (read in place when given
        on the GPU, else uploaded once, in their layout) and of the router's
        bias if it has one and `with_bias`."""
        from . import cuda
        if self._device_weights is None:
            uploaded = []
            for w in self._weights:
                buffer = cuda.DeviceArray(w.nbytes)
                buffer.upload(w)
                uploaded.append((buffer, list(w.shape)))
            self._device_weights = uploaded
        out = [(buffer.ptr.value, shape) for buffer, shape in self._device_weights]
        bias = self.router._device_bias() if with_bias else None
        return out + ([] if bias is None else [(bias.ptr.value, [self.num_experts])])

    def _call_device(self, hidden, logits, init, stream) -> Optional[object]:
        """The layer on GPU-resident hidden states and logits (None if they
        are on the host), as a stream call of the compiler's host code: y
        stays on the GPU, nothing synchronizes. `init` may be on the GPU or
        the host."""
        h = _arrays.device_view(hidden, "hidden", stream)
        lg = _arrays.device_view(logits, "logits", stream)
        if h is None and lg is None:
            return None
        if h is None or lg is None:
            raise ValueError("hidden and logits must both be on the GPU or both on the host")
        self._check_dtype("hidden", h.element)
        lg.shape = _arrays.logits_shape(lg.shape)
        start = _arrays.device_view(init, "init", stream) if init is not None else None
        if start is not None:
            self._check_dtype("init", start.element)
        host_init = None
        if init is not None and start is None:
            host_init = _arrays.host_array(init, "init")
            self._check_dtype("init", host_init.element)
        init_shape = (start.shape if start is not None else
                      host_init.data.shape if host_init is not None else None)
        self._check(lg.shape, h.shape, init_shape)
        if stream is None:
            stream = h.stream
        itemsize = 4 if self.element == "f32" else 2
        alloc = _arrays.allocator(h.framework, stream)
        if start is not None:
            init_arg = start.ptr
        else:
            nbytes = -(-h.shape[0] * self.hidden_size * itemsize // 4) * 4
            init_buffer = alloc(nbytes)
            if host_init is not None:
                init_buffer.upload(host_init.data)
            else:  # zeros, set on the device
                init_buffer.zero(nbytes, stream)
            init_arg = init_buffer.ptr.value
        args = [(lg.ptr, lg.shape), (h.ptr, h.shape), (init_arg, h.shape)]
        args += self._weights_on_device()
        fn = self.compiled(lg.element)
        raw = fn.call_device(args, stream)
        keep = [lg.keep_alive, h.keep_alive] + ([start.keep_alive] if start is not None else
                                                [init_buffer])
        (y,) = _arrays.wrap_stream_results(raw, fn.results, h.framework, stream, keep_alive=keep)
        return y
