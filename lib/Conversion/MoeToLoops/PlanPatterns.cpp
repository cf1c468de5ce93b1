//===- PlanPatterns.cpp - lower moe.plan and moe.topk_list to loops -------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "Conversion/Common/GivenSelection.h"
#include "PopulatePatterns.h"
#include "RoutingKernels.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::usmoe::loops;
using arith::CmpIPredicate;

/// Rows per tile of the plan's parallel passes (fixed: the plan does not
/// depend on the thread count anyway, every position is determined).
static constexpr int64_t kPlanTileRows = 1024;

/// Expert-major CSR in two passes over the selection, each over tiles of
/// rows in parallel: count per (tile, expert); then, sequentially over
/// experts and tiles, the offsets and where each tile's rows of each expert
/// start; then a stable fill of each tile from its own cursors (rows in
/// ascending g inside a tile, tiles in order inside an expert, so each
/// expert's ids ascend; a row's own experts are distinct, so the order in
/// which `source` visits them does not matter).
PlanBuffers mlir::usmoe::loops::emitPlan(LoopBuilder &b, Value rows,
                                         int64_t experts, Value work,
                                         const PlanSource &source) {
  Value zero = indexConst(b, 0), one = indexConst(b, 1);
  Value numExperts = indexConst(b, experts);
  Value tileRows = indexConst(b, kPlanTileRows);
  Value tiles = arith::CeilDivUIOp::create(b, rows, tileRows);

  // cursors[tile, e]: first the tile's count of expert e, then where its
  // rows of expert e go.
  auto tableType =
      MemRefType::get({ShapedType::kDynamic, experts}, b.getI32Type());
  Value cursors = alloc(b, tableType, {tiles});
  auto forEachRowOf = [&](LoopBuilder &b, Value tile,
                          function_ref<void(LoopBuilder &, Value)> body) {
    Value first = muli(b, tile, tileRows);
    Value last = arith::MinUIOp::create(b, addi(b, first, tileRows), rows);
    forRange(b, first, last, body);
  };
  forParallel2D(b, one, tiles, work, [&](LoopBuilder &b, Value, Value tile) {
    forRange(b, zero, numExperts, [&](LoopBuilder &b, Value e) {
      store(b, i32Const(b, 0), cursors, {tile, e});
    });
    forEachRowOf(b, tile, [&](LoopBuilder &b, Value g) {
      source.countRow(b, cursors, tile, g);
    });
  });

  auto offsetsType = MemRefType::get({experts + 1}, b.getI32Type());
  Value offsets = alloc(b, offsetsType);
  store(b, i32Const(b, 0), offsets, {zero});
  forRangeAcc(b, zero, numExperts, {i32Const(b, 0)},
              [&](LoopBuilder &b, Value e, ValueRange acc) {
                Value end = forRangeAcc(
                    b, zero, tiles, {acc[0]},
                    [&](LoopBuilder &b, Value tile, ValueRange start) {
                      Value count = load(b, cursors, {tile, e});
                      store(b, start[0], cursors, {tile, e});
                      return SmallVector<Value>{addi(b, start[0], count)};
                    })[0];
                store(b, end, offsets, {addi(b, e, one)});
                return SmallVector<Value>{end};
              });

  Value selected = i32ToIndex(b, load(b, offsets, {numExperts}));
  Value ids = alloc(b, MemRefType::get({ShapedType::kDynamic}, b.getI32Type()),
                    {selected});
  Value weights = alloc(
      b, MemRefType::get({ShapedType::kDynamic}, b.getF32Type()), {selected});
  forParallel2D(b, one, tiles, work, [&](LoopBuilder &b, Value, Value tile) {
    forEachRowOf(b, tile, [&](LoopBuilder &b, Value g) {
      Value id = indexToI32(b, g);
      source.forEachSelected(b, g, [&](LoopBuilder &b, Value ei, Value weight) {
        Value pos = load(b, cursors, {tile, ei});
        Value at = i32ToIndex(b, pos);
        store(b, id, ids, {at});
        store(b, weight, weights, {at});
        store(b, addi(b, pos, i32Const(b, 1)), cursors, {tile, ei});
      });
    });
  });
  return {offsets, ids, weights};
}

