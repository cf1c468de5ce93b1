//===- Passes.td - moe dialect transformation passes -------*- tablegen -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
#define USMOE_DIALECT_MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoeFuseRoutingPass : Pass<"moe-fuse-routing"> {
  let summary = "Fuse a score op and the selection that consumes it into "
                "moe.route";
  let description = [{
    Rewrites the scoring + selection chains that a router is made of into one
    `moe.route` op, the unit the CPU and GPU lowerings turn into a single
    fused kernel (scores never round-trip through memory):

    - `moe.select_topk(moe.token_softmax(L))` -> `moe.route token`
    - `moe.select_expert_choice(moe.token_softmax(L))` -> `moe.route expert`
    - `moe.select_global(moe.unified_score(L))` -> `moe.route unified`
    - `moe.select_global(moe.token_softmax(L))` -> `moe.route unified`
      with `alpha = 0`
    - `moe.select_global(moe.expert_score(L))` -> `moe.route unified`
      with `alpha = 1`

    The score op is kept while other users still need the scores. Other
    combinations (for example a top-k over the unified score) are left
    unfused; the lowerings handle them op by op.

    Example:
    ```mlir
    %u = moe.unified_score %l alpha = 5.000000e-01 expert_score = sigmoid
        : tensor<1x?x8xf32>
    %g, %m = moe.select_global %u k = 2.000000e+00 : tensor<1x?x8xf32>
    // becomes
    %g, %m = moe.route unified %l k = 2.000000e+00 alpha = 5.000000e-01
        expert_score = sigmoid : tensor<1x?x8xf32>
    ```
  }];
  let dependentDialects = ["::mlir::moe::MoeDialect"];
}

#endif // USMOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
