"""Hugging Face MoE models on usmoe's routers, training-free, as the USMoE
paper does it: `patch(model, router="unified", k=1.5)` replaces the forward
of every sparse MoE block with usmoe's compiled layer (usmoe.torch.moe_layer)
on the block's own parameters; router="token" reproduces the model's own
Token Choice routing.

Supported blocks (transformers 5.x layout: a router `gate.weight` [E, D],
fused experts `experts.gate_up_proj` [E, 2F, D] and `experts.down_proj`
[E, D, F]): OLMoE, Qwen2-MoE (with its gated shared expert), Qwen3-MoE and
Mixtral (softmax scoring), and DeepSeek-V3 (sigmoid scoring with the
correction bias, group-limited selection, routed scaling factor, shared
experts). Other blocks are refused with a ValueError naming the class.
"""

from __future__ import annotations

import types
from typing import List

import torch
from torch import Tensor
from torch.nn import functional as F

from . import api
from . import torch as usmoe_torch

_SUPPORTED = ("OlmoeSparseMoeBlock", "Qwen2MoeSparseMoeBlock", "Qwen3MoeSparseMoeBlock",
              "MixtralSparseMoeBlock", "DeepseekV3MoE")


def _is_moe_block(module) -> bool:
    return type(module).__name__.endswith(("SparseMoeBlock", "MoE"))


def _token_choice_of(block) -> dict:
    """The block's own router as usmoe options: top-k with the model's
    renormalization (Mixtral always renormalizes), and for DeepSeek-V3 its
    groups and routed scaling factor (its correction bias is passed as the
    layer's bias, which selects sigmoid scoring)."""
    gate = block.gate
    renormalize = getattr(gate, "norm_topk_prob", type(block).__name__.startswith("Mixtral"))
    options = dict(mode="token", k=int(gate.top_k), renormalize=bool(renormalize))
    if hasattr(gate, "e_score_correction_bias"):
        options.update(n_group=int(gate.num_group), topk_group=int(gate.topk_group),
                       routed_scaling_factor=float(gate.routed_scaling_factor))
    return options


def _usmoe_forward(self, hidden_states: Tensor) -> Tensor:
    batch, tokens, hidden = hidden_states.shape
    flat = hidden_states.reshape(-1, hidden)
    logits = F.linear(flat.float(), self.gate.weight.float()).reshape(batch, tokens, -1)
    bias = self.gate.e_score_correction_bias if self.usmoe_biased else None
    # The checkpoint's fused [E, 2F, D] gate/up and [E, D, F] down weights,
    # read in place (nn.Linear's layout), no copies.
    y = usmoe_torch.moe_layer(flat.contiguous(), logits.float().contiguous(),
                              self.experts.gate_up_proj, None, self.experts.down_proj,
                              bias=bias, weight_layout="out_in", **self.usmoe_router)
    if getattr(self, "shared_experts", None) is not None:  # DeepSeek-V3
        y = y + self.shared_experts(flat)
    if getattr(self, "shared_expert", None) is not None:
        shared = self.shared_expert(flat)
        if getattr(self, "shared_expert_gate", None) is not None:
            shared = torch.sigmoid(self.shared_expert_gate(flat)) * shared
        y = y + shared
    return y.reshape(batch, tokens, hidden)


def patch(model, router: str = "token", **options) -> List[str]:
    """Routes every supported MoE block of `model` through usmoe: router
    "token" is the model's own Token Choice (same k and renormalization);
    "unified" or "expert" switch it training-free with usmoe.route's
    options (k, alpha, capacity_factor, ...; budgets are per sequence of the
    batch). Returns the patched modules' names; `unpatch` undoes it."""
    patched = []
    for name, module in model.named_modules():
        if not _is_moe_block(module):
            continue
        kind = type(module).__name__
        if kind not in _SUPPORTED:
            raise ValueError(f"usmoe.hf.patch does not support {kind} (at '{name}') yet; "
                             f"supported: {', '.join(_SUPPORTED)}")
        if router == "token":
            chosen = dict(_token_choice_of(module), **options)
        else:
            chosen = dict(mode=router, **options)
        # The correction bias belongs to DeepSeek-V3's own (Token Choice)
        # scoring; switched routers score with the softmax.
        biased = router == "token" and hasattr(module.gate, "e_score_correction_bias")
        bias = module.gate.e_score_correction_bias if biased else None
        # The compiler's rules now, with E known, in their words.
        api.Router(bias=bias, **chosen)._check_against(0, int(module.gate.weight.shape[0]))
        module.usmoe_router = chosen
        module.usmoe_biased = biased
        module.usmoe_original_forward = module.forward
        module.forward = types.MethodType(_usmoe_forward, module)
        patched.append(name)
    if not patched:
        raise ValueError(f"no MoE block found in {type(model).__name__}")
    return patched


def unpatch(model) -> None:
    """Restores the forwards `patch` replaced."""
    for module in model.modules():
        if hasattr(module, "usmoe_original_forward"):
            module.forward = module.usmoe_original_forward
            del module.usmoe_original_forward, module.usmoe_router, module.usmoe_biased
