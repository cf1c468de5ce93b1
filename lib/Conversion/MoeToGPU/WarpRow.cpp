//===- WarpRow.cpp - one token's expert row in a warp's registers ---------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "WarpRow.h"
#include "Conversion/Common/RoutingMath.h"
#include "WarpReduce.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using namespace mlir::usmoe::gpu_kernels;
using arith::CmpFPredicate;
using arith::CmpIPredicate;

void gpu_kernels::forWarpRow(
    LoopBuilder &b, Value logits, int64_t warpsPerBlock,
    function_ref<void(LoopBuilder &, Value, Value, Value)> body) {
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value bid = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value warpSize = indexConst(b, kWarpSize);
  Value lane = arith::RemUIOp::create(b, tid, warpSize);
  Value warp = arith::DivUIOp::create(b, tid, warpSize);
  Value row = addi(b, muli(b, bid, indexConst(b, warpsPerBlock)), warp);
  Value tokens = dim(b, logits, 1);
  Value rows = muli(b, dim(b, logits, 0), tokens);
  ifThen(b, cmpi(b, CmpIPredicate::ult, row, rows), [&](LoopBuilder &b) {
    body(b, arith::DivUIOp::create(b, row, tokens),
         arith::RemUIOp::create(b, row, tokens), lane);
  });
}

WarpRow gpu_kernels::emitWarpRowSoftmax(LoopBuilder &b, Value logits, Value bi,
                                        Value ti, Value lane) {
  const int64_t experts = cast<MemRefType>(logits.getType()).getDimSize(2);
  WarpRow row;
  row.perLane = (experts + kWarpSize - 1) / kWarpSize;
  Value last = indexConst(b, experts - 1);
  for (int64_t v = 0; v < row.perLane; ++v) {
    Value e = addi(b, lane, indexConst(b, v * kWarpSize));
    Value in = cmpi(b, CmpIPredicate::ult, e, indexConst(b, experts));
    // Clamped load, then masked: no divergent branch around the load.
    Value at = arith::MinUIOp::create(b, e, last);
    Value x = sanitize(b, loadAsF32(b, logits, {bi, ti, at}));
    row.expert.push_back(e);
    row.inBounds.push_back(in);
    row.logit.push_back(select(b, in, x, f32Const(b, kNegInf)));
  }

  Value localMax = row.logit[0];
  for (int64_t v = 1; v < row.perLane; ++v)
    localMax = arith::MaximumFOp::create(b, localMax, row.logit[v]);
  Value max = warpMax(b, localMax);
  Value valid = cmpf(b, CmpFPredicate::ONE, max, f32Const(b, kNegInf));

  SmallVector<Value> e(row.perLane);
  Value localSum = f32Const(b, 0.0);
  for (int64_t v = 0; v < row.perLane; ++v) {
    Value atMax = cmpf(b, CmpFPredicate::OEQ, row.logit[v], max);
    Value shifted =
        select(b, atMax, f32Const(b, 0.0), subf(b, row.logit[v], max));
    Value live = andi(b, valid, row.inBounds[v]);
    e[v] = select(b, live, math::ExpOp::create(b, shifted), f32Const(b, 0.0));
    localSum = addf(b, localSum, e[v]);
  }
  Value sum = warpSum(b, localSum);
  for (int64_t v = 0; v < row.perLane; ++v)
    row.score.push_back(select(b, valid, divf(b, e[v], sum), f32Const(b, 0.0)));
  return row;
}
