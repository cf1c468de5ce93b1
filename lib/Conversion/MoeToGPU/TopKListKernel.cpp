//===- TopKListKernel.cpp - warp-per-token moe.topk_list kernel -----------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// One warp lists one token's selected experts: lane l holds the gates of
// experts l, l + 32, ... with key = scoreKey(gate) where the mask is set and
// 0 elsewhere, so k warp arg-max rounds (emitWarpTopK) produce the selected
// experts by descending gate, ties to the lower expert, exactly the CPU
// path's order; a round that finds only key 0 writes the padding (-1, 0).
//
//===----------------------------------------------------------------------===//

#include "Conversion/Common/RoutingMath.h"
#include "Kernels.h"
#include "WarpReduce.h"
#include "WarpRow.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using namespace mlir::usmoe::gpu_kernels;
using arith::CmpIPredicate;

gpu::GPUFuncOp gpu_kernels::buildTopKListKernel(
    OpBuilder &builder, Location loc, StringRef name, MemRefType gatesType,
    MemRefType maskType, MemRefType idsType, MemRefType weightsType) {
  return buildKernel(
      builder, loc, name, {gatesType, maskType, idsType, weightsType},
      int32_t(kTokenChoiceWarpsPerBlock * kWarpSize),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value>) {
        Value gates = args[0], mask = args[1], ids = args[2], weights = args[3];
        const int64_t experts = gatesType.getDimSize(2);
        const int64_t k = idsType.getDimSize(1);

        forWarpRow(
            b, gates, kTokenChoiceWarpsPerBlock,
            [&](LoopBuilder &b, Value bi, Value ti, const RowLanes &lanes,
                Value) {
              Value lane = lanes.lane;
              WarpRow row;
              row.perLane = (experts + kWarpSize - 1) / kWarpSize;
              SmallVector<Value> key;
              Value last = indexConst(b, experts - 1);
              for (int64_t v = 0; v < row.perLane; ++v) {
                Value e = addi(b, lane, indexConst(b, v * kWarpSize));
                Value in =
                    cmpi(b, CmpIPredicate::ult, e, indexConst(b, experts));
                // Clamped loads, then masked: no divergent branch around them.
                Value at = arith::MinUIOp::create(b, e, last);
                Value gate = load(b, gates, {bi, ti, at});
                Value on = andi(b, in, load(b, mask, {bi, ti, at}));
                row.expert.push_back(e);
                row.inBounds.push_back(in);
                row.score.push_back(gate);
                key.push_back(select(b, on, scoreKey(b, gate), i32Const(b, 0)));
              }
              Value g = addi(b, muli(b, bi, dim(b, gates, 1)), ti);
              Value leader = cmpi(b, CmpIPredicate::eq, lane, indexConst(b, 0));
              emitWarpTopK(
                  b, row, key, lane, k, {},
                  [&](LoopBuilder &b, Value round, Value winKey,
                      Value winExpert, Value winGate, ValueRange) {
                    Value found =
                        cmpi(b, CmpIPredicate::ne, winKey, i32Const(b, 0));
                    ifThen(b, leader, [&](LoopBuilder &b) {
                      store(b, select(b, found, winExpert, i32Const(b, -1)),
                            ids, {g, round});
                      store(b, select(b, found, winGate, f32Const(b, 0.0)),
                            weights, {g, round});
                    });
                    return SmallVector<Value>{};
                  });
            });
      });
}
