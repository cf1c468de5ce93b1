"""MLIR text of the router functions the Python API compiles."""

from __future__ import annotations

import struct

MLIR_ELEMENT = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}


def f64_literal(value: float) -> str:
    """An exact f64 attribute literal (hex bit pattern: no decimal rounding)."""
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", float(value)))[0]


def router_function(mode: str, num_experts: int, element: str, *, k=None, n=None,
                    capacity=None, capacity_factor=None, alpha=None,
                    expert_score=None, renormalize=False, topk=None,
                    bias=False) -> str:
    """A function @router(logits [?, ?, E][, bias [E]]) -> (gates, mask,
    expert_offsets, token_ids, weights[, topk_ids, topk_weights]) built on
    moe.route."""
    e = num_experts
    logits_t = f"tensor<?x?x{e}x{element}>"
    score_t = f"tensor<?x?x{e}xf32>"
    attrs = []
    if k is not None:
        attrs.append(f"k = {f64_literal(k)}")
    if n is not None:
        attrs.append(f"n = {int(n)}")
    if capacity is not None:
        attrs.append(f"capacity = {int(capacity)}")
    if capacity_factor is not None:
        attrs.append(f"capacity_factor = {f64_literal(capacity_factor)}")
    if alpha is not None:
        attrs.append(f"alpha = {f64_literal(alpha)}")
    if expert_score is not None:
        attrs.append(f"expert_score = {expert_score}")
    if renormalize:
        attrs.append("renormalize")
    results = [score_t, f"tensor<?x?x{e}xi1>", f"tensor<{e + 1}xi32>",
               "tensor<?xi32>", "tensor<?xf32>"]
    values = ["%gates", "%mask", "%offsets", "%ids", "%weights"]
    bias_operand = " bias %bias" if bias else ""
    bias_type = f", tensor<{e}xf32>" if bias else ""
    body = [
        f"  %gates, %mask = moe.route {mode} %logits{bias_operand} {' '.join(attrs)}"
        f" : {logits_t}{bias_type}",
        f"  %offsets, %ids, %weights = moe.plan %gates, %mask : {score_t}",
    ]
    if topk is not None:
        body.append(f"  %tids, %tw = moe.topk_list %gates, %mask k = {int(topk)} : {score_t}")
        results += [f"tensor<?x{topk}xi32>", f"tensor<?x{topk}xf32>"]
        values += ["%tids", "%tw"]
    return "\n".join([
        f"func.func @router(%logits: {logits_t}"
        + (f", %bias: tensor<{e}xf32>" if bias else "")
        + f") -> ({', '.join(results)}) {{",
        *body,
        f"  return {', '.join(values)} : {', '.join(results)}",
        "}",
    ]) + "\n"
