//===- WarpRow.cpp - one token's expert row in a warp's registers ---------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "WarpRow.h"
#include "Conversion/Common/RoutingMath.h"
#include "WarpReduce.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using namespace mlir::usmoe::gpu_kernels;
using arith::CmpFPredicate;
using arith::CmpIPredicate;

void gpu_kernels::forWarpRow(
    LoopBuilder &b, Value logits, int64_t warpsPerBlock,
    function_ref<void(LoopBuilder &, Value, Value, const RowLanes &, Value)>
        body,
    int64_t width) {
  assert(width >= 1 && width <= kWarpSize && kWarpSize % width == 0 &&
         "a row's lanes are an aligned power-of-two segment of the warp");
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value bid = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value warpSize = indexConst(b, kWarpSize);
  Value lane = arith::RemUIOp::create(b, tid, warpSize);
  Value warp = arith::DivUIOp::create(b, tid, warpSize);
  Value warpIndex = addi(b, muli(b, bid, indexConst(b, warpsPerBlock)), warp);
  Value tokens = dim(b, logits, 1);
  Value rows = muli(b, dim(b, logits, 0), tokens);
  RowLanes lanes;
  lanes.width = width;
  lanes.warpLane = lane;
  if (width == kWarpSize) {
    lanes.lane = lane;
    lanes.base = i32Const(b, 0);
    ifThen(b, cmpi(b, CmpIPredicate::ult, warpIndex, rows),
           [&](LoopBuilder &b) {
             body(b, arith::DivUIOp::create(b, warpIndex, tokens),
                  arith::RemUIOp::create(b, warpIndex, tokens), lanes,
                  i1Const(b, true));
           });
    return;
  }
  Value segment = arith::DivUIOp::create(b, lane, indexConst(b, width));
  lanes.lane = arith::RemUIOp::create(b, lane, indexConst(b, width));
  lanes.base = indexToI32(b, muli(b, segment, indexConst(b, width)));
  Value row =
      addi(b, muli(b, warpIndex, indexConst(b, kWarpSize / width)), segment);
  Value valid = cmpi(b, CmpIPredicate::ult, row, rows);
  // Whole warps past the last row skip; a partial warp runs every lane.
  Value firstOfWarp = muli(b, warpIndex, indexConst(b, kWarpSize / width));
  ifThen(b, cmpi(b, CmpIPredicate::ult, firstOfWarp, rows),
         [&](LoopBuilder &b) {
           Value at =
               arith::MinUIOp::create(b, row, subi(b, rows, indexConst(b, 1)));
           body(b, arith::DivUIOp::create(b, at, tokens),
                arith::RemUIOp::create(b, at, tokens), lanes, valid);
         });
}

Value WarpRow::ownerLane(LoopBuilder &b, Value e) const {
  if (segmentBase)
    return addi(b, segmentBase,
                arith::RemUIOp::create(b, e, i32Const(b, width)));
  if (vectorWidth == 1)
    return arith::RemUIOp::create(b, e, i32Const(b, kWarpSize));
  Value inGroup =
      arith::RemUIOp::create(b, e, i32Const(b, kWarpSize * vectorWidth));
  return arith::DivUIOp::create(b, inGroup, i32Const(b, vectorWidth));
}

Value WarpRow::slotOf(LoopBuilder &b, Value e) const {
  if (segmentBase)
    return arith::DivUIOp::create(b, e, i32Const(b, width));
  if (vectorWidth == 1)
    return arith::DivUIOp::create(b, e, i32Const(b, kWarpSize));
  Value group =
      arith::DivUIOp::create(b, e, i32Const(b, kWarpSize * vectorWidth));
  return addi(b, muli(b, group, i32Const(b, vectorWidth)),
              arith::RemUIOp::create(b, e, i32Const(b, vectorWidth)));
}

