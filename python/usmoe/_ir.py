"""MLIR text of the router functions the Python API compiles."""

from __future__ import annotations

MLIR_ELEMENT = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}


def _route_line(router: str, logits_t: str, *, bias: bool, e: int, seqlens: bool) -> str:
    """moe.route with `router`, the attribute text the compiler's router
    rules print (usmoe.cuda.RouterOptions.attribute())."""
    bias_operand = " bias %bias" if bias else ""
    bias_type = f", tensor<{e}xf32>" if bias else ""
    packed = " seqlens %seqlens : tensor<?xi32>" if seqlens else ""
    return (f"  %gates, %mask = moe.route {router} %logits{bias_operand}{packed}"
            f" : {logits_t}{bias_type}")


def _routing_types(e: int, element: str, seqlens: bool):
    """Logits, score and mask tensor types: [B, T, E], or one packed batch
    [1, N, E] of sequences delimited by seqlens."""
    batch = "1x?" if seqlens else "?x?"
    return (f"tensor<{batch}x{e}x{element}>", f"tensor<{batch}x{e}xf32>",
            f"tensor<{batch}x{e}xi1>")


def router_function(router: str, num_experts: int, element: str, *, topk=None,
                    bias=False, seqlens=False) -> str:
    """A function @router(logits [?, ?, E][, bias [E]][, seqlens [S + 1]])
    -> (gates, mask, expert_offsets, token_ids, weights[, topk_ids,
    topk_weights]) built on moe.route with the router attribute `router`."""
    e = num_experts
    logits_t, score_t, mask_t = _routing_types(e, element, seqlens)
    results = [score_t, mask_t, f"tensor<{e + 1}xi32>",
               "tensor<?xi32>", "tensor<?xf32>"]
    values = ["%gates", "%mask", "%offsets", "%ids", "%weights"]
    body = [
        _route_line(router, logits_t, bias=bias, e=e, seqlens=seqlens),
        f"  %offsets, %ids, %weights = moe.plan %gates, %mask : {score_t}",
    ]
    if topk is not None:
        body.append(f"  %tids, %tw = moe.topk_list %gates, %mask k = {int(topk)} : {score_t}")
        results += [f"tensor<?x{topk}xi32>", f"tensor<?x{topk}xf32>"]
        values += ["%tids", "%tw"]
    return "\n".join([
        f"func.func @router(%logits: {logits_t}"
        + (f", %bias: tensor<{e}xf32>" if bias else "")
        + (", %seqlens: tensor<?xi32>" if seqlens else "")
        + f") -> ({', '.join(results)}) {{",
        *body,
        f"  return {', '.join(values)} : {', '.join(results)}",
        "}",
    ]) + "\n"


def layer_function(router: str, num_experts: int, hidden_size: int, ffn_size: int,
                   logits_element: str, element: str, *, bias=False, seqlens=False,
                   layout: str = "in_out", fused: bool = False) -> str:
    """A function @layer(logits [?, ?, E], hidden [G, D], init [G, D],
    expert weights (see `_expert_weights`)[, bias [E]][, seqlens [S + 1]])
    -> y [G, D]: route, plan, dispatch, SwiGLU experts and combine (y =
    init + the routed sum)."""
    e = num_experts
    logits_t, score_t, _ = _routing_types(e, logits_element, seqlens)
    selection = [f"%logits: {logits_t}"], _route_line(router, logits_t, bias=bias, e=e,
                                                      seqlens=seqlens)
    extra = ([f"%bias: tensor<{e}xf32>"] if bias else []) + \
        (["%seqlens: tensor<?xi32>"] if seqlens else [])
    return _layer(selection, extra, score_t, e, hidden_size, ffn_size, element, layout, fused)


def given_layer_function(num_experts: int, k: int, hidden_size: int, ffn_size: int,
                         element: str, layout: str = "in_out", fused: bool = False) -> str:
    """A function @layer(topk_ids [R, k], topk_weights [R, k], hidden [R, D],
    init [R, D], expert weights) -> y [R, D]: the layer on a selection made
    elsewhere (moe.select_given)."""
    e = num_experts
    selection = ([f"%tids: tensor<?x{k}xi32>", f"%tw: tensor<?x{k}xf32>"],
                 f"  %gates, %mask = moe.select_given %tids, %tw experts = {e}"
                 f" : tensor<?x{k}xi32>, tensor<?x{k}xf32>")
    return _layer(selection, [], f"tensor<1x?x{e}xf32>", e, hidden_size, ffn_size, element,
                  layout, fused)


