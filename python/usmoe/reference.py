"""NumPy reference of the routing semantics (docs/Dialect.md).

Written from the spec alone, independently of the MLIR lowering, so that it
can serve as the oracle of the compiled CPU and GPU paths. All score math is
float32 with the operation order docs/Dialect.md fixes ("Semantics"), so
gates agree to the last few ulps and selections agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

F32 = np.float32


def _sanitize(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits).astype(F32)
    return np.where(np.isnan(x), F32(-np.inf), x).astype(F32)


def _order_free_sum(terms: np.ndarray, n: int) -> np.ndarray:
    """The f32 sum along the last axis of `n` terms in [0, 1] as the compiler
    computes it (SoftmaxSum in lib/Conversion/Common/RoutingMath.h): each
    term truncated to whole units of 2^-s, s = 62 - ceil(log2 n), the units
    added as integers (so in no particular order) and the total rounded to
    f32 once."""
    shift = 62 - (max(n, 1) - 1).bit_length()
    units = (terms * F32(2.0**shift)).astype(np.int64).sum(axis=-1, dtype=np.int64)
    return (units.astype(F32) * F32(2.0**-shift)).astype(F32)


def _softmax_lane(x: np.ndarray) -> np.ndarray:
    """Softmax along the last axis of sanitized f32 values.

    e_i = exp(x_i == m ? 0 : x_i - m), P = e / sum(e) (_order_free_sum),
    and P = 0 on lanes whose maximum is -inf.
    """
    m = x.max(axis=-1, keepdims=True) if x.shape[-1] else np.zeros(x.shape[:-1] + (1,), F32)
    valid = m != F32(-np.inf)
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = np.where(x == m, F32(0), x - m).astype(F32)
        e = np.where(valid, np.exp(shifted), F32(0)).astype(F32)
    s = _order_free_sum(e, x.shape[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (e / s[..., None]).astype(F32)
    return np.where(valid, p, F32(0)).astype(F32)


def token_softmax(logits: np.ndarray) -> np.ndarray:
    """P[b,t,e]: softmax of each token's logits over the experts."""
    return _softmax_lane(_sanitize(logits))


def expert_score(logits: np.ndarray, kind: str = "sigmoid") -> np.ndarray:
    """F[b,t,e]: (2/E) * sigmoid(L), or the softmax of L[b,:,e] over tokens."""
    x = _sanitize(logits)
    if kind == "softmax_tokens":
        return np.swapaxes(_softmax_lane(np.swapaxes(x, -1, -2)), -1, -2)
    if kind != "sigmoid":
        raise ValueError(f"unknown expert score '{kind}'")
    num_experts = x.shape[-1]
    with np.errstate(over="ignore"):
        sig = (F32(1) / (F32(1) + np.exp(-x))).astype(F32)
    return (F32(2.0 / num_experts) * sig).astype(F32)


def unified_score(logits: np.ndarray, alpha: float = 0.5, kind: str = "sigmoid") -> np.ndarray:
    """U = (1 - alpha) * P + alpha * F, each product and the sum in f32."""
    p = token_softmax(logits)
    f = expert_score(logits, kind)
    return ((F32(1.0 - alpha) * p).astype(F32) + (F32(alpha) * f).astype(F32)).astype(F32)


def _rank_order(scores: np.ndarray) -> np.ndarray:
    """Indices of a 1-D score vector, best first: larger score, then lower index.

    -0.0 and +0.0 rank equal; NaN ranks as -inf.
    """
    s = np.where(np.isnan(scores), -np.inf, scores).astype(np.float64)
    s = s + 0.0  # -0.0 -> +0.0
    return np.lexsort((np.arange(s.size), -s))


