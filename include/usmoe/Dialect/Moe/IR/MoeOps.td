//===- MoeOps.td - moe dialect operations ------------------*- tablegen -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_DIALECT_MOE_IR_MOEOPS_TD
#define USMOE_DIALECT_MOE_IR_MOEOPS_TD

include "usmoe/Dialect/Moe/IR/MoeAttrs.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

/// Ops whose results are [B, T, E]-shaped like their first operand.
class Moe_RoutingShapedOp<string mnemonic, list<Trait> traits = []>
    : Moe_Op<mnemonic, !listconcat(traits, [Pure, InferTypeOpAdaptor])> {
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Scoring
//===----------------------------------------------------------------------===//

def Moe_TokenSoftmaxOp : Moe_RoutingShapedOp<"token_softmax"> {
  let summary = "token score P: softmax of each token's logits over experts";
  let description = [{
    `P[b,t,e] = exp(L[b,t,e]) / sum_e' exp(L[b,t,e'])`, computed in f32
    whatever the logits' element type. NaN logits count as `-inf`; a row of
    only `-inf` gives `P = 0` for every expert, never NaN.

    Example:
    ```mlir
    %p = moe.token_softmax %logits : tensor<?x?x64xbf16>
    ```
  }];
  let arguments = (ins Moe_LogitsTensor:$logits);
  let results = (outs Moe_ScoreTensor:$scores);
  let assemblyFormat = "$logits attr-dict `:` type($logits)";
}

def Moe_ExpertScoreOp : Moe_RoutingShapedOp<"expert_score"> {
  let summary = "expert score F: sigmoid or softmax over the tokens";
  let description = [{
    `sigmoid`: `F = (2/E) * sigmoid(L)`, on the scale of a softmax over E
    experts (`sigmoid(0) * 2/E = 1/E`). `softmax_tokens`: softmax of
    `L[b,:,e]` over the T tokens of each sequence; a column of only `-inf`
    gives 0. NaN logits count as `-inf`. Computed in f32.

    Example:
    ```mlir
    %f = moe.expert_score sigmoid %logits : tensor<2x?x8xf32>
    ```
  }];
  let arguments = (ins Moe_ExpertScoreKindAttr:$kind, Moe_LogitsTensor:$logits);
  let results = (outs Moe_ScoreTensor:$scores);
  let assemblyFormat = "`` $kind $logits attr-dict `:` type($logits)";
}

def Moe_UnifiedScoreOp : Moe_RoutingShapedOp<"unified_score"> {
  let summary = "USMoE unified score U = (1 - alpha) * P + alpha * F";
  let description = [{
    Mixes the token score `P` (`moe.token_softmax`) and the expert score `F`
    (`moe.expert_score` of kind `expert_score`) with `alpha` in [0, 1].
    `alpha = 0` is the row softmax (and canonicalizes to
    `moe.token_softmax`), `alpha = 1` the expert score alone.

    Example:
    ```mlir
    %u = moe.unified_score %logits alpha = 5.000000e-01 expert_score = sigmoid
        : tensor<1x?x64xf16>
    ```
  }];
  let arguments = (ins Moe_LogitsTensor:$logits, F64Attr:$alpha,
                       Moe_ExpertScoreKindAttr:$expert_score);
  let results = (outs Moe_ScoreTensor:$scores);
  let assemblyFormat = [{
    $logits `alpha` `=` $alpha `expert_score` `=` `` $expert_score attr-dict
    `:` type($logits)
  }];
  let hasCanonicalizer = 1;
}

//===----------------------------------------------------------------------===//
// Selection
//===----------------------------------------------------------------------===//

/// A selection turns f32 scores into the dense part of the routing plan:
/// `gates` (0 where not selected) and an explicit `mask`, because a selected
/// gate may be exactly 0 (a row of -inf logits).
class Moe_SelectionOp<string mnemonic, list<Trait> traits = []>
    : Moe_RoutingShapedOp<mnemonic, traits> {
  let results = (outs Moe_ScoreTensor:$gates, Moe_MaskTensor:$mask);
}

def Moe_SelectTopKOp : Moe_SelectionOp<"select_topk"> {
  let summary = "Token Choice: each token takes its k best-scored experts";
  let description = [{
    For every token `(b, t)`, selects the `k` experts with the largest score
    (ties: the lower expert index wins). Gates are the scores of the selected
    experts; with `renormalize` they are divided by their sum over the `k`
    selected (a zero sum leaves zero gates). `k` must be in [1, E].

    Example:
    ```mlir
    %gates, %mask = moe.select_topk %p k = 2 renormalize : tensor<?x?x8xf32>
    ```
  }];
  let arguments = (ins Moe_ScoreTensor:$scores,
                       ConfinedAttr<I64Attr, [IntPositive]>:$k,
                       UnitAttr:$renormalize);
  let assemblyFormat = [{
    $scores `k` `=` $k (`renormalize` $renormalize^)? attr-dict
    `:` type($scores)
  }];
}

def Moe_SelectExpertChoiceOp : Moe_SelectionOp<"select_expert_choice"> {
  let summary = "Expert Choice: each expert takes its C best-scored tokens";
  let description = [{
    For every sequence `b` and expert `e`, selects the `C` tokens with the
    largest score (ties: the lower token index wins); gates are the scores.
    `C` is `capacity`, or `ceil(capacity_factor * T * k / E)` clamped to
    [1, T] when `capacity_factor` and `k` are given instead (with a static T
    this canonicalizes to an explicit capacity). A token may get 0..E experts.

    Example:
    ```mlir
    %gates, %mask = moe.select_expert_choice %p capacity = 2 : tensor<1x4x4xf32>
    %g2, %m2 = moe.select_expert_choice %p capacity_factor = 1.250000e+00 k = 2
        : tensor<?x?x8xf32>
    ```
  }];
  let arguments = (ins Moe_ScoreTensor:$scores,
                       OptionalAttr<I64Attr>:$capacity,
                       OptionalAttr<F64Attr>:$capacity_factor,
                       OptionalAttr<I64Attr>:$k);
  let assemblyFormat = [{
    $scores oilist(`capacity` `=` $capacity
                  | `capacity_factor` `=` $capacity_factor
                  | `k` `=` $k) attr-dict `:` type($scores)
  }];
  let extraClassDeclaration = [{
    /// The budget options in the form of the shared router rules.
    ::mlir::usmoe::routing::RouterOptions getRouterOptions();
  }];
  let hasCanonicalizer = 1;
}

def Moe_SelectGlobalOp : Moe_SelectionOp<"select_global"> {
  let summary = "USMoE: global top-N over each sequence's token x expert scores";
  let description = [{
    For every sequence `b`, selects the `N` pairs `(t, e)` with the largest
    score over the flattened `T * E` matrix (ties: the lower flat index
    `t * E + e` wins). `N` is `n`, or `floor(k * T)` for a (possibly
    fractional) number of experts per token `k`. Gates are the scores, not
    renormalized. The budget is per sequence, never across the batch.

    Example:
    ```mlir
    %gates, %mask = moe.select_global %u n = 8 : tensor<1x4x4xf32>
    %g2, %m2 = moe.select_global %u k = 1.500000e+00 : tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins Moe_ScoreTensor:$scores, OptionalAttr<I64Attr>:$n,
                       OptionalAttr<F64Attr>:$k);
  let assemblyFormat = [{
    $scores oilist(`n` `=` $n | `k` `=` $k) attr-dict `:` type($scores)
  }];
  let extraClassDeclaration = [{
    /// The budget options in the form of the shared router rules.
    ::mlir::usmoe::routing::RouterOptions getRouterOptions();
  }];
  let hasCanonicalizer = 1;
}

def Moe_SelectGivenOp : Moe_Op<"select_given", [Pure, InferTypeOpAdaptor]> {
  let summary = "bring-your-own router: a selection from top-k ids and weights";
  let description = [{
    The dense selection of `R` tokens routed elsewhere: `expert_ids[r, j]`
    (each in [0, `experts`), no expert twice in a row) with gate
    `weights[r, j]`. The result has the shape of a selection over one
    sequence of R tokens, `[1, R, E]`, so that `moe.plan`, `moe.topk_list`
    and the layer ops consume it like any router's. The CPU lowering checks
    the ids at run time (the caller gets the error); on the GPU an id
    outside [0, E) is skipped and a repeated id counts once.

    Example:
    ```mlir
    %gates, %mask = moe.select_given %ids, %weights experts = 64
        : tensor<?x8xi32>, tensor<?x8xf32>   // -> [1, ?, 64]
    ```
  }];
  let arguments = (ins TensorRankOf<[I32], [2]>:$expert_ids,
                       TensorRankOf<[F32], [2]>:$weights,
                       ConfinedAttr<I64Attr, [IntPositive]>:$experts);
  let results = (outs Moe_ScoreTensor:$gates, Moe_MaskTensor:$mask);
  let assemblyFormat = [{
    $expert_ids `,` $weights `experts` `=` $experts attr-dict `:`
    type($expert_ids) `,` type($weights)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Fused routing
//===----------------------------------------------------------------------===//

def Moe_RouteOp : Moe_RoutingShapedOp<"route", [AttrSizedOperandSegments]> {
  let summary = "fused scoring and selection: the unit the lowerings consume";
  let description = [{
    One op for the whole router, produced by `moe-fuse-routing` from a score
    op feeding a selection op, so that scores never round-trip through memory.
    The router attribute picks the router and carries its options:

    - `#moe.token<k = K[, renormalize]>`: `moe.token_softmax` +
      `moe.select_topk`. With a `bias` operand ([E] f32) it is the
      DeepSeek-V3 variant instead: experts are selected by
      `sigmoid(L) + bias[e]`, the gates are `sigmoid(L)` (the bias moves the
      selection only), renormalized if asked.
    - `#moe.expert<capacity = C>` or `#moe.expert<capacity_factor = F,
      k = K>`: `moe.token_softmax` + `moe.select_expert_choice`.
    - `#moe.unified<n = N | k = K[, alpha = A][, expert_score = S]>`:
      `moe.unified_score` + `moe.select_global`, `N = floor(k * T)`.

    With `seqlens` (`cu_seqlens`, S + 1 int32 offsets), the logits are one
    packed batch `[1, N, E]` of S sequences of different lengths: sequence
    i is rows `seqlens[i] .. seqlens[i+1]`, and every per-sequence rule
    (the Expert Choice capacity, the Unified budget, `softmax_tokens`)
    applies to each sequence with its own T_i. The offsets must start at 0,
    not decrease and end at N (checked at run time on the CPU).

    Example:
    ```mlir
    %gates, %mask = moe.route %logits
        with #moe.unified<k = 1.5, alpha = 0.5, expert_score = sigmoid>
        : tensor<?x?x64xbf16>
    %g2, %m2 = moe.route #moe.token<k = 8, renormalize> %logits bias %b
        : tensor<?x?x64xbf16>, tensor<64xf32>
    %g3, %m3 = moe.route #moe.unified<k = 1.5> %packed seqlens %cu
        : tensor<?xi32> : tensor<1x?x64xf32>
    ```
  }];
  let arguments = (ins Moe_LogitsTensor:$logits,
                       Optional<Moe_WeightVector>:$bias,
                       Optional<Moe_IndexVector>:$seqlens,
                       Moe_RouterAttrInterface:$router);
  let results = (outs Moe_ScoreTensor:$gates, Moe_MaskTensor:$mask);
  let assemblyFormat = [{
    $router $logits (`bias` $bias^)?
    (`seqlens` $seqlens^ `:` type($seqlens))? attr-dict `:` type($logits)
    (`,` type($bias)^)?
  }];
  let extraClassDeclaration = [{
    /// The router's options, for the shared router rules (RouterRules.h).
    ::mlir::usmoe::routing::RouterOptions getRouterOptions() {
      return getRouter().getRouterOptions();
    }
    ::mlir::usmoe::routing::Mode getMode() { return getRouter().getMode(); }
  }];
  let hasCanonicalizer = 1;
}

//===----------------------------------------------------------------------===//
// Routing plan
//===----------------------------------------------------------------------===//

/// The mask of a selection has the shape of its gates, with i1 elements.
def Moe_MaskMatchesGates : TypesMatchWith<
    "mask has the shape of gates", "gates", "mask",
    "::mlir::RankedTensorType::get(::llvm::cast<::mlir::ShapedType>($_self)"
    ".getShape(), ::mlir::IntegerType::get($_self.getContext(), 1))">;

def Moe_PlanOp : Moe_Op<"plan", [Pure, InferTypeOpAdaptor,
                                 Moe_MaskMatchesGates]> {
  let summary = "expert-major CSR of the selected (token, expert) pairs";
  let description = [{
    Builds the plan a grouped GEMM consumes from a selection's gates and mask.
    Token ids are global, `g = b * T + t`. `expert_offsets` (E + 1 entries)
    are the prefix sums of the per-expert counts; rows
    `expert_offsets[e] .. expert_offsets[e+1]` of `token_ids` and `weights`
    belong to expert `e`, in ascending `g`. `M`, the number of rows, is the
    number of set mask entries.

    Example:
    ```mlir
    %offsets, %ids, %weights = moe.plan %gates, %mask : tensor<?x?x8xf32>
    ```
  }];
  let arguments = (ins Moe_ScoreTensor:$gates, Moe_MaskTensor:$mask);
  let results = (outs Moe_IndexVector:$expert_offsets,
                      Moe_IndexVector:$token_ids, Moe_WeightVector:$weights);
  let assemblyFormat = "$gates `,` $mask attr-dict `:` type($gates)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The route whose gates and mask this plan reads (both), or null: then
    /// a lowering knows the selection's rule (its budget, or for Token
    /// Choice the k picks of every row) instead of only the mask.
    RouteOp getRoute();
  }];
}

