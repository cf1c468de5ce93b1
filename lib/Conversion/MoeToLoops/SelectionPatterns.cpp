//===- SelectionPatterns.cpp - lower selections and moe.route to loops ----===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Every selection works in place on a gate buffer that first holds the
// scores. The unfused ops copy their score operand into it; moe.route
// computes the scores straight into it, one row (Token Choice) or one batch
// of sequences (Expert Choice, Unified) ahead of the selection.
//
//===----------------------------------------------------------------------===//

#include "PopulatePatterns.h"
#include "RoutingKernels.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::usmoe::loops;
namespace routing = mlir::usmoe::routing;

namespace {

/// The gate and mask buffers of a selection over `shapeSource` ([B, T, E]).
struct SelectionBuffers {
  Value gates, mask;
};

SelectionBuffers allocSelection(LoopBuilder &b, Operation *op,
                                Value shapeSource) {
  return {allocResult(b, op->getResult(0).getType(), shapeSource),
          allocResult(b, op->getResult(1).getType(), shapeSource)};
}

void replaceSelection(PatternRewriter &rewriter, LoopBuilder &b, Operation *op,
                      SelectionBuffers buffers) {
  rewriter.replaceOp(op,
                     {toTensor(b, buffers.gates, op->getResult(0).getType()),
                      toTensor(b, buffers.mask, op->getResult(1).getType())});
}

/// The unfused selections: copy the scores into the gate buffer, then select.
SelectionBuffers copyScores(LoopBuilder &b, Operation *op, Value scoresTensor) {
  Value scores = toBuffer(b, scoresTensor);
  SelectionBuffers buffers = allocSelection(b, op, scores);
  memref::CopyOp::create(b, scores, buffers.gates);
  return buffers;
}

void emitTokenChoice(LoopBuilder &b, SelectionBuffers buffers, int64_t k,
                     bool renormalize) {
  forEachToken(b, buffers.gates, [&](LoopBuilder &b, Value bi, Value ti) {
    emitTopKRow(b, buffers.gates, buffers.mask, bi, ti, k, renormalize);
  });
}

/// The budget of one select set of `options` for the gates' T.
Value emitSetBudget(LoopBuilder &b, const routing::RouterOptions &options,
                    Value gates) {
  int64_t numExperts = cast<MemRefType>(gates.getType()).getDimSize(2);
  return moe::buildSetBudget(b, b.getLoc(), options, dim(b, gates, 1),
                             numExperts);
}

struct SelectTopKLowering : OpRewritePattern<moe::SelectTopKOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(moe::SelectTopKOp op,
                                PatternRewriter &rewriter) const override {
    LoopBuilder b(op.getLoc(), rewriter);
    SelectionBuffers buffers = copyScores(b, op, op.getScores());
    emitTokenChoice(b, buffers, op.getK(), op.getRenormalize());
    replaceSelection(rewriter, b, op, buffers);
    return success();
  }
};

struct SelectExpertChoiceLowering
    : OpRewritePattern<moe::SelectExpertChoiceOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(moe::SelectExpertChoiceOp op,
                                PatternRewriter &rewriter) const override {
    LoopBuilder b(op.getLoc(), rewriter);
    SelectionBuffers buffers = copyScores(b, op, op.getScores());
    Value capacity = emitSetBudget(b, op.getRouterOptions(), buffers.gates);
    emitExpertChoice(b, buffers.gates, buffers.mask, capacity);
    replaceSelection(rewriter, b, op, buffers);
    return success();
  }
};

struct SelectGlobalLowering : OpRewritePattern<moe::SelectGlobalOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(moe::SelectGlobalOp op,
                                PatternRewriter &rewriter) const override {
    LoopBuilder b(op.getLoc(), rewriter);
    SelectionBuffers buffers = copyScores(b, op, op.getScores());
    Value budget = emitSetBudget(b, op.getRouterOptions(), buffers.gates);
    emitGlobalTopN(b, buffers.gates, buffers.mask, budget);
    replaceSelection(rewriter, b, op, buffers);
    return success();
  }
};

struct RouteLowering : OpRewritePattern<moe::RouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(moe::RouteOp op,
                                PatternRewriter &rewriter) const override {
    LoopBuilder b(op.getLoc(), rewriter);
    Value logits = toBuffer(b, op.getLogits());
    SelectionBuffers buffers = allocSelection(b, op, logits);
    routing::RouterOptions options = op.getRouterOptions();
    ModelOptions model{options.softcap, options.routedScalingFactor};
    switch (options.mode) {
    case routing::Mode::Token: {
      int64_t k = static_cast<int64_t>(*options.k);
      int64_t experts = cast<MemRefType>(logits.getType()).getDimSize(2);
      Value bias = op.getBias() ? toBuffer(b, op.getBias()) : Value();
      // Group-limited selection: per-row scratch, allocated once.
      Value kept, groupScores;
      if (options.nGroup) {
        kept = alloc(b, MemRefType::get({*options.nGroup}, b.getI1Type()));
        groupScores =
            alloc(b, MemRefType::get({*options.nGroup}, b.getF32Type()));
      }
      // Row by row: the row's scores are still in cache when selected.
      forEachToken(b, logits, [&](LoopBuilder &b, Value bi, Value ti) {
        // sigmoid_bias: gates are sigmoid(L), the ranking sigmoid(L) + bias.
        if (bias)
          emitSigmoidRow(b, logits, buffers.gates, bi, ti, model);
        else
          emitSoftmaxRow(b, logits, buffers.gates, bi, ti, model);
        auto rankScore = [&](LoopBuilder &b, Value ei) {
          Value s = load(b, buffers.gates, {bi, ti, ei});
          return bias ? addf(b, s, load(b, bias, {ei})) : s;
        };
        if (kept)
          emitKeptGroups(b, kept, groupScores, experts, *options.topkGroup,
                         rankScore);
        // Experts of dropped groups get key 0, below every real key.
        auto keyOf = [&](LoopBuilder &b, Value ei) {
          Value key = scoreKeyOf(b, rankScore(b, ei));
          if (!kept)
            return key;
          Value group = arith::DivUIOp::create(
              b, ei, indexConst(b, experts / *options.nGroup));
          return select(b, load(b, kept, {group}), key, i32Const(b, 0));
        };
        emitTopKRow(b, buffers.gates, buffers.mask, bi, ti, k,
                    options.renormalize, keyOf, model);
      });
      break;
    }
    case routing::Mode::Expert: {
      emitTokenSoftmax(b, logits, buffers.gates, model);
      Value capacity = emitSetBudget(b, options, buffers.gates);
      emitExpertChoice(b, buffers.gates, buffers.mask, capacity, model);
      break;
    }
    case routing::Mode::Unified: {
      emitUnifiedScore(b, *options.alpha,
                       moe::toScoreKind(*options.expertScore), logits,
                       buffers.gates, model);
      Value budget = emitSetBudget(b, options, buffers.gates);
      emitGlobalTopN(b, buffers.gates, buffers.mask, budget, model);
      break;
    }
    }
    replaceSelection(rewriter, b, op, buffers);
    return success();
  }
};

} // namespace

void mlir::usmoe::loops::populateSelectionPatterns(
    RewritePatternSet &patterns) {
  patterns.add<SelectTopKLowering, SelectExpertChoiceLowering,
               SelectGlobalLowering, RouteLowering>(patterns.getContext());
}
