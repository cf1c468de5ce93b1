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
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::usmoe::loops;
namespace routing = mlir::usmoe::routing;
using arith::CmpIPredicate;

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
  forEachTokenGroup(b, buffers.gates, /*parallel=*/true,
                    [&](LoopBuilder &b, Value bi, Value t0, Value count) {
                      emitTopKRows(b, buffers.gates, buffers.mask, bi, t0,
                                   count, k, renormalize);
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

/// Expert Choice or Unified over [B, T, E] buffers (or views): scores into
/// the gate buffer, the budget for this T, then the selection.
void emitSelectingRouter(LoopBuilder &b, const routing::RouterOptions &options,
                         const ModelOptions &model, Value logits,
                         SelectionBuffers buffers) {
  if (options.mode == routing::Mode::Expert) {
    emitTokenSoftmax(b, logits, buffers.gates, model);
    Value capacity = emitSetBudget(b, options, buffers.gates);
    emitExpertChoice(b, buffers.gates, buffers.mask, capacity, model);
    return;
  }
  emitUnifiedScore(b, *options.alpha, moe::toScoreKind(*options.expertScore),
                   logits, buffers.gates, model);
  Value budget = emitSetBudget(b, options, buffers.gates);
  emitGlobalTopN(b, buffers.gates, buffers.mask, budget, model);
}

/// For each sequence i of a packed [1, N, E] batch with offsets `seqlens`
/// (S + 1 of them), body(slice) where slice(m) is m's rows seqlens[i] ..
/// seqlens[i+1] as a [1, T_i, E] view. Checks the offsets first (start at
/// 0, never decrease, end at N): the caller gets the failed check.
void forEachPackedSequence(
    LoopBuilder &b, Value seqlens, Value like,
    function_ref<void(LoopBuilder &, function_ref<Value(Value)>)> body) {
  Value zero = indexConst(b, 0), one = indexConst(b, 1);
  Value offsets = dim(b, seqlens, 0);
  cf::AssertOp::create(b, cmpi(b, CmpIPredicate::uge, offsets, one),
                       "moe: seqlens needs at least one offset");
  Value sequences = subi(b, offsets, one);
  cf::AssertOp::create(
      b, cmpi(b, CmpIPredicate::eq, load(b, seqlens, {zero}), i32Const(b, 0)),
      "moe: seqlens must start at 0");
  Value last = i32ToIndex(b, load(b, seqlens, {sequences}));
  cf::AssertOp::create(b, cmpi(b, CmpIPredicate::eq, last, dim(b, like, 1)),
                       "moe: seqlens must end at the number of tokens");
  forRange(b, zero, sequences, [&](LoopBuilder &b, Value i) {
    Value lo = i32ToIndex(b, load(b, seqlens, {i}));
    Value hi = i32ToIndex(b, load(b, seqlens, {addi(b, i, one)}));
    cf::AssertOp::create(b, cmpi(b, CmpIPredicate::sle, lo, hi),
                         "moe: seqlens must not decrease");
    Value length = subi(b, hi, lo);
    int64_t experts = cast<MemRefType>(like.getType()).getDimSize(2);
    body(b, [&](Value memref) -> Value {
      SmallVector<OpFoldResult> offsets = {b.getIndexAttr(0), lo,
                                           b.getIndexAttr(0)};
      SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), length,
                                         b.getIndexAttr(experts)};
      SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
      return memref::SubViewOp::create(b, memref, offsets, sizes, strides);
    });
  });
}

/// The plan of a Token Choice selection from its [rows, k] picks (ids and
/// final gates): O(rows * k), the mask is not read.
PlanBuffers emitPlanOfPicks(LoopBuilder &b, const TopKListBuffers &picks,
                            int64_t k, Value rows, int64_t experts) {
  auto pick = [&](LoopBuilder &b, Value g, int64_t j) {
    return i32ToIndex(b, load(b, picks.ids, {g, indexConst(b, j)}));
  };
  PlanSource source;
  source.countRow = [&](LoopBuilder &b, Value counts, Value tile, Value g) {
    for (int64_t j = 0; j < k; ++j) {
      Value e = pick(b, g, j);
      store(b, addi(b, load(b, counts, {tile, e}), i32Const(b, 1)), counts,
            {tile, e});
    }
  };
  source.forEachSelected = [&](LoopBuilder &b, Value g, SelectedBody body) {
    for (int64_t j = 0; j < k; ++j)
      body(b, pick(b, g, j), load(b, picks.weights, {g, indexConst(b, j)}));
  };
  // Work in the units forParallel2D weighs: about 8 elements' worth a pick.
  return emitPlan(b, rows, experts, muli(b, rows, indexConst(b, 8 * k)),
                  source);
}