def Moe_TopKListOp : Moe_Op<"topk_list", [Pure, InferTypeOpAdaptor,
                                         Moe_MaskMatchesGates]> {
  let summary = "per-token [B*T, k] expert ids and weights of a selection";
  let description = [{
    The layout Token Choice users expect: for every global token `g`, the ids
    of its selected experts sorted by descending gate (ties: lower expert
    index first) and their gates. Rows with fewer than `k` selected experts
    are padded with id -1 and weight 0; a token with more than `k` selected
    experts keeps its `k` best.

    Example:
    ```mlir
    %ids, %weights = moe.topk_list %gates, %mask k = 2 : tensor<?x?x8xf32>
    ```
  }];
  let arguments = (ins Moe_ScoreTensor:$gates, Moe_MaskTensor:$mask,
                       ConfinedAttr<I64Attr, [IntPositive]>:$k);
  let results = (outs TensorRankOf<[I32], [2]>:$expert_ids,
                      TensorRankOf<[F32], [2]>:$weights);
  let assemblyFormat = "$gates `,` $mask `k` `=` $k attr-dict `:` type($gates)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The Token Choice route whose gates and mask this list reads when the
    /// list's k is the route's: then every row has exactly k selected
    /// experts, the route's picks, and a lowering may write the lists while
    /// routing (ranking the picks by final gate, then expert) instead of
    /// scanning the rows again. Null otherwise.
    RouteOp getPicksOfTokenRoute();
  }];
}

