//===- MoeToLoops.h - lower moe ops to scf loops ----------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_CONVERSION_MOETOLOOPS_MOETOLOOPS_H
#define USMOE_CONVERSION_MOETOLOOPS_MOETOLOOPS_H

#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;

namespace usmoe {

#define GEN_PASS_DECL_CONVERTMOETOLOOPSPASS
#include "usmoe/Conversion/Passes.h.inc"

/// Adds the patterns that lower every moe op to scf loops over memrefs.
void populateMoeToLoopsConversionPatterns(RewritePatternSet &patterns);

} // namespace usmoe
} // namespace mlir

#endif // USMOE_CONVERSION_MOETOLOOPS_MOETOLOOPS_H