def _expert_weights(e: int, d: int, f: int, element: str, layout: str, fused: bool):
    """The expert weights' arguments and the lines that take W1 and W3 out
    of a fused gate/up argument: W1, W3, W2 are [E, D, F], [E, D, F], [E, F,
    D] in layout "in_out" and [E, F, D], [E, F, D], [E, D, F] in "out_in";
    fused, W1 and W3 are the first and second half of one gate/up argument
    along F (HF's `gate_up_proj` [E, 2F, D] in "out_in"), sliced as views."""
    up = (d, f) if layout == "in_out" else (f, d)
    up_t = f"tensor<{e}x{up[0]}x{up[1]}x{element}>"
    down_t = f"tensor<{e}x{up[1]}x{up[0]}x{element}>"
    if not fused:
        return [f"%w1: {up_t}", f"%w3: {up_t}", f"%w2: {down_t}"], [], up_t, down_t
    axis = 2 if layout == "in_out" else 1
    fused_shape = [e, *up]
    fused_shape[axis] = 2 * f
    fused_t = f"tensor<{'x'.join(map(str, fused_shape))}x{element}>"
    sizes = ", ".join(map(str, (e, *up)))
    lines = []
    for name, start in (("%w1", 0), ("%w3", f)):
        offsets = [0, 0, 0]
        offsets[axis] = start
        lines.append(f"  {name} = tensor.extract_slice %w13[{', '.join(map(str, offsets))}]"
                     f" [{sizes}] [1, 1, 1] : {fused_t} to {up_t}")
    return [f"%w13: {fused_t}", f"%w2: {down_t}"], lines, up_t, down_t


def _layer(selection, extra_args, score_t: str, e: int, d: int, f: int, element: str,
           layout: str, fused: bool) -> str:
    """@layer(selection args, hidden, init, expert weights, extra args): the
    selection's lines, then plan, dispatch, SwiGLU experts and combine."""
    selection_args, selection_line = selection
    rows_t = f"tensor<?x{d}x{element}>"
    expert_rows_t = f"tensor<?x{d}xf32>"  # moe.expert_ffn returns f32 rows
    offsets_t = f"tensor<{e + 1}xi32>"
    weight_args, weight_lines, up_t, down_t = _expert_weights(e, d, f, element, layout, fused)
    args = selection_args + [f"%hidden: {rows_t}", f"%init: {rows_t}"] + weight_args + \
        extra_args
    layout_clause = "" if layout == "in_out" else f" layout {layout}"
    return "\n".join([
        f"func.func @layer({', '.join(args)}) -> {rows_t} {{",
        selection_line,
        *weight_lines,
        f"  %offsets, %ids, %weights = moe.plan %gates, %mask : {score_t}",
        f"  %x = moe.dispatch %hidden, %ids : {rows_t}, tensor<?xi32>",
        f"  %h = moe.expert_ffn %x, %offsets, %w1, %w3, %w2{layout_clause} : {rows_t},"
        f" {offsets_t}, {up_t}, {up_t}, {down_t}",
        f"  %y = moe.combine %h, %ids, %weights into %init offsets %offsets : {expert_rows_t},"
        f" tensor<?xi32>, tensor<?xf32> into {rows_t}, {offsets_t}",
        f"  return %y : {rows_t}",
        "}",
    ]) + "\n"


def given_selection_function(num_experts: int, k: int) -> str:
    """A function @given(ids [R, k] i32, weights [R, k] f32) -> (gates,
    mask, expert_offsets, token_ids, weights) of a selection made elsewhere
    (moe.select_given), planned like any router's."""
    e = num_experts
    score_t = f"tensor<1x?x{e}xf32>"
    results = [score_t, f"tensor<1x?x{e}xi1>", f"tensor<{e + 1}xi32>", "tensor<?xi32>",
               "tensor<?xf32>"]
    return "\n".join([
        f"func.func @given(%ids: tensor<?x{k}xi32>, %w: tensor<?x{k}xf32>)"
        f" -> ({', '.join(results)}) {{",
        f"  %gates, %mask = moe.select_given %ids, %w experts = {e}"
        f" : tensor<?x{k}xi32>, tensor<?x{k}xf32>",
        f"  %offsets, %tids, %weights = moe.plan %gates, %mask : {score_t}",
        f"  return %gates, %mask, %offsets, %tids, %weights : {', '.join(results)}",
        "}",
    ]) + "\n"
