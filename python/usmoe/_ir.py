"""MLIR text of the router functions the Python API compiles."""

from __future__ import annotations

MLIR_ELEMENT = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}


def _route_line(router: str, logits_t: str, *, bias: bool, e: int) -> str:
    """moe.route with `router`, the attribute text the compiler's router
    rules print (usmoe.cuda.RouterOptions.attribute())."""
    bias_operand = " bias %bias" if bias else ""
    bias_type = f", tensor<{e}xf32>" if bias else ""
    return (f"  %gates, %mask = moe.route {router} %logits{bias_operand}"
            f" : {logits_t}{bias_type}")


def router_function(router: str, num_experts: int, element: str, *, topk=None,
                    bias=False) -> str:
    """A function @router(logits [?, ?, E][, bias [E]]) -> (gates, mask,
    expert_offsets, token_ids, weights[, topk_ids, topk_weights]) built on
    moe.route with the router attribute `router`."""
    e = num_experts
    logits_t = f"tensor<?x?x{e}x{element}>"
    score_t = f"tensor<?x?x{e}xf32>"
    results = [score_t, f"tensor<?x?x{e}xi1>", f"tensor<{e + 1}xi32>",
               "tensor<?xi32>", "tensor<?xf32>"]
    values = ["%gates", "%mask", "%offsets", "%ids", "%weights"]
    body = [
        _route_line(router, logits_t, bias=bias, e=e),
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


def layer_function(router: str, num_experts: int, hidden_size: int, ffn_size: int,
                   logits_element: str, element: str, *, bias=False) -> str:
    """A function @layer(logits [?, ?, E], hidden [G, D], init [G, D], w1
    [E, D, F], w3 [E, D, F], w2 [E, F, D][, bias [E]]) -> y [G, D]: route,
    plan, dispatch, SwiGLU experts and combine (y = init + the routed sum)."""
    e, d, f = num_experts, hidden_size, ffn_size
    logits_t = f"tensor<?x?x{e}x{logits_element}>"
    score_t = f"tensor<?x?x{e}xf32>"
    rows_t = f"tensor<?x{d}x{element}>"
    expert_rows_t = f"tensor<?x{d}xf32>"  # moe.expert_ffn returns f32 rows
    offsets_t = f"tensor<{e + 1}xi32>"
    up_t, down_t = f"tensor<{e}x{d}x{f}x{element}>", f"tensor<{e}x{f}x{d}x{element}>"
    args = [f"%logits: {logits_t}", f"%hidden: {rows_t}", f"%init: {rows_t}",
            f"%w1: {up_t}", f"%w3: {up_t}", f"%w2: {down_t}"]
    if bias:
        args.append(f"%bias: tensor<{e}xf32>")
    return "\n".join([
        f"func.func @layer({', '.join(args)}) -> {rows_t} {{",
        _route_line(router, logits_t, bias=bias, e=e),
        f"  %offsets, %ids, %weights = moe.plan %gates, %mask : {score_t}",
        f"  %x = moe.dispatch %hidden, %ids : {rows_t}, tensor<?xi32>",
        f"  %h = moe.expert_ffn %x, %offsets, %w1, %w3, %w2 : {rows_t}, {offsets_t}, {up_t},"
        f" {up_t}, {down_t}",
        f"  %y = moe.combine %h, %ids, %weights into %init offsets %offsets : {expert_rows_t},"
        f" tensor<?xi32>, tensor<?xf32> into {rows_t}, {offsets_t}",
        f"  return %y : {rows_t}",
        "}",
    ]) + "\n"
