//===- MoeAttrs.td - router attributes of the moe dialect ---*- tablegen -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_DIALECT_MOE_IR_MOEATTRS_TD
#define USMOE_DIALECT_MOE_IR_MOEATTRS_TD

include "usmoe/Dialect/Moe/IR/MoeBase.td"

//===----------------------------------------------------------------------===//
// RouterAttrInterface
//===----------------------------------------------------------------------===//

def Moe_RouterAttrInterface : AttrInterface<"RouterAttrInterface"> {
  let cppNamespace = "::mlir::moe";
  let description = [{
    A router: its mode and the options of that mode, one attribute per mode
    (`#moe.token`, `#moe.expert`, `#moe.unified`). The `moe.route` verifier,
    the canonicalizer and the CPU and GPU lowerings read a router only
    through this interface; its rules (ranges, budgets, the options each
    mode takes) are the plain C++ of `usmoe/Routing/RouterRules.h`, which
    the Python package and the CUDA runtime call too.
  }];
  let methods = [
    InterfaceMethod<[{
        The router's options, in the form the shared router rules take.
      }],
      "::mlir::usmoe::routing::RouterOptions", "getRouterOptions">,
  ];
  let extraClassDeclaration = [{
    /// Which router this is.
    ::mlir::usmoe::routing::Mode getMode() { return getRouterOptions().mode; }

    /// The first rule the router breaks for E experts and T tokens per
    /// sequence (either may be unknown) with or without a bias operand, in
    /// the words every caller reports; "" when it breaks none.
    std::string check(std::optional<int64_t> numExperts,
                      std::optional<int64_t> numTokens, bool hasBias);

    /// The same router with its derived budget made explicit for a known T
    /// (`k` -> `n` for Unified, `capacity_factor` -> `capacity` for Expert
    /// Choice), or null when the budget is explicit already.
    RouterAttrInterface withExplicitBudget(int64_t numTokens,
                                           int64_t numExperts);

    /// Emits the budget of one select set as an index value: k per token,
    /// C per expert or N per sequence, for `numTokens` (index) tokens per
    /// sequence. An explicit budget that the verifier could not check
    /// against a dynamic T gets a run-time check.
    ::mlir::Value buildSetBudget(::mlir::OpBuilder &builder,
                                 ::mlir::Location loc, ::mlir::Value numTokens,
                                 int64_t numExperts);

    /// The router attribute of `options`; null after reporting the broken
    /// rule through `emitError` when there is one.
    static RouterAttrInterface
    get(::mlir::MLIRContext *context,
        const ::mlir::usmoe::routing::RouterOptions &options,
        ::llvm::function_ref<::mlir::InFlightDiagnostic()> emitError);
  }];
}

//===----------------------------------------------------------------------===//
// Router attributes
//===----------------------------------------------------------------------===//

/// A router of one mode. The parameters are typed (integers where they
/// count), and the parser reads any option name so that one that belongs to
/// another mode gets the rule's words ("'alpha' does not apply to token
/// routing"), not a syntax error.
class Moe_RouterAttr<string name, string attrMnemonic>
    : AttrDef<Moe_Dialect, name,
              [DeclareAttrInterfaceMethods<Moe_RouterAttrInterface>]> {
  let mnemonic = attrMnemonic;
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
}

/// The options of real models that every mode takes: a scale on the
/// selected gates (DeepSeek-V3's `routed_scaling_factor`, applied after
/// renormalization) and logit soft-capping (`softcap * tanh(L / softcap)`,
/// before any score).
defvar Moe_ModelOptionParameters = (ins
    OptionalParameter<"::mlir::FloatAttr">:$routedScalingFactor,
    OptionalParameter<"::mlir::FloatAttr">:$softcap);

def Moe_TokenRouterAttr : Moe_RouterAttr<"TokenRouter", "token"> {
  let summary = "Token Choice: each token takes its k best experts";
  let description = [{
    `k` in [1, E]; `renormalize` divides the k gates by their sum. With a
    bias operand on `moe.route`, the DeepSeek-V3 variant: selection by
    `sigmoid(L) + bias`, gates `sigmoid(L)`. With `n_group` and
    `topk_group`, DeepSeek-V3's group-limited selection: the k experts come
    from the `topk_group` groups (of E / n_group consecutive experts) whose
    two best ranking scores sum highest.

    Example: `#moe.token<k = 8, renormalize, routed_scaling_factor = 2.5>`
  }];
  let parameters = !con(
      (ins "int64_t":$k, "bool":$renormalize,
           OptionalParameter<"std::optional<int64_t>">:$nGroup,
           OptionalParameter<"std::optional<int64_t>">:$topkGroup),
      Moe_ModelOptionParameters);
}

