//===- PopulatePatterns.h - moe-to-loops pattern families -------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_MOETOLOOPS_POPULATEPATTERNS_H
#define USMOE_LIB_CONVERSION_MOETOLOOPS_POPULATEPATTERNS_H

#include "usmoe/Conversion/MoeToLoops/MoeToLoops.h"

namespace mlir {
class RewritePatternSet;
namespace usmoe::loops {

/// token_softmax, expert_score, unified_score.
void populateScoringPatterns(RewritePatternSet &patterns);
/// select_topk, select_expert_choice, select_global and the fused route.
void populateSelectionPatterns(RewritePatternSet &patterns);
/// plan and topk_list.
void populatePlanPatterns(RewritePatternSet &patterns);
/// expert_ffn of f32 and bf16 as calls of libusmoe_cpu_runtime.so (oneDNN),
/// preferred over the loops.
void populateExpertFfnRuntimeCallPatterns(RewritePatternSet &patterns);
/// dispatch, expert_ffn (its GEMMs as `expertGemm` says) and combine.
void populateDispatchCombinePatterns(RewritePatternSet &patterns,
                                     ExpertGemm expertGemm);

} // namespace usmoe::loops
} // namespace mlir

#endif // USMOE_LIB_CONVERSION_MOETOLOOPS_POPULATEPATTERNS_H
