"""usmoe.nn.MoE: a routed SwiGLU MoE block as a torch.nn.Module whose
forward is usmoe's compiled layer (usmoe.torch.moe_layer) and whose
parameters train through its autograd."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from . import api, layer
from . import torch as usmoe_torch


class MoE(nn.Module):
    """y = sum over the selected experts of gate * W2_e(silu(W1_e x) * W3_e x)
    for x [T, D] (one sequence) or [B, T, D] (B sequences), with the router
    logits x @ gate^T. `router_options` are usmoe.route's (mode, k, alpha,
    ...; mode="token" with k is Mixtral/OLMoE/Qwen routing). `bias` (a
    buffer, [E]) selects DeepSeek-V3's biased sigmoid scoring.

    Parameters, in the layout real checkpoints use (the compiled layer reads
    them in place, no copies):
    - `gate` [E, D], the router projection;
    - weight_layout="in_out" (default): `w1`, `w3` [E, D, F], `w2` [E, F, D];
      weight_layout="out_in" (nn.Linear's, Hugging Face's): `w1`, `w3`
      [E, F, D], `w2` [E, D, F];
    - fused_gate_up=True: one `w13` (gate rows first, then up) instead of
      `w1` and `w3`: [E, D, 2F] ("in_out") or [E, 2F, D] ("out_in", HF's
      `gate_up_proj`)."""

    def __init__(self, hidden_size: int, ffn_size: int, num_experts: int,
                 bias: Optional[Tensor] = None, dtype: torch.dtype = torch.float32,
                 weight_layout: str = "in_out", fused_gate_up: bool = False,
                 **router_options):
        super().__init__()
        if min(hidden_size, ffn_size, num_experts) < 1:
            raise ValueError(f"sizes must be >= 1, got hidden_size={hidden_size}, "
                             f"ffn_size={ffn_size}, num_experts={num_experts}")
        layer.check_weight_layout(weight_layout)
        self.hidden_size, self.ffn_size, self.num_experts = hidden_size, ffn_size, num_experts
        self.weight_layout, self.fused_gate_up = weight_layout, bool(fused_gate_up)
        self.router_options = dict(router_options)
        # The compiler's rules, with E known (k <= E, groups dividing E).
        api.Router(bias=bias, **self.router_options)._check_against(0, num_experts)
        e, d, f = num_experts, hidden_size, ffn_size
        in_out = weight_layout == "in_out"

        def weight(*shape):
            return nn.Parameter(torch.empty(e, *shape, dtype=dtype))

        self.gate = weight(d)
        if self.fused_gate_up:
            self.w13 = weight(d, 2 * f) if in_out else weight(2 * f, d)
        else:
            self.w1 = weight(d, f) if in_out else weight(f, d)
            self.w3 = weight(d, f) if in_out else weight(f, d)
        self.w2 = weight(f, d) if in_out else weight(d, f)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.reset_parameters()

    def expert_weights(self):
        """(w1, w3, w2) as moe_layer takes them: w3 is None when fused."""
        if self.fused_gate_up:
            return self.w13, None, self.w2
        return self.w1, self.w3, self.w2

    def reset_parameters(self) -> None:
        w1, w3, w2 = self.expert_weights()
        for weight, fan_in in ((self.gate, self.hidden_size), (w1, self.hidden_size),
                               (w3, self.hidden_size), (w2, self.ffn_size)):
            if weight is not None:
                nn.init.normal_(weight, std=1.0 / math.sqrt(fan_in))

    def router_logits(self, hidden: Tensor) -> Tensor:
        return hidden @ self.gate.t()

    def forward(self, hidden: Tensor) -> Tensor:
        if hidden.dim() not in (2, 3) or hidden.shape[-1] != self.hidden_size:
            raise ValueError(f"hidden must be [T, {self.hidden_size}] or [B, T, "
                             f"{self.hidden_size}], got {tuple(hidden.shape)}")
        if hidden.dtype != self.w2.dtype:
            raise ValueError(f"hidden must have the weights' dtype {self.w2.dtype}, got "
                             f"{hidden.dtype}")
        logits = self.router_logits(hidden)
        flat = hidden.reshape(-1, self.hidden_size)
        y = usmoe_torch.moe_layer(flat.contiguous(), logits.contiguous(), *self.expert_weights(),
                                  bias=self.bias, weight_layout=self.weight_layout,
                                  **self.router_options)
        return y.reshape(hidden.shape)

    def extra_repr(self) -> str:
        return (f"hidden_size={self.hidden_size}, ffn_size={self.ffn_size}, "
                f"num_experts={self.num_experts}, weight_layout={self.weight_layout}, "
                f"fused_gate_up={self.fused_gate_up}, router={self.router_options}")