namespace {

/// The plan of a selection given by its dense mask: each row's experts are
/// found by reading all E of its mask bytes (the count adds them as 0/1, a
/// loop LLVM vectorizes).
struct PlanLowering : OpRewritePattern<moe::PlanOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(moe::PlanOp op,
                                PatternRewriter &rewriter) const override {
    if (writtenByRoute(op))
      return rewriter.notifyMatchFailure(op, "the route's lowering writes it");
    LoopBuilder b(op.getLoc(), rewriter);
    Value gates = toBuffer(b, op.getGates());
    Value mask = toBuffer(b, op.getMask());
    int64_t experts = op.getGates().getType().getDimSize(2);
    Value zero = indexConst(b, 0);
    Value numExperts = indexConst(b, experts);
    Value tokens = dim(b, mask, 1);
    Value rows = muli(b, dim(b, mask, 0), tokens);
    // mask[g / T, g % T, :]
    auto rowOf = [&](LoopBuilder &b, Value g, Value e) {
      return SmallVector<Value>{arith::DivUIOp::create(b, g, tokens),
                                arith::RemUIOp::create(b, g, tokens), e};
    };
    PlanSource dense;
    dense.countRow = [&](LoopBuilder &b, Value counts, Value tile, Value g) {
      forRange(b, zero, numExperts, [&](LoopBuilder &b, Value ei) {
        Value inc = arith::ExtUIOp::create(b, b.getI32Type(),
                                           load(b, mask, rowOf(b, g, ei)));
        store(b, addi(b, load(b, counts, {tile, ei}), inc), counts, {tile, ei});
      });
    };
    dense.forEachSelected = [&](LoopBuilder &b, Value g, SelectedBody body) {
      forRange(b, zero, numExperts, [&](LoopBuilder &b, Value ei) {
        SmallVector<Value> at = rowOf(b, g, ei);
        ifThen(b, load(b, mask, at),
               [&](LoopBuilder &b) { body(b, ei, load(b, gates, at)); });
      });
    };
    PlanBuffers plan =
        emitPlan(b, rows, experts, muli(b, rows, numExperts), dense);
    rewriter.replaceOp(
        op, {toTensor(b, plan.offsets, op.getExpertOffsets().getType()),
             toTensor(b, plan.ids, op.getTokenIds().getType()),
             toTensor(b, plan.weights, op.getWeights().getType())});
    return success();
  }
};

