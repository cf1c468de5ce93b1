//===- FuseRouting.cpp - fuse scoring and selection into moe.route --------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "usmoe/Dialect/Moe/IR/MoeOps.h"
#include "usmoe/Dialect/Moe/Transforms/Passes.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEFUSEROUTINGPASS
#include "usmoe/Dialect/Moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// moe.route with the router of `options` in place of `selection`.
LogicalResult replaceWithRoute(PatternRewriter &rewriter, Operation *selection,
                               Value logits,
                               const routing::RouterOptions &options) {
  auto router = RouterAttrInterface::get(
      rewriter.getContext(), options, [&] { return selection->emitOpError(); });
  if (!router)
    return failure();
  auto route = RouteOp::create(rewriter, selection->getLoc(), logits,
                               /*bias=*/Value(), /*seqlens=*/Value(), router);
  rewriter.replaceOp(selection, route.getResults());
  return success();
}

/// select_topk(token_softmax(L)) -> route with #moe.token.
struct FuseTokenChoice : OpRewritePattern<SelectTopKOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SelectTopKOp op,
                                PatternRewriter &rewriter) const override {
    auto softmax = op.getScores().getDefiningOp<TokenSoftmaxOp>();
    if (!softmax)
      return rewriter.notifyMatchFailure(op, "scores are not a row softmax");
    routing::RouterOptions options;
    options.mode = routing::Mode::Token;
    options.k = static_cast<double>(op.getK());
    options.renormalize = op.getRenormalize();
    return replaceWithRoute(rewriter, op, softmax.getLogits(), options);
  }
};

/// select_expert_choice(token_softmax(L)) -> route with #moe.expert.
struct FuseExpertChoice : OpRewritePattern<SelectExpertChoiceOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SelectExpertChoiceOp op,
                                PatternRewriter &rewriter) const override {
    auto softmax = op.getScores().getDefiningOp<TokenSoftmaxOp>();
    if (!softmax)
      return rewriter.notifyMatchFailure(op, "scores are not a row softmax");
    return replaceWithRoute(rewriter, op, softmax.getLogits(),
                            op.getRouterOptions());
  }
};

/// select_global over any of the three score ops -> route with
/// #moe.unified, with the alpha that makes the unified score equal to that
/// score.
struct FuseUnified : OpRewritePattern<SelectGlobalOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SelectGlobalOp op,
                                PatternRewriter &rewriter) const override {
    Operation *producer = op.getScores().getDefiningOp();
    routing::RouterOptions options = op.getRouterOptions();
    Value logits;
    if (auto unified = dyn_cast_or_null<UnifiedScoreOp>(producer)) {
      logits = unified.getLogits();
      options.alpha = unified.getAlpha().convertToDouble();
      options.expertScore = toRoutingScore(unified.getExpertScore());
    } else if (auto softmax = dyn_cast_or_null<TokenSoftmaxOp>(producer)) {
      logits = softmax.getLogits();
      options.alpha = 0.0;
    } else if (auto expert = dyn_cast_or_null<ExpertScoreOp>(producer)) {
      logits = expert.getLogits();
      options.alpha = 1.0;
      options.expertScore = toRoutingScore(expert.getKind());
    } else {
      return rewriter.notifyMatchFailure(op, "scores are not a moe score op");
    }
    return replaceWithRoute(rewriter, op, logits, options);
  }
};

struct MoeFuseRoutingPass
    : moe::impl::MoeFuseRoutingPassBase<MoeFuseRoutingPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMoeFuseRoutingPatterns(patterns);
    // Score ops left without users are pure and erased by the driver.
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moe::populateMoeFuseRoutingPatterns(RewritePatternSet &patterns) {
  patterns.add<FuseTokenChoice, FuseExpertChoice, FuseUnified>(
      patterns.getContext());
}
