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

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;

/// The picks (i32 expert ids, best first) of the `count` rows of a group,
/// lane j holding row t0 + j; lanes past `count` repeat the last row. An
/// expert's scores of the group's rows are one gather (stride E), their
/// keys computed as a vector.
static SmallVector<Value> emitGroupPicks(LoopBuilder &b, Value gates,
                                         Value bias, Value bi, Value t0,
                                         Value count, int64_t k) {
  int64_t experts = numExperts(gates);
  auto laneType = [&](Type element) {
    return VectorType::get({kSoftmaxLanes}, element);
  };
  Value numExpertsValue = indexConst(b, experts);
  Value last = subi(b, count, indexConst(b, 1));
  SmallVector<Value> offsets;
  for (int64_t j = 0; j < kSoftmaxLanes; ++j)
    offsets.push_back(muli(b, arith::MinUIOp::create(b, indexConst(b, j), last),
                           numExpertsValue));
  Value rowOffsets =
      vector::FromElementsOp::create(b, laneType(b.getIndexType()), offsets);
  // The gates as one dimension (a fresh buffer of the route: identity
  // layout), so each lane's offset stays in bounds.
  assert(cast<MemRefType>(gates.getType()).getLayout().isIdentity() &&
         "the gates are the selection's own buffer");
  Value flat = memref::CollapseShapeOp::create(
      b, gates, ArrayRef<ReassociationIndices>{{0, 1, 2}});
  Value groupStart =
      muli(b, addi(b, muli(b, bi, dim(b, gates, 1)), t0), numExpertsValue);
  Value all = constantLike(b, b.getBoolAttr(true), laneType(b.getI1Type()));
  Value none =
      constantLike(b, b.getF32FloatAttr(0.0), laneType(b.getF32Type()));
  // Keys 0 are below every real key (-inf's is 0x007FFFFF), ids -1.
  auto keyType = laneType(b.getI32Type());
  SmallVector<Value> init(k, constantLike(b, b.getI32IntegerAttr(0), keyType));
  init.append(k, constantLike(b, b.getI32IntegerAttr(-1), keyType));
  SmallVector<Value> best = forRangeAcc(
      b, indexConst(b, 0), numExpertsValue, init,
      [&](LoopBuilder &b, Value ei, ValueRange acc) {
        Value scores = vector::GatherOp::create(
            b, laneType(b.getF32Type()), flat,
            ValueRange{addi(b, groupStart, ei)}, rowOffsets, all, none);
        Value id = vector::BroadcastOp::create(b, keyType, indexToI32(b, ei));
        return insertSorted(
            b, acc, scoreKeyOf(b, rankingScore(b, scores, bias, ei)), id);
      });
  best.erase(best.begin(), best.begin() + k);
  return best;
}

void loops::emitTopKRows(LoopBuilder &b, Value gates, Value mask, Value bi,
                         Value t0, Value count, int64_t k, bool renormalize,
                         Value bias, const ModelOptions &model,
                         const TopKListBuffers *lists) {
  auto byRows = [&](LoopBuilder &b) {
    forRange(b, t0, addi(b, t0, count), [&](LoopBuilder &b, Value ti) {
      auto keyOf = [&](LoopBuilder &b, Value ei) {
        Value score = load(b, gates, {bi, ti, ei});
        return scoreKeyOf(b, rankingScore(b, score, bias, ei));
      };
      emitTopKRow(b, gates, mask, bi, ti, k, renormalize, keyOf, model, lists);
    });
  };
  auto byLanes = [&](LoopBuilder &b) {
    SmallVector<Value> lanes = emitGroupPicks(b, gates, bias, bi, t0, count, k);
    forRange(b, indexConst(b, 0), count, [&](LoopBuilder &b, Value lane) {
      SmallVector<Value> picks;
      for (Value slot : lanes)
        picks.push_back(vector::ExtractOp::create(b, slot, OpFoldResult(lane)));
      emitTopKRowOfPicks(b, gates, mask, bi, addi(b, t0, lane), picks,
                         renormalize, model, lists);
    });
  };
  if (k > kInsertionTopK)
    return byRows(b);
  // A group of few rows (a decode step) fills few lanes yet pays a gather
  // per expert: each row scans its own contiguous keys instead.
  ifThenElse(
      b,
      cmpi(b, arith::CmpIPredicate::ule, count, indexConst(b, kFewRowsByScan)),
      byRows, byLanes);
}