//===----------------------------------------------------------------------===//
// Dispatch, expert compute and combine
//===----------------------------------------------------------------------===//

def Moe_DispatchOp : Moe_Op<"dispatch", [Pure, InferTypeOpAdaptor]> {
  let summary = "gather token activations into expert order";
  let description = [{
    `result[m, :] = hidden[token_ids[m], :]`: the rows of `hidden`
    ([tokens, D], tokens = B * T) in the order of the plan, so that each
    expert's rows are contiguous. `moe.plan` never produces an id outside
    [0, tokens); the CPU lowering checks each id at run time (the caller
    gets the failed check), the GPU lowering trusts them.

    Example:
    ```mlir
    %x = moe.dispatch %hidden, %ids : tensor<?x512xbf16>, tensor<?xi32>
    ```
  }];
  let arguments = (ins Moe_ActivationTensor:$hidden, Moe_IndexVector:$token_ids);
  let results = (outs Moe_ActivationTensor:$result);
  let assemblyFormat = [{
    $hidden `,` $token_ids attr-dict `:` type($hidden) `,` type($token_ids)
  }];
}

def Moe_ExpertFfnOp : Moe_Op<"expert_ffn", [Pure, InferTypeOpAdaptor]> {
  let summary = "grouped SwiGLU expert MLP over plan-ordered rows";
  let description = [{
    For the rows of expert `e` (`expert_offsets[e] .. expert_offsets[e+1]`),
    `y = (silu(x W1[e]) * (x W3[e])) W2[e]`. Accumulates in f32 and returns
    f32 rows whatever the input type, so that the layer rounds once, after
    `moe.combine` (an f16 overflow of one expert's output never becomes
    inf + -inf = NaN in the sum). Routed FLOPs are `M * 6 * D * F`.

    `layout` says how the weights are stored, so that checkpoints are read
    where they are instead of transposed into copies:
    - `in_out` (the default): `W1, W3 : [E, D, F]`, `W2 : [E, F, D]`;
    - `out_in` (nn.Linear's, Hugging Face's): `W1, W3 : [E, F, D]`,
      `W2 : [E, D, F]`.
    The weights may be strided views with unit innermost stride (a fused
    `gate_up` tensor sliced with `tensor.extract_slice` bufferizes to two
    views of one buffer, not to copies). Every output element sums over `d`
    (and over `f`) in increasing order in both layouts, so the layout does
    not change results.

    Example:
    ```mlir
    %y = moe.expert_ffn %x, %offsets, %w1, %w3, %w2
        : tensor<?x64xbf16>, tensor<9xi32>, tensor<8x64x128xbf16>,
          tensor<8x64x128xbf16>, tensor<8x128x64xbf16>   // -> tensor<?x64xf32>
    %z = moe.expert_ffn %x, %offsets, %g, %u, %d layout out_in
        : tensor<?x64xbf16>, tensor<9xi32>, tensor<8x128x64xbf16>,
          tensor<8x128x64xbf16>, tensor<8x64x128xbf16>
    ```
  }];
  let arguments = (ins Moe_ActivationTensor:$input,
                       Moe_IndexVector:$expert_offsets,
                       Moe_ExpertWeightTensor:$w1, Moe_ExpertWeightTensor:$w3,
                       Moe_ExpertWeightTensor:$w2,
                       DefaultValuedAttr<Moe_WeightLayout,
                         "::mlir::moe::WeightLayout::in_out">:$layout);
  let results = (outs Moe_ActivationTensor:$result);
  let assemblyFormat = [{
    $input `,` $expert_offsets `,` $w1 `,` $w3 `,` $w2 (`layout` $layout^)?
    attr-dict `:` type($input) `,` type($expert_offsets) `,` type($w1) `,`
    type($w3) `,` type($w2)
  }];
  let extraClassDeclaration = [{
    /// E, D and F read from the weights' shapes in this op's layout
    /// (dynamic sizes stay ShapedType::kDynamic).
    std::array<int64_t, 3> getExpertDims();
  }];
  let hasVerifier = 1;
}

