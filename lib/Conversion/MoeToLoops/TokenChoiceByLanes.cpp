//===- TokenChoiceByLanes.cpp - Token Choice, a group's rows side by side -===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The running top-k of one row inserts an expert behind a branch taken
// about k * (1 + ln(E / k)) times in E, at random (for k = 8 and E = 64, a
// third of the experts), and each mispredicted branch costs more than the
// whole insertion. Here the rows of a token group run side by side, one
// per vector lane, each step a fixed k-deep compare-and-select network on
// vector registers: no branch, and the same picks (the same network, the
// same visiting order). It pays from k = 1 on.
//
//===----------------------------------------------------------------------===//

#include "RoutingKernels.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;

/// The picks (i32 expert ids, best first) of the `count` rows of a group,
/// lane j holding row t0 + j; lanes past `count` repeat the last row.
static SmallVector<Value> emitGroupPicks(LoopBuilder &b, Value bi, Value t0,
                                         Value count, int64_t experts,
                                         int64_t k, RowKeyFn keyOf) {
  auto laneType = VectorType::get({kSoftmaxLanes}, b.getI32Type());
  Value last = subi(b, count, indexConst(b, 1));
  SmallVector<Value> rows;
  for (int64_t j = 0; j < kSoftmaxLanes; ++j)
    rows.push_back(
        addi(b, t0, arith::MinUIOp::create(b, indexConst(b, j), last)));
  // Keys 0 are below every real key (-inf's is 0x007FFFFF), ids -1.
  SmallVector<Value> init(
      k, vector::BroadcastOp::create(b, laneType, i32Const(b, 0)));
  init.append(k, vector::BroadcastOp::create(b, laneType, i32Const(b, -1)));
  SmallVector<Value> best = forRangeAcc(
      b, indexConst(b, 0), indexConst(b, experts), init,
      [&](LoopBuilder &b, Value ei, ValueRange acc) {
        SmallVector<Value> keys;
        for (Value ti : rows)
          keys.push_back(keyOf(b, ti, ei));
        Value key = vector::FromElementsOp::create(b, laneType, keys);
        Value id = vector::BroadcastOp::create(b, laneType, indexToI32(b, ei));
        return insertSorted(b, acc, key, id);
      });
  best.erase(best.begin(), best.begin() + k);
  return best;
}

void loops::emitTopKRows(LoopBuilder &b, Value gates, Value mask, Value bi,
                         Value t0, Value count, int64_t k, bool renormalize,
                         RowKeyFn keyOf, const ModelOptions &model,
                         const TopKListBuffers *lists) {
  auto gateKey = [&](LoopBuilder &b, Value ti, Value ei) {
    return scoreKeyOf(b, load(b, gates, {bi, ti, ei}));
  };
  if (!keyOf)
    keyOf = gateKey;
  if (k > kInsertionTopK) {
    forRange(b, t0, addi(b, t0, count), [&](LoopBuilder &b, Value ti) {
      auto rowKey = [&](LoopBuilder &b, Value ei) { return keyOf(b, ti, ei); };
      emitTopKRow(b, gates, mask, bi, ti, k, renormalize, rowKey, model,
                  lists);
    });
    return;
  }
  SmallVector<Value> lanes =
      emitGroupPicks(b, bi, t0, count, numExperts(gates), k, keyOf);
  forRange(b, indexConst(b, 0), count, [&](LoopBuilder &b, Value lane) {
    SmallVector<Value> picks;
    for (Value slot : lanes)
      picks.push_back(vector::ExtractOp::create(b, slot, OpFoldResult(lane)));
    emitTopKRowOfPicks(b, gates, mask, bi, addi(b, t0, lane), picks,
                       renormalize, model, lists);
  });
}
