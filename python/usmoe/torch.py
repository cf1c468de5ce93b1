"""usmoe's routers for PyTorch: a torch.library custom op with autograd and a
fake (meta) implementation, so that eager code, autograd and torch.compile
(fullgraph) use the compiled routers like any other op.

    import usmoe.torch
    gates, mask = usmoe.torch.route(logits, mode="unified", k=1.5)
    gates.sum().backward()      # d gates / d logits, zero for unselected pairs

The selection (the mask) comes from usmoe's compiled router and is not
differentiable. The gates are differentiable with respect to the logits:
the backward differentiates `gate_function`, the spec's gate formula
(soft-cap, scores, mask, renormalization, scaling) written in PyTorch for
the mask the router chose. f64 logits take an f64 reference path: the mask
from the compiled router on the f32-rounded logits, the gates from
`gate_function` in f64 (what `torch.autograd.gradcheck` needs). The
DeepSeek-V3 correction bias gets no gradient (it is updated by load
balancing, not by the loss).
"""

from __future__ import annotations

import inspect
import json
from typing import Optional, Tuple

import torch
from torch import Tensor

from . import api, layer

if not hasattr(torch.library, "custom_op"):
    raise ImportError(f"usmoe.torch needs PyTorch >= 2.4 (torch.library.custom_op); this is "
                      f"PyTorch {torch.__version__}")

__all__ = ["route", "moe_layer", "gate_function", "layer_function", "expert_views"]

# The router options the ops carry (as JSON text: custom ops take strings):
# usmoe.Router's keywords, less the ones the ops take as arguments.
_ROUTER_OPTIONS = tuple(name for name in inspect.signature(api.Router).parameters
                        if name not in ("device", "bias"))


def _spec_softmax(x: Tensor, dim: int) -> Tensor:
    """The spec's softmax: e = exp(x == max ? 0 : x - max), 0 for a lane of
    only -inf (torch.softmax would give NaN there and for +inf logits)."""
    m = x.amax(dim=dim, keepdim=True)
    valid = m != float("-inf")
    shifted = torch.where(x == m, torch.zeros_like(x), x - m)
    e = torch.where(valid, torch.exp(shifted), torch.zeros_like(x))
    total = e.sum(dim=dim, keepdim=True)
    return torch.where(valid, e / torch.where(valid, total, torch.ones_like(total)),
                       torch.zeros_like(x))


def gate_function(logits: Tensor, mask: Tensor, options: dict,
                  biased: bool = False) -> Tensor:
    """The gates of the selection `mask` as a differentiable function of the
    logits ([T, E] or [B, T, E]), for the router `options` (usmoe.route's
    keywords; `biased`: the DeepSeek-V3 sigmoid scoring of a router with a
    correction bias). Spec order: soft-cap, score, mask, renormalize,
    scale."""
    x = logits
    cap = options.get("softcap")
    if cap is not None:
        x = cap * torch.tanh(x / cap)
    x = torch.where(torch.isnan(x), torch.full_like(x, float("-inf")), x)
    mode = options.get("mode", "unified")
    if mode == "token" and biased:
        scores = torch.sigmoid(x)
    elif mode in ("token", "expert"):
        scores = _spec_softmax(x, -1)
    else:
        alpha = options.get("alpha")
        alpha = 0.5 if alpha is None else alpha
        if options.get("expert_score", "sigmoid") in (None, "sigmoid"):
            expert = (2.0 / x.shape[-1]) * torch.sigmoid(x)
        else:
            expert = _spec_softmax(x, -2)
        scores = (1.0 - alpha) * _spec_softmax(x, -1) + alpha * expert
    gates = torch.where(mask, scores, torch.zeros_like(scores))
    if mode == "token" and options.get("renormalize"):
        total = gates.sum(dim=-1, keepdim=True)
        positive = total > 0
        gates = torch.where(positive, gates / torch.where(positive, total, torch.ones_like(total)),
                            gates)
    scale = options.get("routed_scaling_factor")
    if scale is not None:
        gates = gates * scale
    return gates


def _router(options: dict, device: str, bias: Optional[Tensor]) -> api.Router:
    return api.Router(device=device, bias=bias, **options)


