//===- SequentialTwin.h - the marker of a parallel loop's twin --*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Shared by the loop builder that writes parallel loops (used by the CPU
// and GPU lowerings alike) and the pass that consumes the marker, without
// the builder depending on the CPU lowering's pass declarations.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_CONVERSION_MOETOLOOPS_SEQUENTIALTWIN_H
#define USMOE_CONVERSION_MOETOLOOPS_SEQUENTIALTWIN_H

#include "llvm/ADT/StringRef.h"

namespace mlir::usmoe {

/// The unit attribute on an `scf.if` whose else-branch computes, in
/// sequential loops, what its then-branch's `scf.parallel` computes
/// (usmoe-share-parallel-bodies emits the body once for both).
inline constexpr llvm::StringLiteral kSequentialTwinAttrName =
    "usmoe.sequential_twin";

} // namespace mlir::usmoe

#endif // USMOE_CONVERSION_MOETOLOOPS_SEQUENTIALTWIN_H