def Moe_CombineOp : Moe_Op<"combine", [Pure, InferTypeOpAdaptor]> {
  let summary = "weighted, deterministic sum of expert outputs back per token";
  let description = [{
    `result = init; result[token_ids[m], :] += weights[m] * expert_out[m, :]`
    for `m` in increasing order, so every token sums its experts in ascending
    expert order: the result is bitwise reproducible, with no float atomics.
    `init` carries what is added unconditionally (zeros, or the output of
    shared experts); it also fixes the number of tokens. The sum is in f32
    and rounded to `init`'s element type once; `expert_out` is f32 (as
    `moe.expert_ffn` returns it) or of `init`'s element type.

    The optional `expert_offsets` (the plan's CSR offsets) let a parallel
    lowering find each token's rows without atomics or a sort: inside an
    expert's rows the token ids ascend, so a binary search per expert finds
    them, in ascending row order. The GPU lowering requires it; the result
    is the same with or without it. The CPU lowering checks this contract
    at run time (ids in [0, tokens), offsets from 0 to M without
    decreasing, ids ascending inside each expert's rows): other input is a
    failed check for the caller, not a result the GPU would not reproduce.

    Example:
    ```mlir
    %y = moe.combine %out, %ids, %weights into %init
        : tensor<?x512xf32>, tensor<?xi32>, tensor<?xf32> into tensor<?x512xf32>
    %z = moe.combine %out, %ids, %weights into %init offsets %offsets
        : tensor<?x512xf32>, tensor<?xi32>, tensor<?xf32> into tensor<?x512xf32>, tensor<9xi32>
    ```
  }];
  let arguments = (ins Moe_ActivationTensor:$expert_out,
                       Moe_IndexVector:$token_ids, Moe_WeightVector:$weights,
                       Moe_ActivationTensor:$init,
                       Optional<Moe_IndexVector>:$expert_offsets);
  let results = (outs Moe_ActivationTensor:$result);
  let assemblyFormat = [{
    $expert_out `,` $token_ids `,` $weights `into` $init
    (`offsets` $expert_offsets^)? attr-dict `:`
    type($expert_out) `,` type($token_ids) `,` type($weights) `into`
    type($init) (`,` type($expert_offsets)^)?
  }];
  let hasVerifier = 1;
}

#endif // USMOE_DIALECT_MOE_IR_MOEOPS_TD
