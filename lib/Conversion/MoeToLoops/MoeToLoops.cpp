//===- MoeToLoops.cpp - the convert-moe-to-loops pass ---------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "usmoe/Conversion/MoeToLoops/MoeToLoops.h"
#include "PopulatePatterns.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/DialectConversion.h"
#include "usmoe/Dialect/Moe/IR/MoeDialect.h"

namespace mlir::usmoe {
#define GEN_PASS_DEF_CONVERTMOETOLOOPSPASS
#include "usmoe/Conversion/Passes.h.inc"
} // namespace mlir::usmoe

using namespace mlir;

void mlir::usmoe::populateMoeToLoopsConversionPatterns(
    RewritePatternSet &patterns, ExpertGemm expertGemm) {
  loops::populateScoringPatterns(patterns);
  loops::populateSelectionPatterns(patterns);
  loops::populatePlanPatterns(patterns);
  loops::populateDispatchCombinePatterns(patterns, expertGemm);
}

namespace {
struct ConvertMoeToLoopsPass
    : usmoe::impl::ConvertMoeToLoopsPassBase<ConvertMoeToLoopsPass> {
  using Base::Base;
  void runOnOperation() override {
    ConversionTarget target(getContext());
    target.addIllegalDialect<moe::MoeDialect>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(&getContext());
    usmoe::populateMoeToLoopsConversionPatterns(patterns, expertGemm);
    // Partial conversion: any moe op left over is reported with its location.
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
