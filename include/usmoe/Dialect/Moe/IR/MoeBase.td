//===- MoeBase.td - moe dialect definition and enums -------*- tablegen -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_DIALECT_MOE_IR_MOEBASE_TD
#define USMOE_DIALECT_MOE_IR_MOEBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Moe_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Mixture-of-Experts routing: scores, selection, plans, "
                "dispatch and combine";
  let description = [{
    The `moe` dialect represents the routing step of sparse Mixture-of-Experts
    layers as value-semantic tensor operations. Three routers are first-class:
    Token Choice (each token takes its top-k experts), Expert Choice (each
    expert takes its top-C tokens) and USMoE's unified router (one global
    top-N over the token x expert matrix of each sequence, ranked by
    `U = (1 - alpha) * softmax_experts(L) + alpha * F(L)`).

    Router logits are `tensor<B x T x E x {f32|f16|bf16}>`: `B` sequences of
    `T` tokens each (both may be dynamic) and a static number of experts `E`.
    All scores are computed in f32. Every selection yields the same routing
    plan (dense gates plus an explicit selection mask), from which `moe.plan`
    builds the expert-major CSR that dispatch, grouped expert compute and
    combine consume. The normative semantics (ties, NaN, empty inputs) are in
    `docs/Dialect.md`.
  }];
  let useDefaultAttributePrinterParser = 1;
  let hasCanonicalizer = 0;
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Moe_ExpertScoreKind : I32EnumAttr<"ExpertScoreKind",
    "how the expert-side score F is computed from router logits", [
      I32EnumAttrCase<"sigmoid", 0>,
      I32EnumAttrCase<"softmax_tokens", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def Moe_ExpertScoreKindAttr
    : EnumAttr<Moe_Dialect, Moe_ExpertScoreKind, "expert_score">;

/// How stacked expert weights are laid out. `in_out` ([E, D, F] for W1/W3,
/// [E, F, D] for W2) is the matrix a row vector multiplies; `out_in`
/// ([E, F, D] / [E, D, F]) is nn.Linear's and most checkpoints' (Hugging
/// Face's fused `gate_up_proj` / `down_proj`), read in place instead of
/// transposed into a copy.
def Moe_WeightLayout : I32EnumAttr<"WeightLayout",
    "layout of stacked expert weights", [
      I32EnumAttrCase<"in_out", 0>,
      I32EnumAttrCase<"out_in", 1>
    ]> {
  let cppNamespace = "::mlir::moe";
}

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

/// Router logits: [B, T, E] in any of the floating-point types routers emit.
def Moe_LogitsTensor : TensorRankOf<[F32, F16, BF16], [3]>;
/// Scores and gates: [B, T, E], always f32 (bf16 selection flips results).
def Moe_ScoreTensor : TensorRankOf<[F32], [3]>;
/// Explicit selection mask: [B, T, E]; gates may be exactly 0 when selected.
def Moe_MaskTensor : TensorRankOf<[I1], [3]>;
/// Index vectors of the routing plan (global token ids, CSR offsets).
def Moe_IndexVector : TensorRankOf<[I32], [1]>;
def Moe_WeightVector : TensorRankOf<[F32], [1]>;
/// Token activations: [tokens, hidden].
def Moe_ActivationTensor : TensorRankOf<[F32, F16, BF16], [2]>;
/// Stacked expert weights: [E, in, out].
def Moe_ExpertWeightTensor : TensorRankOf<[F32, F16, BF16], [3]>;

//===----------------------------------------------------------------------===//
// Base op class
//===----------------------------------------------------------------------===//

class Moe_Op<string mnemonic, list<Trait> traits = []>
    : Op<Moe_Dialect, mnemonic, traits>;

#endif // USMOE_DIALECT_MOE_IR_MOEBASE_TD
