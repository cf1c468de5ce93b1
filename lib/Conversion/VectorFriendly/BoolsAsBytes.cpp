//===- BoolsAsBytes.cpp - i1 memory accesses as i8 ------------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A memref<...xi1> (a routing mask) lowers to one byte per element, read
// and written with `load i1` / `store i1`. LLVM's loop vectorizer does not
// widen accesses of a type narrower than its storage (an "irregular" type),
// so every loop that reads a mask stays scalar: the plan's counting pass,
// the top-k lists, dispatch. Reading the byte as i8 and truncating it, and
// writing the zero-extended byte, is the same memory traffic with a type
// the vectorizer handles; NumPy and PyTorch store bools as 0/1 bytes too.
//
//===----------------------------------------------------------------------===//

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "usmoe/Conversion/Passes.h"

namespace mlir::usmoe {
#define GEN_PASS_DEF_USMOEBOOLSASBYTESPASS
#include "usmoe/Conversion/Passes.h.inc"
} // namespace mlir::usmoe

using namespace mlir;

namespace {

bool isBool(Type type) { return type.isInteger(1); }

/// load i1 -> trunc(load i8), every other attribute of the load kept.
struct LoadBoolAsByte : OpRewritePattern<LLVM::LoadOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LLVM::LoadOp op,
                                PatternRewriter &rewriter) const override {
    if (!isBool(op.getType()))
      return rewriter.notifyMatchFailure(op, "not a scalar i1 load");
    Operation *byteLoad = rewriter.clone(*op);
    byteLoad->getResult(0).setType(rewriter.getI8Type());
    rewriter.replaceOpWithNewOp<LLVM::TruncOp>(op, op.getType(),
                                               byteLoad->getResult(0));
    return success();
  }
};

/// store i1 v -> store i8 zext(v).
struct StoreBoolAsByte : OpRewritePattern<LLVM::StoreOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LLVM::StoreOp op,
                                PatternRewriter &rewriter) const override {
    if (!isBool(op.getValue().getType()))
      return rewriter.notifyMatchFailure(op, "not a scalar i1 store");
    Value byte = LLVM::ZExtOp::create(rewriter, op.getLoc(),
                                      rewriter.getI8Type(), op.getValue());
    rewriter.modifyOpInPlace(op, [&] { op.getValueMutable().assign(byte); });
    return success();
  }
};

struct UsmoeBoolsAsBytesPass
    : usmoe::impl::UsmoeBoolsAsBytesPassBase<UsmoeBoolsAsBytesPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    usmoe::populateBoolsAsBytesPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::usmoe::populateBoolsAsBytesPatterns(RewritePatternSet &patterns) {
  patterns.add<LoadBoolAsByte, StoreBoolAsByte>(patterns.getContext());
}