@dataclass
class Plan:
    """A routing plan: dense gates and mask plus the expert-major CSR."""

    gates: np.ndarray
    mask: np.ndarray
    expert_offsets: np.ndarray
    token_ids: np.ndarray
    weights: np.ndarray
    topk_ids: Optional[np.ndarray] = field(default=None)
    topk_weights: Optional[np.ndarray] = field(default=None)

    def _offsets(self) -> np.ndarray:
        offsets = self.expert_offsets
        if hasattr(offsets, "cpu"):  # a torch tensor (device plans)
            offsets = offsets.cpu().numpy()
        return np.asarray(offsets, np.int64)

    @property
    def selected_pairs(self) -> int:
        """M, the (token, expert) pairs the router selected."""
        return int(self._offsets()[-1])

    @property
    def expert_load(self) -> np.ndarray:
        """Tokens per expert ([E], int64)."""
        return np.diff(self._offsets())

    def routed_flops(self, hidden_size: int, ffn_size: int) -> int:
        """The routed experts' FLOPs for SwiGLU experts of D = hidden_size and
        F = ffn_size: M * 6 * D * F (the spec's count; where a fractional
        Unified budget saves inference cost)."""
        return self.selected_pairs * 6 * int(hidden_size) * int(ffn_size)

    def cost(self, hidden_size: int, ffn_size: int) -> dict:
        """What this routing costs: selected pairs, routed FLOPs, per-expert
        load and its imbalance (max load / mean load; 1.0 is balanced)."""
        load = self.expert_load
        mean = load.mean() if load.size else 0.0
        return {"selected_pairs": self.selected_pairs,
                "routed_flops": self.routed_flops(hidden_size, ffn_size),
                "expert_load": load.tolist(),
                "imbalance": float(load.max() / mean) if mean > 0 else 0.0}


def plan_from_selection(gates: np.ndarray, mask: np.ndarray) -> Plan:
    """Expert-major CSR over global token ids g = b*T + t, ascending g per expert."""
    b, t, e = mask.shape
    flat_mask = mask.reshape(b * t, e)
    flat_gates = gates.reshape(b * t, e)
    counts = flat_mask.sum(axis=0).astype(np.int32)
    offsets = np.zeros(e + 1, np.int32)
    offsets[1:] = np.cumsum(counts)
    ids, weights = [], []
    for expert in range(e):
        rows = np.nonzero(flat_mask[:, expert])[0]
        ids.append(rows.astype(np.int32))
        weights.append(flat_gates[rows, expert].astype(F32))
    token_ids = np.concatenate(ids) if ids else np.zeros(0, np.int32)
    wts = np.concatenate(weights) if weights else np.zeros(0, F32)
    return Plan(gates, mask, offsets, token_ids.astype(np.int32), wts.astype(F32))


def plan_from_topk(topk_ids: np.ndarray, topk_weights: np.ndarray, num_experts: int) -> Plan:
    """The plan of a given selection: rows are one sequence of R tokens."""
    ids = np.asarray(topk_ids)
    r = ids.shape[0]
    mask = np.zeros((1, r, num_experts), bool)
    gates = np.zeros((1, r, num_experts), F32)
    for row in range(r):
        if len(set(ids[row].tolist())) != ids.shape[1]:
            raise ValueError("an expert id repeats in a row")
        for j, expert in enumerate(ids[row]):
            if not 0 <= expert < num_experts:
                raise ValueError("an expert id is outside [0, E)")
            mask[0, row, expert] = True
            gates[0, row, expert] = F32(topk_weights[row][j])
    return plan_from_selection(gates, mask)


def topk_list(gates: np.ndarray, mask: np.ndarray, k: int):
    """[B*T, k] selected experts by descending gate (ties: lower expert first),
    padded with (-1, 0)."""
    b, t, e = mask.shape
    ids = np.full((b * t, k), -1, np.int32)
    wts = np.zeros((b * t, k), F32)
    flat_mask = mask.reshape(b * t, e)
    flat_gates = gates.reshape(b * t, e)
    for g in range(b * t):
        order = [i for i in _rank_order(np.where(flat_mask[g], flat_gates[g], -np.inf)) if flat_mask[g, i]]
        for j, expert in enumerate(order[:k]):
            ids[g, j] = expert
            wts[g, j] = flat_gates[g, expert]
    return ids, wts


