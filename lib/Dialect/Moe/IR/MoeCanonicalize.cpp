//===- MoeCanonicalize.cpp - canonicalizations that follow from the math --===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Each pattern rewrites a router into a simpler one that computes the same
// selection and gates on every input, as the spec allows:
//  - the unified score with alpha = 0 is the row softmax, with alpha = 1 the
//    expert score;
//  - with a static T, derived budgets (N = floor(k * T), C from a capacity
//    factor) become explicit constants;
//  - with T = 1, a global top-N is a per-token top-k (the two score terms are
//    increasing in the logit), and with alpha = 0 the gates agree as well.
//
//===----------------------------------------------------------------------===//

#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"
#include "usmoe/Dialect/Moe/IR/MoeOps.h"

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The static number of tokens per sequence of a [B, T, E] value, if known.
std::optional<int64_t> staticTokenCount(Value routingTensor) {
  auto type = cast<ShapedType>(routingTensor.getType());
  if (type.isDynamicDim(1))
    return std::nullopt;
  return type.getDimSize(1);
}

/// unified_score(alpha = 0) -> token_softmax; (alpha = 1) -> expert_score.
struct SimplifyUnifiedScoreEndpoints : OpRewritePattern<UnifiedScoreOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(UnifiedScoreOp op,
                                PatternRewriter &rewriter) const override {
    double alpha = op.getAlpha().convertToDouble();
    if (alpha == 0.0) {
      rewriter.replaceOpWithNewOp<TokenSoftmaxOp>(op, op.getLogits());
      return success();
    }
    if (alpha == 1.0) {
      rewriter.replaceOpWithNewOp<ExpertScoreOp>(op, op.getExpertScore(),
                                                 op.getLogits());
      return success();
    }
    return rewriter.notifyMatchFailure(op, "alpha is strictly inside (0, 1)");
  }
};

/// select_expert_choice(capacity_factor, k) with a static T -> capacity.
struct MaterializeExpertCapacity : OpRewritePattern<SelectExpertChoiceOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SelectExpertChoiceOp op,
                                PatternRewriter &rewriter) const override {
    std::optional<int64_t> tokens = staticTokenCount(op.getScores());
    auto factor = op.getCapacityFactorAttr();
    if (!tokens || !factor || !op.getK())
      return rewriter.notifyMatchFailure(op, "no derived capacity to fold");
    int64_t numExperts = op.getScores().getType().getDimSize(2);
    int64_t capacity = routing::expertCapacity(factor.getValueAsDouble(),
                                               *op.getK(), *tokens, numExperts);
    rewriter.modifyOpInPlace(op, [&] {
      op.setCapacity(capacity);
      op.removeCapacityFactorAttr();
      op.removeKAttr();
    });
    return success();
  }
};

/// select_global(k) with a static T -> n = floor(k * T); with T = 1 and
/// n >= 1 the global top-N is the per-token top-k with k = n.
struct SimplifyGlobalSelection : OpRewritePattern<SelectGlobalOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SelectGlobalOp op,
                                PatternRewriter &rewriter) const override {
    std::optional<int64_t> tokens = staticTokenCount(op.getScores());
    if (!tokens)
      return rewriter.notifyMatchFailure(op, "dynamic number of tokens");
    if (auto k = op.getKAttr()) {
      int64_t n = routing::unifiedBudget(k.getValueAsDouble(), *tokens);
      rewriter.modifyOpInPlace(op, [&] {
        op.setN(n);
        op.removeKAttr();
      });
      return success();
    }
    if (*tokens == 1 && op.getN() && *op.getN() >= 1) {
      rewriter.replaceOpWithNewOp<SelectTopKOp>(op, op.getScores(), *op.getN(),
                                                /*renormalize=*/false);
      return success();
    }
    return rewriter.notifyMatchFailure(op, "nothing to simplify");
  }
};

/// The same rules on the fused op: derived budgets become explicit, and a
/// unified router over single-token sequences with alpha = 0 (gates = P) is
/// Token Choice.
struct SimplifyRoute : OpRewritePattern<RouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RouteOp op,
                                PatternRewriter &rewriter) const override {
    std::optional<int64_t> tokens = staticTokenCount(op.getLogits());
    if (!tokens)
      return rewriter.notifyMatchFailure(op, "dynamic number of tokens");
    if (op.getSeqlens())
      return rewriter.notifyMatchFailure(op, "T varies by packed sequence");
    int64_t numExperts = op.getLogits().getType().getDimSize(2);
    if (RouterAttrInterface router =
            op.getRouter().withExplicitBudget(*tokens, numExperts)) {
      rewriter.modifyOpInPlace(op, [&] { op.setRouterAttr(router); });
      return success();
    }
    routing::RouterOptions options = op.getRouterOptions();
    if (options.mode != routing::Mode::Unified || *tokens != 1 ||
        options.alpha != 0.0 || !options.n || *options.n < 1)
      return rewriter.notifyMatchFailure(op, "nothing to simplify");
    routing::RouterOptions tokenChoice;
    tokenChoice.mode = routing::Mode::Token;
    tokenChoice.k = static_cast<double>(*options.n);
    auto router = RouterAttrInterface::get(op.getContext(), tokenChoice,
                                           [&] { return op.emitOpError(); });
    if (!router)
      return failure();
    auto route = RouteOp::create(rewriter, op.getLoc(), op.getLogits(),
                                 /*bias=*/Value(), /*seqlens=*/Value(), router);
    rewriter.replaceOp(op, route.getResults());
    return success();
  }
};

} // namespace

void UnifiedScoreOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                                 MLIRContext *context) {
  results.add<SimplifyUnifiedScoreEndpoints>(context);
}

void SelectExpertChoiceOp::getCanonicalizationPatterns(
    RewritePatternSet &results, MLIRContext *context) {
  results.add<MaterializeExpertCapacity>(context);
}

void SelectGlobalOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                                 MLIRContext *context) {
  results.add<SimplifyGlobalSelection>(context);
}

void RouteOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                          MLIRContext *context) {
  results.add<SimplifyRoute>(context);
}
