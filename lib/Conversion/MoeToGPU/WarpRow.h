//===- WarpRow.h - one token's expert row in a warp's registers -*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_MOETOGPU_WARPROW_H
#define USMOE_LIB_CONVERSION_MOETOGPU_WARPROW_H

#include "Conversion/Common/LoopBuilder.h"
#include "Conversion/Common/RoutingMath.h"

namespace mlir::usmoe::gpu_kernels {

using loops::LoopBuilder;

/// Lane l holds experts l, l + 32, ... of row (bi, ti): V = ceil(E / 32)
/// registers, each with its expert index, an in-bounds flag, the sanitized
/// logit (-inf past E) and the row-softmax score P (0 past E).
///
/// When E is a multiple of 4 the row is read with 4-wide vector loads: lane
/// l holds experts 4l .. 4l+3 of each 128-expert group (register v is
/// element v % 4 of group v / 4); otherwise one expert per register, lane l
/// holding l, l + 32, ... `ownerLane` / `slotOf` invert the mapping.
struct WarpRow {
  int64_t perLane = 0;
  int64_t vectorWidth = 1;
  /// Lanes that hold the row: the warp, or a segment of it when a warp
  /// routes several rows of few experts (see RowLanes).
  int64_t width = 32;
  /// The segment's first lane (i32); null for a whole warp.
  Value segmentBase;
  SmallVector<Value> expert, inBounds, logit, score;
  /// The row's softmax statistics (emitWarpRowSoftmax): its max and sum,
  /// uniform across the row's lanes.
  Value max, sum;

  /// The lane that holds expert `e` (i32).
  Value ownerLane(LoopBuilder &b, Value e) const;
  /// The register index that holds expert `e` in its owner lane (i32).
  Value slotOf(LoopBuilder &b, Value e) const;
  /// Whether register v is within the E experts in every lane (no guard
  /// needed around its stores).
  bool alwaysInBounds(int64_t v, int64_t experts) const {
    int64_t group = vectorWidth == 1 ? v : v / vectorWidth;
    return (group + 1) * width * vectorWidth <= experts;
  }
};

/// Which lanes of a warp hold a row: all 32, or, with `width` < 32, the
/// aligned segment of `width` lanes that `lane` is in (several rows per
/// warp for few experts). `lane` is the lane within the segment (index),
/// `warpLane` the lane in the warp, `base` the segment's first lane (i32).
struct RowLanes {
  int64_t width = 32;
  Value lane, warpLane, base;
};

/// Loads the row: expert indices, in-bounds flags and sanitized logits
/// (`score` left empty). A segment of fewer than 32 lanes holds one expert
/// per lane (no vector loads).
WarpRow emitWarpRowLoad(LoopBuilder &b, Value logits, Value bi, Value ti,
                        const RowLanes &lanes,
                        const loops::ModelOptions &model);

/// Loads the row and computes P = softmax over experts with warp shuffles:
/// max by butterfly, e = exp(x == m ? 0 : x - m), sum by butterfly
/// broadcast from the segment's first lane, P = e / sum (0 for a row of
/// -inf).
WarpRow emitWarpRowSoftmax(LoopBuilder &b, Value logits, Value bi, Value ti,
                           const RowLanes &lanes,
                           const loops::ModelOptions &model);

/// The softmax score of a logit x (after the model's logit transform) in a
/// row of maximum `max` and sum `sum`: exp(x == max ? 0 : x - max) / sum,
/// 0 when the row has no softmax (max is -inf or NaN) or x is not `live`.
/// The row kernels and the select that recomputes scores from the logits
/// (recomputeRowScore) both call it, so both give the same bits.
Value softmaxNumerator(LoopBuilder &b, Value x, Value max, Value live);
Value softmaxHasRow(LoopBuilder &b, Value max);
Value softmaxScore(LoopBuilder &b, Value numerator, Value sum, Value valid);

/// The (bi, ti) row and lanes a thread works on when a block of
/// `warpsPerBlock` warps routes 32 / `width` rows per warp: calls
/// `body(bi, ti, lanes, valid)`. With whole warps (width 32) only warps
/// whose row exists run it (valid is true); with segments every lane runs
/// it, past the last row on the last row with `valid` false, so that the
/// warp's shuffles see all 32 lanes: the body must not store then.
void forWarpRow(
    LoopBuilder &b, Value logits, int64_t warpsPerBlock,
    function_ref<void(LoopBuilder &, Value, Value, const RowLanes &, Value)>
        body,
    int64_t width = 32);

/// What the caller does with each pick of `emitWarpTopK`: called in every
/// lane with the round (index), the winner's key and expert (i32, uniform
/// across the warp), its `row.score` and the accumulators; returns the new
/// accumulators.
using WarpPickStep = function_ref<SmallVector<Value>(
    LoopBuilder &, Value round, Value winKey, Value winExpert, Value winScore,
    ValueRange acc)>;

/// `k` rounds of warp arg-max over `key` (one unsigned i32 per register of
/// `row`, 0 = never picked): each round takes the largest untaken key, ties
/// to the lower expert, so picks come out in ranking order. Registers past
/// E start out taken. Returns the final taken mask (i64, bit v = register
/// v of this lane) followed by the accumulators. `lane`: the lane in the
/// warp (of the row's segment, if any).
SmallVector<Value> emitWarpTopK(LoopBuilder &b, const WarpRow &row,
                                ArrayRef<Value> key, Value lane, int64_t k,
                                ValueRange init, WarpPickStep step);

/// Whether bit `v` of a taken mask from `emitWarpTopK` is set (i1).
Value isTakenBit(LoopBuilder &b, Value taken, int64_t v);

} // namespace mlir::usmoe::gpu_kernels

#endif // USMOE_LIB_CONVERSION_MOETOGPU_WARPROW_H
