//===- ScoringPatterns.cpp - lower the moe score ops to loops -------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "PopulatePatterns.h"
#include "RoutingKernels.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::usmoe::loops;

namespace {

/// Lowers a score op: logits buffer in, fresh f32 buffer out, with `emit`
/// filling it.
template <typename OpTy> struct ScoreLowering : OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;

  virtual void emit(LoopBuilder &b, OpTy op, Value logits, Value out) const = 0;

  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    LoopBuilder b(op.getLoc(), rewriter);
    Value logits = toBuffer(b, op.getLogits());
    Value out = allocResult(b, op.getType(), logits);
    emit(b, op, logits, out);
    rewriter.replaceOp(op, toTensor(b, out, op.getType()));
    return success();
  }
};

struct TokenSoftmaxLowering : ScoreLowering<moe::TokenSoftmaxOp> {
  using ScoreLowering::ScoreLowering;
  void emit(LoopBuilder &b, moe::TokenSoftmaxOp, Value logits,
            Value out) const override {
    emitTokenSoftmax(b, logits, out);
  }
};

struct ExpertScoreLowering : ScoreLowering<moe::ExpertScoreOp> {
  using ScoreLowering::ScoreLowering;
  void emit(LoopBuilder &b, moe::ExpertScoreOp op, Value logits,
            Value out) const override {
    emitExpertScore(b, op.getKind(), logits, out);
  }
};

struct UnifiedScoreLowering : ScoreLowering<moe::UnifiedScoreOp> {
  using ScoreLowering::ScoreLowering;
  void emit(LoopBuilder &b, moe::UnifiedScoreOp op, Value logits,
            Value out) const override {
    emitUnifiedScore(b, op.getAlpha().convertToDouble(), op.getExpertScore(),
                     logits, out);
  }
};

} // namespace

void mlir::usmoe::loops::populateScoringPatterns(RewritePatternSet &patterns) {
  patterns.add<TokenSoftmaxLowering, ExpertScoreLowering, UnifiedScoreLowering>(
      patterns.getContext());
}