@torch.library.custom_op("usmoe::route", mutates_args=())
def _route_op(logits: Tensor, bias: Optional[Tensor], options: str) -> Tuple[Tensor, Tensor]:
    opts = json.loads(options)
    wide = logits.dtype == torch.float64
    source = logits.float() if wide else logits
    device = "cuda" if logits.is_cuda else "cpu"
    plan = _router(opts, device, bias)(source.detach())
    gates = torch.as_tensor(plan.gates).to(logits.device).reshape(logits.shape)
    mask = torch.as_tensor(plan.mask).to(logits.device).reshape(logits.shape)
    if wide:  # the f64 reference path: the compiled selection, gates in f64
        gates = gate_function(logits.detach(), mask, opts, biased=bias is not None)
    return gates, mask


@_route_op.register_fake
def _(logits: Tensor, bias: Optional[Tensor], options: str) -> Tuple[Tensor, Tensor]:
    gates_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    return (torch.empty_like(logits, dtype=gates_dtype),
            torch.empty_like(logits, dtype=torch.bool))


def _setup_context(ctx, inputs, output):
    logits, bias, options = inputs
    ctx.save_for_backward(logits, output[1])
    ctx.options = options
    ctx.biased = bias is not None


def _backward(ctx, grad_gates: Tensor, grad_mask: Optional[Tensor]):
    logits, mask = ctx.saved_tensors
    with torch.enable_grad():
        work = torch.float64 if logits.dtype == torch.float64 else torch.float32
        x = logits.detach().to(work).requires_grad_()
        gates = gate_function(x, mask, json.loads(ctx.options), biased=ctx.biased)
        (grad,) = torch.autograd.grad(gates, x, grad_gates.to(work))
    return grad.to(logits.dtype), None, None


_route_op.register_autograd(_backward, setup_context=_setup_context)