WarpRow gpu_kernels::emitWarpRowLoad(LoopBuilder &b, Value logits, Value bi,
                                     Value ti, const RowLanes &lanes,
                                     const ModelOptions &model) {
  auto logitsType = cast<MemRefType>(logits.getType());
  const int64_t experts = logitsType.getDimSize(2);
  Value lane = lanes.lane;
  WarpRow row;
  row.width = lanes.width;
  if (lanes.width < kWarpSize)
    row.segmentBase = lanes.base;
  row.vectorWidth =
      experts % kVectorWidth == 0 && !row.segmentBase ? kVectorWidth : 1;
  const int64_t span = row.width * row.vectorWidth; // experts per group
  row.perLane = (experts + span - 1) / span * row.vectorWidth;
  Value numExperts = indexConst(b, experts);
  if (row.vectorWidth == 1) {
    Value last = indexConst(b, experts - 1);
    for (int64_t v = 0; v < row.perLane; ++v) {
      Value e = addi(b, lane, indexConst(b, v * row.width));
      Value in = cmpi(b, CmpIPredicate::ult, e, numExperts);
      // Clamped load, then masked: no divergent branch around the load.
      Value at = arith::MinUIOp::create(b, e, last);
      Value x = model.logit(b, loadAsF32(b, logits, {bi, ti, at}));
      row.expert.push_back(e);
      row.inBounds.push_back(in);
      row.logit.push_back(select(b, in, x, f32Const(b, kNegInf)));
    }
  } else {
    auto vectorType =
        VectorType::get({kVectorWidth}, logitsType.getElementType());
    Value lastGroup = indexConst(b, experts - kVectorWidth);
    for (int64_t group = 0; group < row.perLane / kVectorWidth; ++group) {
      Value base = addi(b, muli(b, lane, indexConst(b, kVectorWidth)),
                        indexConst(b, group * span));
      // One aligned vector load per group (clamped, then masked).
      Value at = arith::MinUIOp::create(b, base, lastGroup);
      // Aligned: E % 4 == 0 and `at` % 4 == 0, so with a 16-byte aligned
      // base (any allocation) every group starts on a vector boundary.
      int64_t bytes = kVectorWidth *
                      logitsType.getElementType().getIntOrFloatBitWidth() / 8;
      Value chunk = vector::LoadOp::create(
          b, vectorType, logits, ValueRange{bi, ti, at},
          /*nontemporal=*/false, llvm::MaybeAlign(bytes));
      for (int64_t j = 0; j < kVectorWidth; ++j) {
        Value e = addi(b, base, indexConst(b, j));
        Value in = cmpi(b, CmpIPredicate::ult, e, numExperts);
        Value x = vector::ExtractOp::create(b, chunk, j);
        if (!x.getType().isF32())
          x = arith::ExtFOp::create(b, b.getF32Type(), x);
        x = model.logit(b, x);
        row.expert.push_back(e);
        row.inBounds.push_back(in);
        row.logit.push_back(select(b, in, x, f32Const(b, kNegInf)));
      }
    }
  }

  return row;
}

WarpRow gpu_kernels::emitWarpRowSoftmax(LoopBuilder &b, Value logits, Value bi,
                                        Value ti, const RowLanes &lanes,
                                        const ModelOptions &model) {
  WarpRow row = emitWarpRowLoad(b, logits, bi, ti, lanes, model);
  Value localMax = row.logit[0];
  for (int64_t v = 1; v < row.perLane; ++v)
    localMax = arith::MaximumFOp::create(b, localMax, row.logit[v]);
  Value max = warpMax(b, localMax, row.width);
  Value valid = softmaxHasRow(b, max);

  // The sum in SoftmaxSum's integer units: the same bits as the CPU's.
  const int64_t experts = cast<MemRefType>(logits.getType()).getDimSize(2);
  SoftmaxSum units = SoftmaxSum::forTerms(b, indexConst(b, experts));
  SmallVector<Value> e(row.perLane);
  Value localSum = SoftmaxSum::zero(b);
  for (int64_t v = 0; v < row.perLane; ++v) {
    e[v] =
        softmaxNumerator(b, row.logit[v], max, andi(b, valid, row.inBounds[v]));
    localSum = addi(b, localSum, units.term(b, e[v]));
  }
  Value sum = units.total(b, warpSumI64(b, localSum, row.width));
  for (int64_t v = 0; v < row.perLane; ++v)
    row.score.push_back(softmaxScore(b, e[v], sum, valid));
  row.max = max;
  row.sum = sum;
  return row;
}

