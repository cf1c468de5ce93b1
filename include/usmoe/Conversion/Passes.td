//===- Passes.td - usmoe conversion passes -----------------*- tablegen -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_CONVERSION_PASSES_TD
#define USMOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoeToLoopsPass : Pass<"convert-moe-to-loops"> {
  let summary = "Lower every moe op to scf loops over memrefs";
  let description = [{
    The reference lowering of the `moe` dialect, used by the CPU pipeline
    and as the oracle of the GPU path. Each op reads its tensor operands
    through `bufferization.to_buffer`, computes its results with `scf.for`
    loops, `arith` and `math` on memrefs, and hands them back through
    `bufferization.to_tensor restrict`, so `one-shot-bufferize` finishes
    the job.

    The algorithms follow the normative semantics (docs/Dialect.md):
    scores in f32; NaN logits as `-inf`; selection by an order-preserving
    integer key of each f32 score, ties to the lower index. The per-token
    top-k is k scans of the row; Expert Choice and the unified global top-N
    use a 4-pass radix select over the keys (O(T * E), no sort). Fused
    `moe.route` ops compute scores straight into the gate buffer and select
    in place, one row (Token Choice) or one sequence (Unified) at a time.

    Budgets that depend on a dynamic T are checked at run time with
    `cf.assert` (n <= T * E, capacity <= T).
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::cf::ControlFlowDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
  ];
}

#endif // USMOE_CONVERSION_PASSES_TD