def route(logits: Tensor, bias: Optional[Tensor] = None, **options) -> Tuple[Tensor, Tensor]:
    """(gates, mask) of usmoe's router on `logits` ([T, E] or [B, T, E],
    f32/f16/bf16, or f64 for the reference path), differentiable in the
    logits; `options` are usmoe.route's router keywords (mode, k, alpha,
    ...). Works in eager mode, under autograd and inside torch.compile
    (fullgraph): the op has a fake implementation."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    unknown = sorted(set(options) - set(_ROUTER_OPTIONS))
    if unknown:
        raise TypeError(f"unknown router options {unknown}; usmoe.torch.route takes "
                        f"{list(_ROUTER_OPTIONS)}")
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"bias must be a torch.Tensor, got {type(bias).__name__}")
    return _route_op(logits, bias, _checked_options(tuple(sorted(options.items()))))


@torch.compiler.assume_constant_result
def _checked_options(items: tuple) -> str:
    """The op's options text, after the compiler's rules have checked them
    (errors in their words, before the op runs); under torch.compile this
    runs once, while tracing, and the text is a constant of the graph."""
    options = dict(items)
    api.Router(**options)
    return json.dumps(options, sort_keys=True)


def expert_views(w1: Tensor, w3: Optional[Tensor], w2: Tensor,
                 weight_layout: str = "in_out") -> Tuple[Tensor, Tensor, Tensor]:
    """w1, w3 [E, D, F] and w2 [E, F, D] as views of the weights in any
    layout usmoe.MoeLayer reads (usmoe.layer.in_out_views); differentiable,
    gradients reach the tensors given."""
    return layer.in_out_views(w1, w3, w2, weight_layout)


def layer_function(hidden: Tensor, logits: Tensor, mask: Tensor, w1: Tensor,
                   w3: Optional[Tensor], w2: Tensor, options: dict, biased: bool = False,
                   weight_layout: str = "in_out") -> Tensor:
    """The spec's MoE layer in PyTorch for the selection `mask`:
    y[g] = sum over selected (g, e) of gate * W2_e(silu(W1_e h) * W3_e h),
    differentiable in every tensor argument (the gates through
    `gate_function`). hidden [G, D] with G = B*T; expert weights as
    `expert_views` reads them (default: w1, w3 [E, D, F]; w2 [E, F, D])."""
    w1, w3, w2 = expert_views(w1, w3, w2, weight_layout)
    experts = w1.shape[0]
    gates = gate_function(logits, mask, options, biased).reshape(-1, experts)
    selected = mask.reshape(-1, experts)
    y = torch.zeros_like(hidden)
    for e in range(experts):
        rows = selected[:, e].nonzero().squeeze(-1)
        if rows.numel() == 0:
            continue
        x = hidden[rows]
        h = torch.nn.functional.silu(x @ w1[e]) * (x @ w3[e])
        y = y.index_add(0, rows, gates[rows, e, None].to(h.dtype) * (h @ w2[e]))
    return y


@torch.library.custom_op("usmoe::moe_layer", mutates_args=())
def _layer_op(hidden: Tensor, logits: Tensor, w1: Tensor, w3: Optional[Tensor], w2: Tensor,
              bias: Optional[Tensor], options: str,
              weight_layout: str) -> Tuple[Tensor, Tensor]:
    opts = json.loads(options)
    device = "cuda" if hidden.is_cuda else "cpu"
    detached = [None if w is None else w.detach() for w in (w1, w3, w2)]
    if hidden.dtype == torch.float64:  # the f64 reference path
        source = logits.detach().float()
        plan = _router(opts, device, bias)(source)
        mask = torch.as_tensor(plan.mask).to(logits.device).reshape(logits.shape)
        y = layer_function(hidden.detach(), logits.detach().double(), mask, *detached, opts,
                           biased=bias is not None, weight_layout=weight_layout)
        return y, mask
    plan = _router(opts, device, bias)(logits.detach())
    mask = torch.as_tensor(plan.mask).to(logits.device).reshape(logits.shape)
    moe = layer.MoeLayer(*detached, device=device, bias=bias, weight_layout=weight_layout,
                         **opts)
    y = moe(hidden.detach(), logits.detach())
    return torch.as_tensor(y).to(hidden.device), mask


@_layer_op.register_fake
def _(hidden, logits, w1, w3, w2, bias, options, weight_layout):
    return torch.empty_like(hidden), torch.empty_like(logits, dtype=torch.bool)


def _layer_setup(ctx, inputs, output):
    hidden, logits, w1, w3, w2, bias, options, weight_layout = inputs
    ctx.fused = w3 is None
    ctx.save_for_backward(hidden, logits, w1, w1 if w3 is None else w3, w2, output[1])
    ctx.options = options
    ctx.biased = bias is not None
    ctx.weight_layout = weight_layout


def _layer_backward(ctx, grad_y: Tensor, grad_mask: Optional[Tensor]):
    hidden, logits, w1, w3, w2, mask = ctx.saved_tensors
    given = [hidden, logits, w1] + ([] if ctx.fused else [w3]) + [w2]
    work = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    with torch.enable_grad():
        inputs = [t.detach().to(work).requires_grad_() for t in given]
        weights = inputs[2:] if not ctx.fused else [inputs[2], None, inputs[3]]
        y = layer_function(inputs[0], inputs[1], mask, *weights, json.loads(ctx.options),
                           biased=ctx.biased, weight_layout=ctx.weight_layout)
        grads = [g.to(t.dtype) for g, t in zip(torch.autograd.grad(y, inputs, grad_y.to(work)),
                                                given)]
    if ctx.fused:
        grads.insert(3, None)
    return (*grads, None, None, None)


_layer_op.register_autograd(_layer_backward, setup_context=_layer_setup)


def moe_layer(hidden: Tensor, logits: Tensor, w1: Tensor, w3: Optional[Tensor], w2: Tensor,
              bias: Optional[Tensor] = None, weight_layout: str = "in_out",
              **options) -> Tensor:
    """usmoe's compiled MoE layer (route, plan, SwiGLU experts, combine) as
    a custom op: hidden [B*T, D] (or [T, D]), logits [B, T, E] or [T, E] ->
    y [B*T, D], differentiable in hidden, logits and the expert weights (the
    backward differentiates `layer_function` for the selection the router
    made). The expert weights are read in place in either layout of
    usmoe.MoeLayer: weight_layout="in_out" (w1, w3 [E, D, F], w2 [E, F, D])
    or "out_in" (nn.Linear's: [E, F, D], [E, D, F]); w3=None when w1 is a
    fused gate/up weight ([E, D, 2F] / [E, 2F, D], gate first)."""
    for name, value in (("hidden", hidden), ("logits", logits), ("w1", w1), ("w2", w2)) + \
            ((("w3", w3),) if w3 is not None else ()):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    layer.check_weight_layout(weight_layout)
    unknown = sorted(set(options) - set(_ROUTER_OPTIONS))
    if unknown:
        raise TypeError(f"unknown router options {unknown}")
    y, _ = _layer_op(hidden, logits, w1, w3, w2, bias,
                     _checked_options(tuple(sorted(options.items()))), weight_layout)
    return y