/// Per token, the selected experts by descending gate (ties: lower expert
/// first), k at most, padded with (-1, 0). The j-th entry is the best
/// selected expert ranked after the (j-1)-th, as in the top-k row scan.
struct TopKListLowering : OpRewritePattern<moe::TopKListOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(moe::TopKListOp op,
                                PatternRewriter &rewriter) const override {
    if (writtenByRoute(op))
      return rewriter.notifyMatchFailure(op, "the route's lowering writes it");
    LoopBuilder b(op.getLoc(), rewriter);
    Value gates = toBuffer(b, op.getGates());
    Value mask = toBuffer(b, op.getMask());
    int64_t experts = op.getGates().getType().getDimSize(2);
    int64_t k = op.getK();
    Value zero = indexConst(b, 0);
    Value tokens = dim(b, mask, 1);
    Value rows = muli(b, dim(b, mask, 0), tokens);

    auto idsType = cast<RankedTensorType>(op.getExpertIds().getType());
    auto weightsType = cast<RankedTensorType>(op.getWeights().getType());
    TopKListBuffers lists = allocTopKLists(b, op, rows);
    Value ids = lists.ids, weights = lists.weights;

    Value minusOne = i32Const(b, -1);
    // Rows are independent: each writes its own row of the lists.
    forEachTokenInParallel(b, mask, [&](LoopBuilder &b, Value bi, Value ti) {
      Value g = addi(b, muli(b, bi, tokens), ti);
      if (k <= kInsertionTopK) {
        SmallVector<Value> best = emitBestKIndices(
            b, indexConst(b, experts), k, [&](LoopBuilder &b, Value ei) {
              return std::make_pair(scoreKeyOf(b, load(b, gates, {bi, ti, ei})),
                                    load(b, mask, {bi, ti, ei}));
            });
        for (auto [j, idx] : llvm::enumerate(best)) {
          Value found = cmpi(b, CmpIPredicate::sge, idx, i32Const(b, 0));
          Value at = i32ToIndex(b, select(b, found, idx, i32Const(b, 0)));
          Value gate = load(b, gates, {bi, ti, at});
          store(b, idx, ids, {g, indexConst(b, j)});
          store(b, select(b, found, gate, f32Const(b, 0.0)), weights,
                {g, indexConst(b, j)});
        }
        return;
      }
      SmallVector<Value> prev = {f32Const(b, 0.0), minusOne, i1Const(b, true)};
      forRangeAcc(
          b, zero, indexConst(b, k), prev,
          [&](LoopBuilder &b, Value j, ValueRange p) {
            SmallVector<Value> best = forRangeAcc(
                b, zero, indexConst(b, experts), {f32Const(b, 0.0), minusOne},
                [&](LoopBuilder &b, Value ei, ValueRange acc) {
                  Value on = load(b, mask, {bi, ti, ei});
                  Value gate = load(b, gates, {bi, ti, ei});
                  Value idx = indexToI32(b, ei);
                  using arith::CmpFPredicate;
                  Value after =
                      ori(b, p[2],
                          ori(b, cmpf(b, CmpFPredicate::OLT, gate, p[0]),
                              andi(b, cmpf(b, CmpFPredicate::OEQ, gate, p[0]),
                                   cmpi(b, CmpIPredicate::sgt, idx, p[1]))));
                  Value better = ori(
                      b, cmpi(b, CmpIPredicate::slt, acc[1], i32Const(b, 0)),
                      cmpf(b, CmpFPredicate::OGT, gate, acc[0]));
                  Value take = andi(b, on, andi(b, after, better));
                  return SmallVector<Value>{select(b, take, gate, acc[0]),
                                            select(b, take, idx, acc[1])};
                });
            Value found = cmpi(b, CmpIPredicate::sge, best[1], i32Const(b, 0));
            store(b, best[1], ids, {g, j});
            store(b, select(b, found, best[0], f32Const(b, 0.0)), weights,
                  {g, j});
            // Once a row runs out, later entries stay padding.
            return SmallVector<Value>{
                select(b, found, best[0], p[0]),
                select(b, found, best[1], i32Const(b, experts)),
                i1Const(b, false)};
          });
    });
    rewriter.replaceOp(
        op, {toTensor(b, ids, idsType), toTensor(b, weights, weightsType)});
    return success();
  }
};

/// select_given: zero the [1, R, E] selection, then set each row's given
/// pairs, checking each id (range, repeats) before it is used.
struct SelectGivenLowering : OpRewritePattern<moe::SelectGivenOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(moe::SelectGivenOp op,
                                PatternRewriter &rewriter) const override {
    LoopBuilder b(op.getLoc(), rewriter);
    Value ids = toBuffer(b, op.getExpertIds());
    Value given = toBuffer(b, op.getWeights());
    Value zero = indexConst(b, 0), rows = dim(b, ids, 0);
    auto bufferOf = [&](Type tensor) {
      auto type = cast<RankedTensorType>(tensor);
      SmallVector<Value> dynRows;
      if (type.isDynamicDim(1))
        dynRows.push_back(rows);
      return alloc(b, MemRefType::get(type.getShape(), type.getElementType()),
                   dynRows);
    };
    Value gates = bufferOf(op.getGates().getType());
    Value mask = bufferOf(op.getMask().getType());
    int64_t experts = op.getExperts();
    forRange(b, zero, rows, [&](LoopBuilder &b, Value r) {
      emitGivenRow(b, ids, given, gates, mask, r, experts, /*checked=*/true);
    });
    rewriter.replaceOp(op, {toTensor(b, gates, op.getGates().getType()),
                            toTensor(b, mask, op.getMask().getType())});
    return success();
  }
};

} // namespace

void mlir::usmoe::loops::populatePlanPatterns(RewritePatternSet &patterns) {
  patterns.add<PlanLowering, TopKListLowering, SelectGivenLowering>(
      patterns.getContext());
}
