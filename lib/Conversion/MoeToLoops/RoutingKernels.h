//===- RoutingKernels.h - scoring and selection loop nests ------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The routing algorithms on [B, T, E] memrefs, shared by the patterns of the
// unfused ops and of the fused moe.route. Every float operation here is part
// of the normative definition (docs/Dialect.md, "Semantics"): the
// NumPy reference performs the same f32 operations in the same order.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_MOETOLOOPS_ROUTINGKERNELS_H
#define USMOE_LIB_CONVERSION_MOETOLOOPS_ROUTINGKERNELS_H

#include "Conversion/Common/LoopBuilder.h"
#include "Conversion/Common/RoutingMath.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "usmoe/Dialect/Moe/IR/MoeOps.h"
#include <functional>

namespace mlir::usmoe::loops {

/// for b in [0, B), t in [0, T) of a [B, T, E] memref: body(b, t)
void forEachToken(LoopBuilder &b, Value like,
                  function_ref<void(LoopBuilder &, Value, Value)> body);

/// forEachToken for bodies that touch only their own row (b, t): an
/// scf.parallel (OpenMP threads with usmoe-to-cpu{openmp}).
void forEachTokenInParallel(
    LoopBuilder &b, Value like,
    function_ref<void(LoopBuilder &, Value, Value)> body);

/// Lanes (rows, or columns) whose softmaxes are computed side by side: their
/// sums, each a chain of f32 adds in index order that LLVM must not
/// reorder, run as this many independent chains, which hides the latency of
/// an add (one chain runs at a quarter of the adders' throughput). Also the
/// rows of a forEachTokenGroup group, so Token Choice selects a group's
/// rows side by side too (emitTopKRows).
inline constexpr int64_t kSoftmaxLanes = 8;
/// Token Choice groups of at most this many rows select row by row (a scan
/// of each row's contiguous keys) rather than in lanes (a gather per
/// expert for few live lanes).
inline constexpr int64_t kFewRowsByScan = 1;

/// body(b, t0, count) for the tokens t0 .. t0 + count - 1 of sequence b.
using TokenGroupBody = function_ref<void(LoopBuilder &, Value, Value, Value)>;

/// The tokens of a [B, T, E] memref in groups of consecutive tokens of one
/// sequence, the groups sized for emitSoftmaxRows (the last of a sequence
/// may be smaller): an scf.parallel over (b, group) when `parallel` (the
/// body touches only its own rows), else sequential loops.
void forEachTokenGroup(LoopBuilder &b, Value like, bool parallel,
                       TokenGroupBody body);

//===----------------------------------------------------------------------===//
// Scoring: logits memref (f32/f16/bf16) -> f32 score memref, both [B, T, E]
//
// Every logit is read through `model.logit` (soft-capping, NaN as -inf) and
// every selected gate written through `model.gate` (the routed scaling
// factor); the unfused ops pass no options.
//===----------------------------------------------------------------------===//

/// out[b, t, :] = softmax over experts of logits[b, t, :] for the `count`
/// tokens t0 .. t0 + count - 1 (count <= the group size of
/// forEachTokenGroup), computed side by side.
void emitSoftmaxRows(LoopBuilder &b, Value logits, Value out, Value bi,
                     Value t0, Value count, const ModelOptions &model = {});
/// The row softmax P of every token.
void emitTokenSoftmax(LoopBuilder &b, Value logits, Value out,
                      const ModelOptions &model = {});
/// The expert score F of every (token, expert).
void emitExpertScore(LoopBuilder &b, moe::ExpertScoreKind kind, Value logits,
                     Value out, const ModelOptions &model = {});
/// U = (1 - alpha) * P + alpha * F for the whole batch.
void emitUnifiedScore(LoopBuilder &b, double alpha, moe::ExpertScoreKind kind,
                      Value logits, Value out, const ModelOptions &model = {});

//===----------------------------------------------------------------------===//
// Selection: in place on a gate buffer that holds the scores
//===----------------------------------------------------------------------===//

/// The selection key of expert `ei` of the current row.
using KeyFn = function_ref<Value(LoopBuilder &, Value)>;

/// Token Choice on row (bi, ti): sets mask[bi, ti, :], zeroes unselected
/// gates and renormalizes the selected ones if asked. Experts are ranked by
/// `keyOf` when given (sigmoid_bias: the biased score), else by their gate.
/// The [B*T, k] expert ids and weights of a moe.topk_list.
struct TopKListBuffers {
  Value ids, weights;
};

/// Allocates the buffers of `list`'s results for `rows` = B * T tokens.
TopKListBuffers allocTopKLists(LoopBuilder &b, moe::TopKListOp list,
                               Value rows);
/// Allocates [rows, k] lists (the picks a plan is built from).
TopKListBuffers allocTopKLists(LoopBuilder &b, int64_t k, Value rows);

/// With `lists` (k <= kInsertionTopK), row (bi, ti) of a topk_list of this
/// selection (TopKListOp::getPicksOfTokenRoute) is written too, from the k
/// picks: no second scan of the row.
void emitTopKRow(LoopBuilder &b, Value gates, Value mask, Value bi, Value ti,
                 int64_t k, bool renormalize, KeyFn keyOf = nullptr,
                 const ModelOptions &model = {},
                 const TopKListBuffers *lists = nullptr);

/// The score Token Choice ranks expert `ei` by: its gate `score`, plus
/// bias[ei] when a `bias` (memref<E x f32>) is given (sigmoid_bias). A
/// vector `score` holds expert ei's scores of several rows.
inline Value rankingScore(LoopBuilder &b, Value score, Value bias, Value ei) {
  if (!bias)
    return score;
  Value add = load(b, bias, {ei});
  if (auto rows = dyn_cast<VectorType>(score.getType()))
    add = vector::BroadcastOp::create(b, rows, add);
  return addf(b, score, add);
}

/// emitTopKRow from a row's picks (the k selected expert ids, i32, best
/// first): sets the mask, then the gates and the lists' row.
void emitTopKRowOfPicks(LoopBuilder &b, Value gates, Value mask, Value bi,
                        Value ti, ArrayRef<Value> picks, bool renormalize,
                        const ModelOptions &model,
                        const TopKListBuffers *lists);

/// Token Choice (emitTopKRow) on the rows t0 .. t0 + count - 1 of sequence
/// bi, a forEachTokenGroup group. For k <= kInsertionTopK the group's rows
/// are selected side by side, one per vector lane (TokenChoiceByLanes.cpp):
/// the same picks, 1.5-2.7x faster than row by row for k = 2 to 8
/// (measured: docs/benchmarks.md). Experts are ranked by their gate, plus
/// `bias` (memref<E x f32>) when given (sigmoid_bias).
void emitTopKRows(LoopBuilder &b, Value gates, Value mask, Value bi, Value t0,
                  Value count, int64_t k, bool renormalize,
                  Value bias = nullptr, const ModelOptions &model = {},
                  const TopKListBuffers *lists = nullptr);

/// DeepSeek-V3 group-limited selection on one row: kept[j] (memref<G x
/// i1>) says whether group j (experts j*E/G .. (j+1)*E/G) is among the
/// `topkGroup` groups whose two best `rankScore`s sum highest (ties: lower
/// group). `groupScores` (memref<G x f32>) is scratch.
void emitKeptGroups(LoopBuilder &b, Value kept, Value groupScores,
                    int64_t numExperts, int64_t topkGroup,
                    function_ref<Value(LoopBuilder &, Value)> rankScore);

/// gates[bi, ti, :] = sigmoid(logits[bi, ti, :]) (NaN as -inf), the gate of
/// the sigmoid_bias Token Choice variant.
void emitSigmoidRow(LoopBuilder &b, Value logits, Value gates, Value bi,
                    Value ti, const ModelOptions &model = {});
/// Up to this k, the best k are kept sorted in registers in one pass.
inline constexpr int64_t kInsertionTopK = 16;

/// Whether the lowering of `list`'s Token Choice route writes the list
/// (emitTopKRow's `lists`) rather than a scan of the routed rows.
inline bool writtenByRoute(moe::TopKListOp list) {
  return list.getPicksOfTokenRoute() && int64_t(list.getK()) <= kInsertionTopK;
}
/// Whether the lowering of `plan`'s route builds the plan, from each row's
/// k picks (a Token Choice route keeping its picks) rather than from the
/// mask.
inline bool writtenByRoute(moe::PlanOp plan) {
  moe::RouteOp route = plan.getRoute();
  return route && route.getMode() == routing::Mode::Token &&
         int64_t(*route.getRouterOptions().k) <= kInsertionTopK;
}
/// Sets whose budget is at most this many elements (Expert Choice columns
/// of short sequences with many experts: often C = 1) are selected by a
/// running top-k of this size and a threshold pass, whatever their size.
inline constexpr int64_t kInsertionSelect = 8;
/// Sets of at most this many elements (Expert Choice columns of short
/// sequences, tiny Unified sequences) are selected by ranks, not by the
/// 4-pass radix select (measured: docs/benchmarks.md).
inline constexpr int64_t kSmallSetSelect = 32;

/// E of a [B, T, E] memref (static in every routing op).
inline int64_t numExperts(Value memref) {
  return cast<MemRefType>(memref.getType()).getDimSize(2);
}

/// Whether the element (key, position) ranks at or before the threshold
/// element (thresholdKey, thresholdPosition) of its set: a greater key, or
/// the same key no later in visiting order (the selections' tie rule).
inline Value rankedAtOrBefore(LoopBuilder &b, Value key, Value position,
                              Value thresholdKey, Value thresholdPosition) {
  using arith::CmpIPredicate;
  return ori(b, cmpi(b, CmpIPredicate::ugt, key, thresholdKey),
             andi(b, cmpi(b, CmpIPredicate::eq, key, thresholdKey),
                  cmpi(b, CmpIPredicate::sle, position, thresholdPosition)));
}

/// Writes one element's selection in place: mask = on, and its gate the
/// scaled score where on, else 0.
inline void storeSelection(LoopBuilder &b, Value gates, Value mask,
                           ValueRange idx, Value score, Value on,
                           const ModelOptions &model) {
  store(b, on, mask, idx);
  store(b, select(b, on, model.gate(b, score), f32Const(b, 0.0)), gates, idx);
}

/// (key, id) inserted into a running top-k held in 2k values (k keys then k
/// ids, best first: key descending, an equal key after the earlier ones),
/// branch-free: the state is unchanged when the key does not beat the k-th
/// best. Scalars, or vectors of independent running top-k's.
SmallVector<Value> insertSorted(LoopBuilder &b, ValueRange best, Value key,
                                Value id);
/// One step of a running top-k held in 2k values (k keys then k ids, best
/// first): (key, id) enters when `include` and it beats the k-th best.
SmallVector<Value> insertIntoBestK(LoopBuilder &b, ValueRange best, Value key,
                                   Value id, Value include);
/// The empty running top-k of emitBestKIndices / insertIntoBestK.
SmallVector<Value> emptyBestK(LoopBuilder &b, int64_t k);

/// The indices of the k best of `count` elements, best first (key
/// descending, lower index first among equals), -1 where fewer than k are
/// included. `keyAt(i)` gives element i's unsigned score key and whether it
/// takes part. One pass, 2k loop-carried registers: use for small k.
SmallVector<Value> emitBestKIndices(
    LoopBuilder &b, Value count, int64_t k,
    function_ref<std::pair<Value, Value>(LoopBuilder &, Value)> keyAt);

/// Order-preserving unsigned key of an f32 score (RoutingMath.h).
Value scoreKeyOf(LoopBuilder &b, Value score);

/// Expert Choice for every (sequence, expert): `capacity` (index) tokens.
void emitExpertChoice(LoopBuilder &b, Value gates, Value mask, Value capacity,
                      const ModelOptions &model = {});
/// Expert Choice capacities up to which emitExpertChoiceByRows runs: its
/// cost grows with the capacity (every score passes through that many
/// slots), the radix select's with T (measured: docs/benchmarks.md).
inline constexpr int64_t kRowWiseCapacity = 32;
/// Expert Choice for capacities of at most kRowWiseCapacity, token by
/// token with a block of experts side by side (ExpertChoiceByRows.cpp):
/// the same selection as the column-wise selects.
void emitExpertChoiceByRows(LoopBuilder &b, Value gates, Value mask,
                            Value capacity, const ModelOptions &model = {});
/// Unified: the best `budget` (index) pairs of every sequence.
void emitGlobalTopN(LoopBuilder &b, Value gates, Value mask, Value budget,
                    const ModelOptions &model = {});

//===----------------------------------------------------------------------===//
// Plan
//===----------------------------------------------------------------------===//

/// body(e, weight) for a selected expert e (an index) of the current row.
using SelectedBody = function_ref<void(LoopBuilder &, Value, Value)>;

/// Where a plan reads its selection from, row by row (g = b * T + t).
struct PlanSource {
  /// counts[tile, e] += 1 for each selected expert e of row g.
  std::function<void(LoopBuilder &, Value counts, Value tile, Value g)>
      countRow;
  /// Visits each selected expert of row g once, in any order.
  std::function<void(LoopBuilder &, Value g, SelectedBody)> forEachSelected;
};

/// The expert-major CSR of a plan.
struct PlanBuffers {
  Value offsets, ids, weights;
};

/// The plan of `rows` = B * T rows of E = `experts`, its passes parallel
/// over tiles of rows when `work` is large enough.
PlanBuffers emitPlan(LoopBuilder &b, Value rows, int64_t experts, Value work,
                     const PlanSource &source);

} // namespace mlir::usmoe::loops

#endif // USMOE_LIB_CONVERSION_MOETOLOOPS_ROUTINGKERNELS_H
