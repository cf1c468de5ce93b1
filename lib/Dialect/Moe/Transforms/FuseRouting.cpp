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

/// The parameters of moe.route that a selection op contributes; the score op
/// contributes the mode-specific scoring attributes.
struct RouteParams {
  FloatAttr k;
  IntegerAttr n, capacity;
  FloatAttr capacityFactor, alpha;
  ExpertScoreKindAttr expertScore;
  UnitAttr renormalize;
};

RouteOp createRoute(PatternRewriter &rewriter, Operation *selection,
                    RoutingMode mode, Value logits, const RouteParams &p) {
  return RouteOp::create(rewriter, selection->getLoc(),
                         RoutingModeAttr::get(rewriter.getContext(), mode),
                         logits, /*bias=*/Value(), p.k, p.n, p.capacity,
                         p.capacityFactor, p.alpha, p.expertScore,
                         p.renormalize);
}

FloatAttr asF64(PatternRewriter &rewriter, std::optional<int64_t> value) {
  if (!value)
    return nullptr;
  return rewriter.getF64FloatAttr(static_cast<double>(*value));
}

/// select_topk(token_softmax(L)) -> route token.
struct FuseTokenChoice : OpRewritePattern<SelectTopKOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SelectTopKOp op,
                                PatternRewriter &rewriter) const override {
    auto softmax = op.getScores().getDefiningOp<TokenSoftmaxOp>();
    if (!softmax)
      return rewriter.notifyMatchFailure(op, "scores are not a row softmax");
    RouteParams p;
    p.k = asF64(rewriter, op.getK());
    p.renormalize = op.getRenormalizeAttr();
    auto route =
        createRoute(rewriter, op, RoutingMode::token, softmax.getLogits(), p);
    rewriter.replaceOp(op, route.getResults());
    return success();
  }
};

/// select_expert_choice(token_softmax(L)) -> route expert.
struct FuseExpertChoice : OpRewritePattern<SelectExpertChoiceOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SelectExpertChoiceOp op,
                                PatternRewriter &rewriter) const override {
    auto softmax = op.getScores().getDefiningOp<TokenSoftmaxOp>();
    if (!softmax)
      return rewriter.notifyMatchFailure(op, "scores are not a row softmax");
    RouteParams p;
    p.k = asF64(rewriter, op.getK());
    p.capacity = op.getCapacityAttr();
    p.capacityFactor = op.getCapacityFactorAttr();
    auto route =
        createRoute(rewriter, op, RoutingMode::expert, softmax.getLogits(), p);
    rewriter.replaceOp(op, route.getResults());
    return success();
  }
};

/// select_global over any of the three score ops -> route unified, with the
/// alpha that makes the unified score equal to that score.
struct FuseUnified : OpRewritePattern<SelectGlobalOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SelectGlobalOp op,
                                PatternRewriter &rewriter) const override {
    Operation *producer = op.getScores().getDefiningOp();
    RouteParams p;
    p.k = op.getKAttr();
    p.n = op.getNAttr();
    Value logits;
    if (auto unified = dyn_cast_or_null<UnifiedScoreOp>(producer)) {
      logits = unified.getLogits();
      p.alpha = unified.getAlphaAttr();
      p.expertScore = unified.getExpertScoreAttr();
    } else if (auto softmax = dyn_cast_or_null<TokenSoftmaxOp>(producer)) {
      logits = softmax.getLogits();
      p.alpha = rewriter.getF64FloatAttr(0.0);
    } else if (auto expert = dyn_cast_or_null<ExpertScoreOp>(producer)) {
      logits = expert.getLogits();
      p.alpha = rewriter.getF64FloatAttr(1.0);
      p.expertScore = expert.getKindAttr();
    } else {
      return rewriter.notifyMatchFailure(op, "scores are not a moe score op");
    }
    auto route = createRoute(rewriter, op, RoutingMode::unified, logits, p);
    rewriter.replaceOp(op, route.getResults());
    return success();
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
