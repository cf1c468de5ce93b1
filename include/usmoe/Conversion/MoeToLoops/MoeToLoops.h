//===- MoeToLoops.h - lower moe ops to scf loops ----------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_CONVERSION_MOETOLOOPS_MOETOLOOPS_H
#define USMOE_CONVERSION_MOETOLOOPS_MOETOLOOPS_H

#include "mlir/Pass/Pass.h"
#include "usmoe/Conversion/MoeToLoops/SequentialTwin.h"

namespace mlir {
class RewritePatternSet;

namespace usmoe {

/// Where moe.expert_ffn's GEMMs run on the CPU.
enum class ExpertGemm {
  /// Generated scf loops: self-contained code, any element type.
  Loops,
  /// Calls of libusmoe_cpu_runtime.so (oneDNN matmuls) for f32 and bf16;
  /// f16 stays on loops.
  OneDnn,
};

#define GEN_PASS_DECL_CONVERTMOETOLOOPSPASS
#define GEN_PASS_DECL_USMOESHAREPARALLELBODIESPASS
#include "usmoe/Conversion/Passes.h.inc"

/// Adds the patterns that lower every moe op to scf loops over memrefs
/// (moe.expert_ffn's GEMMs as `expertGemm` says).
void populateMoeToLoopsConversionPatterns(
    RewritePatternSet &patterns, ExpertGemm expertGemm = ExpertGemm::Loops);

} // namespace usmoe
} // namespace mlir

#endif // USMOE_CONVERSION_MOETOLOOPS_MOETOLOOPS_H
