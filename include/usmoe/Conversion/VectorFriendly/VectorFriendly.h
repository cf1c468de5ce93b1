//===- VectorFriendly.h - rewrites that let LLVM vectorize loops -*- C++
//-*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The CPU path's routing loops are scalar scf loops that LLVM's loop
// vectorizer widens for the host CPU. Two things in the lowered code stop
// it: libm calls (math.exp) and loads/stores of i1 (the masks). The passes
// here rewrite both into forms it handles, with the same results.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_CONVERSION_VECTORFRIENDLY_VECTORFRIENDLY_H
#define USMOE_CONVERSION_VECTORFRIENDLY_VECTORFRIENDLY_H

#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;

namespace usmoe {

#define GEN_PASS_DECL_USMOEEXPANDEXPPASS
#define GEN_PASS_DECL_USMOEBOOLSASBYTESPASS
#define GEN_PASS_DECL_USMOENOALIASARGSPASS
#include "usmoe/Conversion/Passes.h.inc"

/// A function attribute (dense i64 array) listing the LLVM parameters that
/// usmoe-noalias-args marks `llvm.noalias` once the function is in the LLVM
/// dialect (func-to-llvm drops argument attributes of memrefs, which expand
/// to several parameters).
inline constexpr llvm::StringLiteral kNoAliasArgsAttrName =
    "usmoe.noalias_args";

/// Adds the pattern that rewrites scalar f32 `math.exp` into f64 arithmetic
/// (range reduction by ln 2, a degree-11 polynomial, an exponent built from
/// bits) that rounds to the nearest f32 in all but rare cases and that
/// LLVM's loop vectorizer can widen, where a libm call cannot be.
void populateExpandExpPatterns(RewritePatternSet &patterns);

/// Adds the patterns that load and store scalar i1 values in memory as the
/// i8 bytes LLVM keeps them in (trunc after a load, zext before a store).
void populateBoolsAsBytesPatterns(RewritePatternSet &patterns);

} // namespace usmoe
} // namespace mlir

#endif // USMOE_CONVERSION_VECTORFRIENDLY_VECTORFRIENDLY_H