def Moe_ExpertRouterAttr : Moe_RouterAttr<"ExpertRouter", "expert"> {
  let summary = "Expert Choice: each expert takes its C best tokens";
  let description = [{
    Either `capacity` (C in [1, T]) or `capacity_factor` and `k`
    (C = clamp(ceil(capacity_factor * T * k / E), 1, T)).

    Example: `#moe.expert<k = 2, capacity_factor = 1.25>`
  }];
  let parameters = !con(
      (ins OptionalParameter<"std::optional<int64_t>">:$capacity,
           OptionalParameter<"::mlir::FloatAttr">:$capacityFactor,
           OptionalParameter<"std::optional<int64_t>">:$k),
      Moe_ModelOptionParameters);
}

def Moe_UnifiedRouterAttr : Moe_RouterAttr<"UnifiedRouter", "unified"> {
  let summary = "USMoE: a global top-N of the unified score per sequence";
  let description = [{
    Either `n` (N in [0, T * E]) or a possibly fractional `k` in [0, E]
    (N = floor(k * T)); `alpha` in [0, 1] (0.5 unless given) mixes the row
    softmax with the expert score `expert_score` (`sigmoid` unless given).

    Example: `#moe.unified<k = 1.5, alpha = 0.5, expert_score = sigmoid>`
  }];
  let parameters = !con(
      (ins OptionalParameter<"std::optional<int64_t>">:$n,
           OptionalParameter<"::mlir::FloatAttr">:$k,
           "::mlir::FloatAttr":$alpha,
           "::mlir::moe::ExpertScoreKind":$expertScore),
      Moe_ModelOptionParameters);
}

//===----------------------------------------------------------------------===//
// Kernel table entries
//===----------------------------------------------------------------------===//

def Moe_KernelAttr : AttrDef<Moe_Dialect, "Kernel"> {
  let mnemonic = "kernel";
  let summary = "what a kernel convert-moe-to-gpu generated is and costs";
  let description = [{
    One entry of the module's kernel table `usmoe.kernels` (kernel name ->
    `#moe.kernel`): its `kind` (what it computes, e.g. `plan_count`), its
    argument types and known block size (checked against the `gpu.func`),
    and as shape expressions over the call's shape (B, T, E, K, M, D, F;
    usmoe/Support/ShapeExpr.h) its `grid`, `launches` per call, bytes read
    and written, and on one kernel per op `floor_bytes`, the bytes the op
    must move (the HBM floor); `flops` on kernels whose arithmetic can
    bound their time (the expert GEMMs); `tail_bytes` on kernels whose last
    block to finish does more work alone (a last-block scan): bytes it moves
    after the rest of the grid, part of bytes read and written, which a
    single SM moves at its share of the bandwidth; `instructions` on kernels
    whose arithmetic per element can bound their time (the select passes
    that recompute each score from its logit): thread instructions per
    call, from PTX counts per element. `info` holds what a kind adds (E, k, tile
    rows, ...). A runtime without MLIR sizes launches from it (written out
    as JSON next to the cubin), `usmoe-gpu-cost-report` evaluates it.

    Example: `#moe.kernel<kind = "plan_scan", args = [memref<?xi32>,
    memref<9xi32>, index], block = array<i32: 256, 1, 1>, grid = "1",
    launches = "1", bytes_read = "E * ceildiv(B * T, 128) * 4",
    bytes_written = "E * ceildiv(B * T, 128) * 4 + (E + 1) * 4",
    info = {experts = 8 : i64}>`
  }];
  let parameters = (ins
      "::mlir::StringAttr":$kind,
      "::mlir::ArrayAttr":$args,
      "::mlir::DenseI32ArrayAttr":$block,
      "::mlir::StringAttr":$grid,
      "::mlir::StringAttr":$launches,
      "::mlir::StringAttr":$bytes_read,
      "::mlir::StringAttr":$bytes_written,
      OptionalParameter<"::mlir::StringAttr", "the op's HBM floor">:$floor_bytes,
      OptionalParameter<"::mlir::StringAttr",
                        "floating-point operations per call">:$flops,
      OptionalParameter<"::mlir::StringAttr",
                        "bytes one block moves after the rest">:$tail_bytes,
      OptionalParameter<"::mlir::StringAttr",
                        "thread instructions per call">:$instructions,
      "::mlir::DictionaryAttr":$info);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The shape expressions by their key in the table ("grid", "launches",
    /// "bytes_read", "bytes_written", "floor_bytes", "flops", "tail_bytes",
    /// "instructions"), "" when absent.
    ::llvm::SmallVector<std::pair<::llvm::StringRef, ::llvm::StringRef>>
    getExpressions() const;
  }];
}

#endif // USMOE_DIALECT_MOE_IR_MOEATTRS_TD
