"""usmoe.nn.MoE: a routed SwiGLU MoE block as a torch.nn.Module whose
forward is usmoe's compiled layer (usmoe.torch.moe_layer) and whose
parameters train through its autograd."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from . import api
from . import torch as usmoe_torch


class MoE(nn.Module):
    """y = sum over the selected experts of gate * W2_e(silu(W1_e x) * W3_e x)
    for x [T, D] (one sequence) or [B, T, D] (B sequences), with the router
    logits x @ gate^T. Parameters: `gate` [E, D] (the router projection),
    `w1`, `w3` [E, D, F], `w2` [E, F, D]; `router_options` are usmoe.route's
    (mode, k, alpha, ...; mode="token" with k is Mixtral/OLMoE/Qwen routing).
    `bias` (a buffer, [E]) selects DeepSeek-V3's biased sigmoid scoring."""

    def __init__(self, hidden_size: int, ffn_size: int, num_experts: int,
                 bias: Optional[Tensor] = None, dtype: torch.dtype = torch.float32,
                 **router_options):
        super().__init__()
        if min(hidden_size, ffn_size, num_experts) < 1:
            raise ValueError(f"sizes must be >= 1, got hidden_size={hidden_size}, "
                             f"ffn_size={ffn_size}, num_experts={num_experts}")
        self.hidden_size, self.ffn_size, self.num_experts = hidden_size, ffn_size, num_experts
        self.router_options = dict(router_options)
        # The compiler's rules, with E known (k <= E, groups dividing E).
        api.Router(bias=bias, **self.router_options)._check_against(0, num_experts)
        self.gate = nn.Parameter(torch.empty(num_experts, hidden_size, dtype=dtype))
        self.w1 = nn.Parameter(torch.empty(num_experts, hidden_size, ffn_size, dtype=dtype))
        self.w3 = nn.Parameter(torch.empty(num_experts, hidden_size, ffn_size, dtype=dtype))
        self.w2 = nn.Parameter(torch.empty(num_experts, ffn_size, hidden_size, dtype=dtype))
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for weight, fan_in in ((self.gate, self.hidden_size), (self.w1, self.hidden_size),
                               (self.w3, self.hidden_size), (self.w2, self.ffn_size)):
            nn.init.normal_(weight, std=1.0 / math.sqrt(fan_in))

    def router_logits(self, hidden: Tensor) -> Tensor:
        return hidden @ self.gate.t()

    def forward(self, hidden: Tensor) -> Tensor:
        if hidden.dim() not in (2, 3) or hidden.shape[-1] != self.hidden_size:
            raise ValueError(f"hidden must be [T, {self.hidden_size}] or [B, T, "
                             f"{self.hidden_size}], got {tuple(hidden.shape)}")
        if hidden.dtype != self.w1.dtype:
            raise ValueError(f"hidden must have the weights' dtype {self.w1.dtype}, got "
                             f"{hidden.dtype}")
        logits = self.router_logits(hidden)
        flat = hidden.reshape(-1, self.hidden_size)
        y = usmoe_torch.moe_layer(flat.contiguous(), logits.contiguous(), self.w1, self.w3,
                                  self.w2, bias=self.bias, **self.router_options)
        return y.reshape(hidden.shape)

    def extra_repr(self) -> str:
        return (f"hidden_size={self.hidden_size}, ffn_size={self.ffn_size}, "
                f"num_experts={self.num_experts}, router={self.router_options}")