struct RouteLowering : OpRewritePattern<moe::RouteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(moe::RouteOp op,
                                PatternRewriter &rewriter) const override {
    LoopBuilder b(op.getLoc(), rewriter);
    Value logits = toBuffer(b, op.getLogits());
    SelectionBuffers buffers = allocSelection(b, op, logits);
    routing::RouterOptions options = op.getRouterOptions();
    ModelOptions model{options.softcap, options.routedScalingFactor};
    // Token Choice: the top-k lists and plans of this selection, written
    // from each row's picks.
    SmallVector<moe::TopKListOp> lists;
    SmallVector<moe::PlanOp> plans;
    TopKListBuffers listBuffers;
    switch (options.mode) {
    case routing::Mode::Token: {
      int64_t k = routing::countOfK(*options.k);
      int64_t experts = cast<MemRefType>(logits.getType()).getDimSize(2);
      Value bias = op.getBias() ? toBuffer(b, op.getBias()) : Value();
      // Group-limited selection: per-row scratch, allocated once.
      Value kept, groupScores;
      if (options.nGroup) {
        kept = alloc(b, MemRefType::get({*options.nGroup}, b.getI1Type()));
        groupScores =
            alloc(b, MemRefType::get({*options.nGroup}, b.getF32Type()));
      }
      for (Operation *user : op.getMask().getUsers()) {
        if (auto list = dyn_cast<moe::TopKListOp>(user))
          if (writtenByRoute(list))
            lists.push_back(list);
        if (auto plan = dyn_cast<moe::PlanOp>(user))
          if (writtenByRoute(plan))
            plans.push_back(plan);
      }
      Value rows = muli(b, dim(b, logits, 0), dim(b, logits, 1));
      // The plans are built from each row's picks, kept in list form.
      if (!lists.empty())
        listBuffers = allocTopKLists(b, lists.front(), rows);
      else if (!plans.empty())
        listBuffers = allocTopKLists(b, k, rows);
      bool keepPicks = !lists.empty() || !plans.empty();
      const TopKListBuffers *picksOut = keepPicks ? &listBuffers : nullptr;
      // Group-limited rows, one at a time through the groups' scratch.
      auto selectLimitedRow = [&](LoopBuilder &b, Value bi, Value ti) {
        auto rowScore = [&](LoopBuilder &b, Value ei) {
          return rankingScore(b, load(b, buffers.gates, {bi, ti, ei}), bias,
                              ei);
        };
        emitKeptGroups(b, kept, groupScores, experts, *options.topkGroup,
                       rowScore);
        // Experts of dropped groups get key 0, below every real key.
        auto keyOf = [&](LoopBuilder &b, Value ei) {
          Value group = arith::DivUIOp::create(
              b, ei, indexConst(b, experts / *options.nGroup));
          return select(b, load(b, kept, {group}),
                        scoreKeyOf(b, rowScore(b, ei)), i32Const(b, 0));
        };
        emitTopKRow(b, buffers.gates, buffers.mask, bi, ti, k,
                    options.renormalize, keyOf, model, picksOut);
      };
      // A group of rows at a time: the rows' scores are still in cache when
      // selected. Rows are independent (each writes its own gates and mask),
      // so groups are an scf.parallel, except with the groups' shared
      // scratch.
      auto scoreRows = [&](LoopBuilder &b, Value bi, Value t0, Value count) {
        // sigmoid_bias: gates are sigmoid(L), the ranking sigmoid(L) + bias.
        if (!bias)
          return emitSoftmaxRows(b, logits, buffers.gates, bi, t0, count,
                                 model);
        forRange(b, t0, addi(b, t0, count), [&](LoopBuilder &b, Value ti) {
          emitSigmoidRow(b, logits, buffers.gates, bi, ti, model);
        });
      };
      forEachTokenGroup(b, logits, /*parallel=*/!kept,
                        [&](LoopBuilder &b, Value bi, Value t0, Value count) {
                          scoreRows(b, bi, t0, count);
                          if (kept)
                            return forRange(b, t0, addi(b, t0, count),
                                            [&](LoopBuilder &b, Value ti) {
                                              selectLimitedRow(b, bi, ti);
                                            });
                          emitTopKRows(b, buffers.gates, buffers.mask, bi, t0,
                                       count, k, options.renormalize, bias,
                                       model, picksOut);
                        });
      break;
    }
    case routing::Mode::Expert:
    case routing::Mode::Unified:
      if (Value seqlens = op.getSeqlens())
        forEachPackedSequence(
            b, toBuffer(b, seqlens), logits,
            [&](LoopBuilder &b, function_ref<Value(Value)> slice) {
              emitSelectingRouter(b, options, model, slice(logits),
                                  {slice(buffers.gates), slice(buffers.mask)});
            });
      else
        emitSelectingRouter(b, options, model, logits, buffers);
      break;
    }
    replaceSelection(rewriter, b, op, buffers);
    if (!plans.empty()) {
      int64_t k = routing::countOfK(*options.k);
      PlanBuffers plan = emitPlanOfPicks(
          b, listBuffers, k, muli(b, dim(b, logits, 0), dim(b, logits, 1)),
          cast<MemRefType>(logits.getType()).getDimSize(2));
      for (moe::PlanOp planOp : plans)
        rewriter.replaceOp(
            planOp,
            {toTensor(b, plan.offsets, planOp.getExpertOffsets().getType()),
             toTensor(b, plan.ids, planOp.getTokenIds().getType()),
             toTensor(b, plan.weights, planOp.getWeights().getType())});
    }
    for (moe::TopKListOp list : lists)
      rewriter.replaceOp(
          list,
          {toTensor(b, listBuffers.ids, list.getExpertIds().getType()),
           toTensor(b, listBuffers.weights, list.getWeights().getType())});
    return success();
  }
};

} // namespace

void mlir::usmoe::loops::populateSelectionPatterns(
    RewritePatternSet &patterns) {
  patterns.add<SelectTopKLowering, SelectExpertChoiceLowering,
               SelectGlobalLowering, RouteLowering>(patterns.getContext());
}