Value gpu_kernels::softmaxHasRow(LoopBuilder &b, Value max) {
  return cmpf(b, CmpFPredicate::ONE, max, f32Const(b, kNegInf));
}

Value gpu_kernels::softmaxNumerator(LoopBuilder &b, Value x, Value max,
                                    Value live) {
  Value atMax = cmpf(b, CmpFPredicate::OEQ, x, max);
  Value shifted = select(b, atMax, f32Const(b, 0.0), subf(b, x, max));
  return select(b, live, math::ExpOp::create(b, shifted), f32Const(b, 0.0));
}

Value gpu_kernels::softmaxScore(LoopBuilder &b, Value numerator, Value sum,
                                Value valid) {
  return select(b, valid, divf(b, numerator, sum), f32Const(b, 0.0));
}

static Value registerBit(LoopBuilder &b, int64_t v) {
  return arith::ConstantIntOp::create(b, b.getI64Type(), int64_t(1) << v);
}

Value gpu_kernels::isTakenBit(LoopBuilder &b, Value taken, int64_t v) {
  return cmpi(b, CmpIPredicate::ne, andi(b, taken, registerBit(b, v)),
              arith::ConstantIntOp::create(b, b.getI64Type(), 0));
}

SmallVector<Value> gpu_kernels::emitWarpTopK(LoopBuilder &b, const WarpRow &row,
                                             ArrayRef<Value> key, Value lane,
                                             int64_t k, ValueRange init,
                                             WarpPickStep step) {
  const int64_t perLane = row.perLane;
  assert(perLane <= 64 && "a taken mask holds 64 registers");
  Type i64 = b.getI64Type();
  Value laneI32 = indexToI32(b, lane);
  Value taken = arith::ConstantIntOp::create(b, i64, 0);
  for (int64_t v = 0; v < perLane; ++v)
    taken = select(b, row.inBounds[v], taken, ori(b, taken, registerBit(b, v)));

  SmallVector<Value> acc0 = {taken};
  llvm::append_range(acc0, init);
  return forRangeAcc(
      b, indexConst(b, 0), indexConst(b, k), acc0,
      [&](LoopBuilder &b, Value round, ValueRange acc) {
        Value taken = acc[0];
        Value bestKey = i32Const(b, 0);
        Value bestIndex = i32Const(b, std::numeric_limits<int32_t>::max());
        for (int64_t v = 0; v < perLane; ++v) {
          Value free = notI1(b, isTakenBit(b, taken, v));
          // Strictly greater: the lower register (lower expert) wins ties.
          Value better =
              andi(b, free, cmpi(b, CmpIPredicate::ugt, key[v], bestKey));
          bestKey = select(b, better, key[v], bestKey);
          bestIndex =
              select(b, better, indexToI32(b, row.expert[v]), bestIndex);
        }
        auto [winKey, winIndex] = warpArgMax(b, bestKey, bestIndex, row.width);
        // A round with nothing left (key 0) marks nothing: winIndex is then
        // the sentinel, owned by no register.
        Value owner = row.ownerLane(b, winIndex);
        Value slot = row.slotOf(b, winIndex);
        Value mine = andi(b, cmpi(b, CmpIPredicate::eq, owner, laneI32),
                          cmpi(b, CmpIPredicate::ne, winKey, i32Const(b, 0)));
        Value slotBit =
            arith::ShLIOp::create(b, arith::ConstantIntOp::create(b, i64, 1),
                                  arith::ExtUIOp::create(b, i64, slot));
        taken = select(b, mine, ori(b, taken, slotBit), taken);
        // The winner's score, read from its owner lane.
        Value own = row.score[0];
        for (int64_t v = 1; v < perLane; ++v)
          own = select(b, cmpi(b, CmpIPredicate::eq, slot, i32Const(b, v)),
                       row.score[v], own);
        Value owner32 =
            arith::MinUIOp::create(b, owner, i32Const(b, kWarpSize - 1));
        Value winScore = shuffleIdx(b, own, owner32);
        SmallVector<Value> next = {taken};
        llvm::append_range(
            next, step(b, round, winKey, winIndex, winScore, acc.drop_front()));
        return next;
      });
}