def limit_groups(ranked: np.ndarray, n_group: int, topk_group: int) -> np.ndarray:
    """DeepSeek-V3 group-limited selection: `ranked` with the experts of all
    but each token's `topk_group` best groups set to -inf. A group (E /
    n_group consecutive experts) scores the f32 sum of its two largest
    ranking scores (the largest alone with one expert per group); ties go to
    the lower group."""
    b, t, e = ranked.shape
    if e % n_group or not 1 <= topk_group <= n_group:
        raise ValueError(f"bad groups: E={e}, n_group={n_group}, topk_group={topk_group}")
    size = e // n_group
    out = ranked.astype(F32).copy()
    for bi in range(b):
        for ti in range(t):
            groups = ranked[bi, ti].reshape(n_group, size)
            top = -np.sort(-groups, axis=1)
            scores = top[:, 0] if size == 1 else (top[:, 0] + top[:, 1]).astype(F32)
            keep = _rank_order(scores)[:topk_group]
            dropped = np.setdiff1d(np.arange(n_group), keep)
            for j in dropped:
                out[bi, ti, j * size:(j + 1) * size] = -np.inf
    return out


def _token_choice(ranked: np.ndarray, gate_values: np.ndarray, k: int, renormalize: bool,
                  groups=None):
    """Per token, the k best experts by `ranked` (inside the kept groups when
    `groups` = (n_group, topk_group)); their `gate_values` as gates, divided
    by their sum (_order_free_sum of the k gates) when renormalizing and
    > 0."""
    b, t, e = ranked.shape
    if not 1 <= k <= e:
        raise ValueError(f"k must be in [1, {e}], got {k}")
    if groups is not None:
        ranked = limit_groups(ranked, *groups)
    mask = np.zeros(ranked.shape, bool)
    for bi in range(b):
        for ti in range(t):
            mask[bi, ti, _rank_order(ranked[bi, ti])[:k]] = True
    gates = np.where(mask, gate_values, F32(0)).astype(F32)
    if renormalize:
        total = _order_free_sum(gates, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            gates = np.where(total[..., None] > 0, gates / total[..., None], gates).astype(F32)
    return gates, mask


def select_topk(scores: np.ndarray, k: int, renormalize: bool = False, groups=None):
    """Token Choice: each token keeps its k best experts."""
    return _token_choice(scores, scores, k, renormalize, groups)


def select_topk_sigmoid_bias(logits: np.ndarray, bias: np.ndarray, k: int,
                             renormalize: bool = False, groups=None):
    """DeepSeek-V3 Token Choice: rank experts by sigmoid(L) + bias[e], gate
    with sigmoid(L) (the bias moves the selection only)."""
    x = _sanitize(logits)
    with np.errstate(over="ignore"):
        s = (F32(1) / (F32(1) + np.exp(-x))).astype(F32)
    ranked = (s + np.asarray(bias, F32)).astype(F32)
    return _token_choice(ranked, s, k, renormalize, groups)


def expert_capacity(num_tokens: int, num_experts: int, capacity=None,
                    capacity_factor=None, k=None) -> int:
    """C = capacity, or clamp(ceil(capacity_factor * T * k / E), 1, T)."""
    if capacity is not None:
        return int(capacity)
    c = math.ceil(capacity_factor * num_tokens * k / num_experts)
    return max(1, min(c, num_tokens))


def select_expert_choice(scores: np.ndarray, capacity: int):
    """Expert Choice: each expert keeps its `capacity` best tokens per sequence."""
    b, t, e = scores.shape
    mask = np.zeros(scores.shape, bool)
    for bi in range(b):
        for ei in range(e):
            mask[bi, _rank_order(scores[bi, :, ei])[:capacity], ei] = True
    return np.where(mask, scores, F32(0)).astype(F32), mask


def unified_budget(num_tokens: int, n=None, k=None) -> int:
    """N = n, or floor(k * T)."""
    if n is not None:
        return int(n)
    return int(math.floor(float(k) * num_tokens))


def select_global(scores: np.ndarray, budget: int):
    """Unified: the `budget` best (t, e) pairs of each sequence, ties by t*E+e."""
    b, t, e = scores.shape
    mask = np.zeros(scores.shape, bool)
    for bi in range(b):
        best = _rank_order(scores[bi].reshape(-1))[:budget]
        mask[bi].reshape(-1)[best] = True
    return np.where(mask, scores, F32(0)).astype(F32), mask


def soft_cap(logits: np.ndarray, cap: float) -> np.ndarray:
    """cap * tanh(L / cap) of the f32 logits, in f64 rounded once to f32
    (NaN stays NaN, +-inf becomes +-cap)."""
    x = np.asarray(logits).astype(F32).astype(np.float64)
    return (np.float64(cap) * np.tanh(x / np.float64(cap))).astype(F32)


def route(logits, mode: str = "unified", k=None, alpha: float = 0.5,
          expert_score_kind: str = "sigmoid", renormalize: bool = False,
          capacity=None, capacity_factor=None, budget=None, bias=None,
          routed_scaling_factor=None, softcap=None, n_group=None, topk_group=None,
          cu_seqlens=None) -> Plan:
    """The whole router of `mode` on [B, T, E] logits, as the spec defines it
    (`bias`: the sigmoid_bias Token Choice variant), in the spec's order:
    soft-cap the logits, score, select, gate, renormalize, scale. With
    `cu_seqlens`, the logits are one packed batch [N, E] of sequences
    cu_seqlens[i] .. cu_seqlens[i+1], each routed with its own T."""
    logits = np.asarray(logits)
    if logits.ndim == 2:
        logits = logits[None]
    if cu_seqlens is not None:
        options = dict(mode=mode, k=k, alpha=alpha, expert_score_kind=expert_score_kind,
                       renormalize=renormalize, capacity=capacity,
                       capacity_factor=capacity_factor, budget=budget, bias=bias,
                       routed_scaling_factor=routed_scaling_factor, softcap=softcap,
                       n_group=n_group, topk_group=topk_group)
        gates = np.zeros(logits.shape, F32)
        mask = np.zeros(logits.shape, bool)
        for lo, hi in zip(cu_seqlens[:-1], cu_seqlens[1:]):
            if hi > lo:
                part = route(logits[:, lo:hi], **options)
                gates[:, lo:hi], mask[:, lo:hi] = part.gates, part.mask
        plan = plan_from_selection(gates, mask)
        if mode == "token":
            plan.topk_ids, plan.topk_weights = topk_list(gates, mask, int(k))
        return plan
    if softcap is not None:
        logits = soft_cap(logits, softcap)
    _, t, e = logits.shape
    if mode == "token":
        groups = None if n_group is None else (int(n_group), int(topk_group))
        if bias is not None:
            gates, mask = select_topk_sigmoid_bias(logits, bias, int(k), renormalize, groups)
        else:
            gates, mask = select_topk(token_softmax(logits), int(k), renormalize, groups)
    elif mode == "expert":
        c = expert_capacity(t, e, capacity, capacity_factor, k)
        gates, mask = select_expert_choice(token_softmax(logits), c)
    elif mode == "unified":
        n = unified_budget(t, budget, k)
        gates, mask = select_global(unified_score(logits, alpha, expert_score_kind), n)
    else:
        raise ValueError(f"unknown mode '{mode}'")
    if routed_scaling_factor is not None:
        gates = (gates * F32(routed_scaling_factor)).astype(F32)
    plan = plan_from_selection(gates, mask)
    if mode == "token":
        plan.topk_ids, plan.topk_weights = topk_list(gates, mask, int(k))
    return plan


def silu(x: np.ndarray) -> np.ndarray:
    return (x / (F32(1) + np.exp(-x))).astype(F32)


def moe_layer(hidden: np.ndarray, plan: Plan, w1: np.ndarray, w3: np.ndarray,
              w2: np.ndarray, init: Optional[np.ndarray] = None) -> np.ndarray:
    """y[g] = init[g] + sum over selected (g, e) of gate * FFN_e(h[g]), with
    FFN_e(x) = W2_e (silu(W1_e x) * (W3_e x)) (SwiGLU), in f32."""
    h = hidden.astype(F32)
    y = np.zeros(h.shape, F32) if init is None else init.astype(F32).copy()
    offsets = plan.expert_offsets
    for e in range(len(offsets) - 1):
        for m in range(offsets[e], offsets[e + 1]):
            g = plan.token_ids[m]
            x = h[g]
            a = silu(x @ w1[e].astype(F32)) * (x @ w3[e].astype(F32))
            y[g] += plan.weights[m] * (a @ w2[e].astype(F32))
    return y
