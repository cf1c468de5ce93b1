//===- Passes.h - moe dialect transformation passes -------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_DIALECT_MOE_TRANSFORMS_PASSES_H
#define USMOE_DIALECT_MOE_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"
#include "usmoe/Dialect/Moe/IR/MoeDialect.h"

namespace mlir::moe {

#define GEN_PASS_DECL
#include "usmoe/Dialect/Moe/Transforms/Passes.h.inc"

/// Adds the patterns that fuse a score op and its selection into moe.route.
void populateMoeFuseRoutingPatterns(RewritePatternSet &patterns);

#define GEN_PASS_REGISTRATION
#include "usmoe/Dialect/Moe/Transforms/Passes.h.inc"

} // namespace mlir::moe

#endif // USMOE_DIALECT_MOE_TRANSFORMS_PASSES_H
