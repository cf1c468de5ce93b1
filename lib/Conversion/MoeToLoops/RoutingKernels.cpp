//===- RoutingKernels.cpp - scoring and Token Choice loop nests -----------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "RoutingKernels.h"
#include "Conversion/Common/RoutingMath.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#include <limits>

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using arith::CmpFPredicate;
using arith::CmpIPredicate;

//===----------------------------------------------------------------------===//
// Scoring
//===----------------------------------------------------------------------===//

/// Where element i of lane `lane` lives, in both `logits` and `out`.
using LaneIndex =
    function_ref<SmallVector<Value>(LoopBuilder &, Value lane, Value i)>;

/// Softmax over each of `count` (1..kSoftmaxLanes) lanes of `n` elements:
///   x_i = sanitize(L_i); m = max x_i
///   e_i = exp(x_i == m ? 0 : x_i - m)   (so +inf logits share the mass)
///   P_i = e_i / sum_i e_i  (SoftmaxSum: the same bits in any order), or 0
///                          if m == -inf
static void emitSoftmaxLanes(LoopBuilder &b, Value logits, Value out, Value n,
                             Value count, LaneIndex at,
                             const ModelOptions &model) {
  Value zero = indexConst(b, 0);
  // maxnum instead of maximumf: x is never NaN (sanitized to -inf) and the
  // sign of a zero max changes neither x - m nor x == m, so the result is
  // the same, and LLVM vectorizes a maxnum reduction. (With nnan/nsz flags
  // it does not: InstCombine folds the NaN sanitizing into the reduction.)
  forRange(b, zero, count, [&](LoopBuilder &b, Value lane) {
    Value max = forRangeAcc(
        b, zero, n, {f32Const(b, kNegInf)},
        [&](LoopBuilder &b, Value i, ValueRange acc) {
          Value x = model.logit(b, loadAsF32(b, logits, at(b, lane, i)));
          return SmallVector<Value>{arith::MaxNumFOp::create(b, acc[0], x)};
        })[0];
    Value valid = cmpf(b, CmpFPredicate::ONE, max, f32Const(b, kNegInf));
    // The exps have no loop-carried value: this loop vectorizes (with
    // usmoe-expand-exp; a libm call would keep it scalar).
    forRange(b, zero, n, [&](LoopBuilder &b, Value i) {
      SmallVector<Value> idx = at(b, lane, i);
      Value x = model.logit(b, loadAsF32(b, logits, idx));
      Value atMax = cmpf(b, CmpFPredicate::OEQ, x, max);
      Value shifted = select(b, atMax, f32Const(b, 0.0), subf(b, x, max));
      Value e =
          select(b, valid, math::ExpOp::create(b, shifted), f32Const(b, 0.0));
      store(b, e, out, idx);
    });
  });
  // Lanes past `count` repeat the last one: their sums are never used.
  Value last = arith::SubIOp::create(b, count, indexConst(b, 1));
  SmallVector<Value> lanes;
  for (int64_t j = 0; j < kSoftmaxLanes; ++j)
    lanes.push_back(arith::MinUIOp::create(b, indexConst(b, j), last));
  SoftmaxSum units = SoftmaxSum::forTerms(b, n);
  SmallVector<Value> sums = forRangeAcc(
      b, zero, n, SmallVector<Value>(kSoftmaxLanes, SoftmaxSum::zero(b)),
      [&](LoopBuilder &b, Value i, ValueRange acc) {
        SmallVector<Value> next;
        for (int64_t j = 0; j < kSoftmaxLanes; ++j)
          next.push_back(
              addi(b, acc[j], units.term(b, load(b, out, at(b, lanes[j], i)))));
        return next;
      });
  SmallVector<Value> totals;
  for (Value laneUnits : sums)
    totals.push_back(units.total(b, laneUnits));
  forRange(b, zero, count, [&](LoopBuilder &b, Value lane) {
    Value sum = totals[0];
    for (int64_t j = 1; j < kSoftmaxLanes; ++j)
      sum = select(b, cmpi(b, CmpIPredicate::eq, lane, indexConst(b, j)),
                   totals[j], sum);
    // A lane with a finite max sums to at least 1 (exp(0) at the max), one
    // whose max is -inf to 0.
    Value valid = cmpf(b, CmpFPredicate::ONE, sum, f32Const(b, 0.0));
    forRange(b, zero, n, [&](LoopBuilder &b, Value i) {
      SmallVector<Value> idx = at(b, lane, i);
      Value p = divf(b, load(b, out, idx), sum);
      store(b, select(b, valid, p, f32Const(b, 0.0)), out, idx);
    });
  });
}

void loops::emitSoftmaxRows(LoopBuilder &b, Value logits, Value out, Value bi,
                            Value t0, Value count, const ModelOptions &model) {
  emitSoftmaxLanes(
      b, logits, out, indexConst(b, numExperts(logits)), count,
      [&](LoopBuilder &b, Value lane, Value e) {
        return SmallVector<Value>{bi, addi(b, t0, lane), e};
      },
      model);
}

void loops::forEachToken(LoopBuilder &b, Value like,
                         function_ref<void(LoopBuilder &, Value, Value)> body) {
  Value zero = indexConst(b, 0);
  forRange(b, zero, dim(b, like, 0), [&](LoopBuilder &b, Value bi) {
    forRange(b, zero, dim(b, like, 1),
             [&](LoopBuilder &b, Value ti) { body(b, bi, ti); });
  });
}

void loops::forEachTokenInParallel(
    LoopBuilder &b, Value like,
    function_ref<void(LoopBuilder &, Value, Value)> body) {
  Value rows = dim(b, like, 0), tokens = dim(b, like, 1);
  Value work = muli(b, muli(b, rows, tokens), indexConst(b, numExperts(like)));
  forParallel2D(b, rows, tokens, work, body);
}

void loops::forEachTokenGroup(LoopBuilder &b, Value like, bool parallel,
                              TokenGroupBody body) {
  Value rows = dim(b, like, 0), tokens = dim(b, like, 1);
  Value width = indexConst(b, kSoftmaxLanes);
  Value groups = arith::CeilDivUIOp::create(b, tokens, width);
  auto group = [&](LoopBuilder &b, Value bi, Value g) {
    Value t0 = muli(b, g, width);
    body(b, bi, t0, arith::MinUIOp::create(b, width, subi(b, tokens, t0)));
  };
  if (!parallel) {
    Value zero = indexConst(b, 0);
    return forRange(b, zero, rows, [&](LoopBuilder &b, Value bi) {
      forRange(b, zero, groups,
               [&](LoopBuilder &b, Value g) { group(b, bi, g); });
    });
  }
  Value work = muli(b, muli(b, rows, tokens), indexConst(b, numExperts(like)));
  forParallel2D(b, rows, groups, work, group);
}

/// for b, t, e: body(b, t, e), rows in parallel (the body writes (b, t, e)
/// only).
static void
forEachPair(LoopBuilder &b, Value like,
            function_ref<void(LoopBuilder &, Value, Value, Value)> body) {
  Value zero = indexConst(b, 0);
  Value experts = indexConst(b, numExperts(like));
  forEachTokenInParallel(b, like, [&](LoopBuilder &b, Value bi, Value ti) {
    forRange(b, zero, experts,
             [&](LoopBuilder &b, Value ei) { body(b, bi, ti, ei); });
  });
}

void loops::emitTokenSoftmax(LoopBuilder &b, Value logits, Value out,
                             const ModelOptions &model) {
  forEachTokenGroup(b, logits, /*parallel=*/true,
                    [&](LoopBuilder &b, Value bi, Value t0, Value count) {
                      emitSoftmaxRows(b, logits, out, bi, t0, count, model);
                    });
}

/// Softmax of every column logits[b, :, e] over the T tokens, kSoftmaxLanes
/// adjacent columns at a time.
static void emitTokenAxisSoftmax(LoopBuilder &b, Value logits, Value out,
                                 const ModelOptions &model) {
  Value tokens = dim(b, logits, 1);
  int64_t experts = numExperts(logits);
  Value width = indexConst(b, kSoftmaxLanes);
  Value numExpertsValue = indexConst(b, experts);
  Value groups = indexConst(b, llvm::divideCeil(experts, kSoftmaxLanes));
  // Column groups are independent: (b, group) in parallel.
  Value sequences = dim(b, logits, 0);
  forParallel2D(b, sequences, groups,
                muli(b, muli(b, sequences, numExpertsValue), tokens),
                [&](LoopBuilder &b, Value bi, Value g) {
                  Value e0 = muli(b, g, width);
                  Value count = arith::MinUIOp::create(
                      b, width, subi(b, numExpertsValue, e0));
                  emitSoftmaxLanes(
                      b, logits, out, tokens, count,
                      [&](LoopBuilder &b, Value lane, Value t) {
                        return SmallVector<Value>{bi, t, addi(b, e0, lane)};
                      },
                      model);
                });
}

void loops::emitExpertScore(LoopBuilder &b, moe::ExpertScoreKind kind,
                            Value logits, Value out,
                            const ModelOptions &model) {
  if (kind == moe::ExpertScoreKind::softmax_tokens)
    return emitTokenAxisSoftmax(b, logits, out, model);
  int64_t experts = numExperts(logits);
  forEachPair(b, logits, [&](LoopBuilder &b, Value bi, Value ti, Value ei) {
    Value x = model.logit(b, loadAsF32(b, logits, {bi, ti, ei}));
    store(b, sigmoidScore(b, x, experts), out, {bi, ti, ei});
  });
}

void loops::emitUnifiedScore(LoopBuilder &b, double alpha,
                             moe::ExpertScoreKind kind, Value logits, Value out,
                             const ModelOptions &model) {
  // U = c1 * P + c2 * F, each product and the sum rounded to f32 (no FMA).
  Value c1 = f32Const(b, 1.0 - alpha), c2 = f32Const(b, alpha);
  int64_t experts = numExperts(logits);
  if (kind == moe::ExpertScoreKind::sigmoid) {
    forEachTokenGroup(
        b, logits, /*parallel=*/true,
        [&](LoopBuilder &b, Value bi, Value t0, Value count) {
          emitSoftmaxRows(b, logits, out, bi, t0, count, model);
          Value zero = indexConst(b, 0);
          forRange(b, t0, addi(b, t0, count), [&](LoopBuilder &b, Value ti) {
            forRange(
                b, zero, indexConst(b, experts), [&](LoopBuilder &b, Value ei) {
                  Value x = model.logit(b, loadAsF32(b, logits, {bi, ti, ei}));
                  Value p = load(b, out, {bi, ti, ei});
                  store(b, unifiedScore(b, p, x, alpha, experts), out,
                        {bi, ti, ei});
                });
          });
        });
    return;
  }
  auto type = cast<MemRefType>(out.getType());
  SmallVector<Value> dynSizes;
  for (int64_t d = 0; d < 2; ++d)
    if (type.isDynamicDim(d))
      dynSizes.push_back(dim(b, out, d));
  // Identity layout: `out` may be a strided view (one packed sequence).
  Value f = alloc(b, MemRefType::get(type.getShape(), type.getElementType()),
                  dynSizes);
  emitTokenAxisSoftmax(b, logits, f, model);
  emitTokenSoftmax(b, logits, out, model);
  forEachPair(b, out, [&](LoopBuilder &b, Value bi, Value ti, Value ei) {
    Value p = load(b, out, {bi, ti, ei});
    Value fv = load(b, f, {bi, ti, ei});
    store(b, addf(b, mulf(b, c1, p), mulf(b, c2, fv)), out, {bi, ti, ei});
  });
}

//===----------------------------------------------------------------------===//
// Selection
//===----------------------------------------------------------------------===//

Value loops::scoreKeyOf(LoopBuilder &b, Value score) {
  return scoreKey(b, score);
}

SmallVector<Value> loops::insertSorted(LoopBuilder &b, ValueRange best,
                                       Value key, Value id) {
  const int64_t k = best.size() / 2;
  SmallVector<Value> greater;
  for (int64_t j = 0; j < k; ++j)
    greater.push_back(cmpi(b, CmpIPredicate::ugt, key, best[j]));
  SmallVector<Value> next(2 * k);
  for (int64_t j = 0; j < k; ++j) {
    // Slot j takes the new element where it is the first smaller slot, the
    // previous slot's pair where the insertion is above it.
    Value key_j = select(b, greater[j], key, best[j]);
    Value id_j = select(b, greater[j], id, best[k + j]);
    if (j > 0) {
      key_j = select(b, greater[j - 1], best[j - 1], key_j);
      id_j = select(b, greater[j - 1], best[k + j - 1], id_j);
    }
    next[j] = key_j;
    next[k + j] = id_j;
  }
  return next;
}

/// One step of the running top-k: `best` holds k keys then k ids, best
/// first; `key` / `id` enters when `include` and it beats the k-th best.
/// Most elements do not (about k * ln(n / k) of n do, for keys in random
/// order), so that test comes first and the insertion network runs only
/// behind it: a branch the CPU predicts well.
SmallVector<Value> loops::insertIntoBestK(LoopBuilder &b, ValueRange best,
                                          Value key, Value id, Value include) {
  const int64_t k = best.size() / 2;
  Value enters =
      andi(b, include, cmpi(b, CmpIPredicate::ugt, key, best[k - 1]));
  auto insertion = scf::IfOp::create(b, ValueRange(best).getTypes(), enters,
                                     /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&insertion.getThenRegion().front());
  scf::YieldOp::create(b, insertSorted(b, best, key, id));
  b.setInsertionPointToStart(&insertion.getElseRegion().front());
  scf::YieldOp::create(b, best);
  return SmallVector<Value>(insertion.getResults());
}

/// The initial running top-k: keys 0 (below every real key: the key of
/// -inf is 0x007FFFFF) and ids -1.
SmallVector<Value> loops::emptyBestK(LoopBuilder &b, int64_t k) {
  SmallVector<Value> init(k, i32Const(b, 0));
  init.append(k, i32Const(b, -1));
  return init;
}

/// Elements whose largest key is compared with the k-th best at once.
constexpr int64_t kBestKChunk = 16;

SmallVector<Value> loops::emitBestKIndices(
    LoopBuilder &b, Value count, int64_t k,
    function_ref<std::pair<Value, Value>(LoopBuilder &, Value)> keyAt) {
  auto insertRange = [&](LoopBuilder &b, Value lb, Value ub, ValueRange acc) {
    return forRangeAcc(
        b, lb, ub, acc, [&](LoopBuilder &b, Value i, ValueRange acc) {
          auto [key, include] = keyAt(b, i);
          return insertIntoBestK(b, acc, key, indexToI32(b, i), include);
        });
  };
  // Chunks first: a chunk's largest key (a reduction LLVM vectorizes) is
  // compared with the k-th best, and only a chunk that beats it runs the
  // insertions; the others cannot change the running top-k (an element
  // enters only with a key above the k-th best, excluded ones count as key
  // 0, below every real key). Most chunks are skipped.
  Value chunk = indexConst(b, kBestKChunk);
  Value whole = muli(b, arith::DivUIOp::create(b, count, chunk), chunk);
  SmallVector<Value> best = forStridedAcc(
      b, indexConst(b, 0), whole, chunk, emptyBestK(b, k),
      [&](LoopBuilder &b, Value first, ValueRange acc) {
        Value largest =
            forRangeAcc(b, first, addi(b, first, chunk), {i32Const(b, 0)},
                        [&](LoopBuilder &b, Value i, ValueRange m) {
                          auto [key, include] = keyAt(b, i);
                          Value counted =
                              select(b, include, key, i32Const(b, 0));
                          return SmallVector<Value>{
                              arith::MaxUIOp::create(b, m[0], counted)};
                        })[0];
        Value beats = cmpi(b, CmpIPredicate::ugt, largest, acc[k - 1]);
        auto visit = scf::IfOp::create(b, acc.getTypes(), beats,
                                       /*withElseRegion=*/true);
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(&visit.getThenRegion().front());
        scf::YieldOp::create(b,
                             insertRange(b, first, addi(b, first, chunk), acc));
        b.setInsertionPointToStart(&visit.getElseRegion().front());
        scf::YieldOp::create(b, acc);
        return SmallVector<Value>(visit.getResults());
      });
  best = insertRange(b, whole, count, best);
  return SmallVector<Value>(best.begin() + k, best.end());
}

TopKListBuffers loops::allocTopKLists(LoopBuilder &b, moe::TopKListOp list,
                                      Value rows) {
  auto idsType = cast<RankedTensorType>(list.getExpertIds().getType());
  auto weightsType = cast<RankedTensorType>(list.getWeights().getType());
  SmallVector<Value> dynRows;
  if (idsType.isDynamicDim(0))
    dynRows.push_back(rows);
  return {
      alloc(b, MemRefType::get(idsType.getShape(), b.getI32Type()), dynRows),
      alloc(b, MemRefType::get(weightsType.getShape(), b.getF32Type()),
            dynRows)};
}

TopKListBuffers loops::allocTopKLists(LoopBuilder &b, int64_t k, Value rows) {
  return {alloc(b, MemRefType::get({ShapedType::kDynamic, k}, b.getI32Type()),
                {rows}),
          alloc(b, MemRefType::get({ShapedType::kDynamic, k}, b.getF32Type()),
                {rows})};
}

/// Row g = (bi, ti) of the top-k lists from the row's picks and final gates:
/// pick i goes to position rank_i, the number of picks ahead of it by (gate
/// key descending, expert ascending), the order moe.topk_list defines (the
/// picks' own order is by selection key, which a bias, renormalization or
/// the gate scale can reorder or tie).
static void emitTopKListRow(LoopBuilder &b, Value gates,
                            const TopKListBuffers &lists, Value bi, Value ti,
                            ArrayRef<Value> picks) {
  Value g = addi(b, muli(b, bi, dim(b, gates, 1)), ti);
  SmallVector<Value> gate, key;
  for (Value id : picks) {
    gate.push_back(load(b, gates, {bi, ti, i32ToIndex(b, id)}));
    key.push_back(scoreKey(b, gate.back()));
  }
  Value zero = indexConst(b, 0), one = indexConst(b, 1);
  for (size_t i = 0; i < picks.size(); ++i) {
    Value rank = zero;
    for (size_t j = 0; j < picks.size(); ++j) {
      if (i == j)
        continue;
      Value ahead = ori(b, cmpi(b, CmpIPredicate::ugt, key[j], key[i]),
                        andi(b, cmpi(b, CmpIPredicate::eq, key[j], key[i]),
                             cmpi(b, CmpIPredicate::slt, picks[j], picks[i])));
      rank = addi(b, rank, select(b, ahead, one, zero));
    }
    store(b, picks[i], lists.ids, {g, rank});
    store(b, gate[i], lists.weights, {g, rank});
  }
}

/// Large k: k scans of the row; the j-th pick is the best element ranked
/// strictly after the previous pick (key descending, index ascending).
static void emitTopKByScans(LoopBuilder &b, Value gates, Value mask, Value bi,
                            Value ti, int64_t k, KeyFn keyOf) {
  Value zero = indexConst(b, 0);
  Value experts = indexConst(b, numExperts(gates));
  Value minusOne = i32Const(b, -1);
  SmallVector<Value> prev = {i32Const(b, 0), minusOne, i1Const(b, true)};
  prev = forRangeAcc(
      b, zero, indexConst(b, k), prev,
      [&](LoopBuilder &b, Value, ValueRange p) {
        Value prevKey = p[0], prevIdx = p[1], first = p[2];
        SmallVector<Value> best = forRangeAcc(
            b, zero, experts, {i32Const(b, 0), minusOne},
            [&](LoopBuilder &b, Value ei, ValueRange acc) {
              Value key = keyOf(b, ei);
              Value idx = indexToI32(b, ei);
              Value after =
                  ori(b, first,
                      ori(b, cmpi(b, CmpIPredicate::ult, key, prevKey),
                          andi(b, cmpi(b, CmpIPredicate::eq, key, prevKey),
                               cmpi(b, CmpIPredicate::sgt, idx, prevIdx))));
              Value better =
                  ori(b, cmpi(b, CmpIPredicate::slt, acc[1], i32Const(b, 0)),
                      cmpi(b, CmpIPredicate::ugt, key, acc[0]));
              Value take = andi(b, after, better);
              return SmallVector<Value>{select(b, take, key, acc[0]),
                                        select(b, take, idx, acc[1])};
            });
        store(b, i1Const(b, true), mask, {bi, ti, i32ToIndex(b, best[1])});
        return SmallVector<Value>{best[0], best[1], i1Const(b, false)};
      });
}

/// mask[bi, ti, :] = false.
static void clearMaskRow(LoopBuilder &b, Value mask, Value bi, Value ti) {
  forRange(b, indexConst(b, 0), indexConst(b, numExperts(mask)),
           [&](LoopBuilder &b, Value ei) {
             store(b, i1Const(b, false), mask, {bi, ti, ei});
           });
}

/// The gates of row (bi, ti) once its mask is set: unselected ones zeroed,
/// selected ones renormalized if asked (by the SoftmaxSum of the k selected
/// gates, each in [0, 1]: the GPU's bits, whatever the order) and scaled;
/// then, with `lists`, the row of the top-k lists from its picks.
static void finishSelectedRow(LoopBuilder &b, Value gates, Value mask, Value bi,
                              Value ti, int64_t k, bool renormalize,
                              const ModelOptions &model,
                              const TopKListBuffers *lists,
                              ArrayRef<Value> picks) {
  Value zero = indexConst(b, 0);
  Value experts = indexConst(b, numExperts(gates));
  auto writeLists = [&] {
    if (lists)
      emitTopKListRow(b, gates, *lists, bi, ti, picks);
  };
  SoftmaxSum units = SoftmaxSum::forTerms(b, indexConst(b, k));
  Value sum = units.total(
      b,
      forRangeAcc(
          b, zero, experts, {SoftmaxSum::zero(b)},
          [&](LoopBuilder &b, Value ei, ValueRange acc) {
            Value on = load(b, mask, {bi, ti, ei});
            Value g =
                select(b, on, load(b, gates, {bi, ti, ei}), f32Const(b, 0.0));
            store(b, renormalize ? g : model.gate(b, g), gates, {bi, ti, ei});
            return SmallVector<Value>{addi(b, acc[0], units.term(b, g))};
          })[0]);
  if (!renormalize)
    return writeLists();
  Value positive = cmpf(b, CmpFPredicate::OGT, sum, f32Const(b, 0.0));
  forRange(b, zero, experts, [&](LoopBuilder &b, Value ei) {
    Value g = load(b, gates, {bi, ti, ei});
    g = select(b, positive, divf(b, g, sum), g);
    store(b, model.gate(b, g), gates, {bi, ti, ei});
  });
  writeLists();
}

void loops::emitKeptGroups(
    LoopBuilder &b, Value kept, Value groupScores, int64_t numExperts,
    int64_t topkGroup, function_ref<Value(LoopBuilder &, Value)> rankScore) {
  const int64_t groups = cast<MemRefType>(kept.getType()).getDimSize(0);
  const int64_t size = numExperts / groups;
  Value zero = indexConst(b, 0), groupCount = indexConst(b, groups);
  Value negInf = f32Const(b, kNegInf);
  // A group's score: its largest plus its second largest ranking score (the
  // largest alone when a group has one expert).
  forRange(b, zero, groupCount, [&](LoopBuilder &b, Value j) {
    Value first = muli(b, j, indexConst(b, size));
    SmallVector<Value> top = forRangeAcc(
        b, first, addi(b, first, indexConst(b, size)), {negInf, negInf},
        [&](LoopBuilder &b, Value ei, ValueRange acc) {
          Value s = rankScore(b, ei);
          Value above = cmpf(b, CmpFPredicate::OGT, s, acc[0]);
          Value second = select(
              b, above, acc[0],
              select(b, cmpf(b, CmpFPredicate::OGT, s, acc[1]), s, acc[1]));
          return SmallVector<Value>{select(b, above, s, acc[0]), second};
        });
    store(b, size == 1 ? top[0] : addf(b, top[0], top[1]), groupScores, {j});
  });
  // Group j is kept when fewer than topkGroup groups rank before it.
  forRange(b, zero, groupCount, [&](LoopBuilder &b, Value j) {
    Value sj = load(b, groupScores, {j});
    Value before = forRangeAcc(
        b, zero, groupCount, {i32Const(b, 0)},
        [&](LoopBuilder &b, Value i, ValueRange acc) {
          Value si = load(b, groupScores, {i});
          Value ahead = ori(b, cmpf(b, CmpFPredicate::OGT, si, sj),
                            andi(b, cmpf(b, CmpFPredicate::OEQ, si, sj),
                                 cmpi(b, CmpIPredicate::ult, i, j)));
          return SmallVector<Value>{addi(
              b, acc[0], arith::ExtUIOp::create(b, b.getI32Type(), ahead))};
        })[0];
    store(b, cmpi(b, CmpIPredicate::slt, before, i32Const(b, topkGroup)), kept,
          {j});
  });
}

void loops::emitSigmoidRow(LoopBuilder &b, Value logits, Value gates, Value bi,
                           Value ti, const ModelOptions &model) {
  forRange(b, indexConst(b, 0), indexConst(b, numExperts(logits)),
           [&](LoopBuilder &b, Value ei) {
             Value x = model.logit(b, loadAsF32(b, logits, {bi, ti, ei}));
             Value one = f32Const(b, 1.0);
             Value e = math::ExpOp::create(b, arith::NegFOp::create(b, x));
             store(b, divf(b, one, addf(b, one, e)), gates, {bi, ti, ei});
           });
}

void loops::emitTopKRowOfPicks(LoopBuilder &b, Value gates, Value mask,
                               Value bi, Value ti, ArrayRef<Value> picks,
                               bool renormalize, const ModelOptions &model,
                               const TopKListBuffers *lists) {
  clearMaskRow(b, mask, bi, ti);
  for (Value idx : picks)
    store(b, i1Const(b, true), mask, {bi, ti, i32ToIndex(b, idx)});
  finishSelectedRow(b, gates, mask, bi, ti, int64_t(picks.size()), renormalize,
                    model, lists, picks);
}

void loops::emitTopKRow(LoopBuilder &b, Value gates, Value mask, Value bi,
                        Value ti, int64_t k, bool renormalize, KeyFn keyOf,
                        const ModelOptions &model,
                        const TopKListBuffers *lists) {
  auto gateKey = [&](LoopBuilder &b, Value ei) {
    return scoreKey(b, load(b, gates, {bi, ti, ei}));
  };
  if (!keyOf)
    keyOf = gateKey;
  assert((!lists || k <= kInsertionTopK) && "lists come from kept picks");
  if (k <= kInsertionTopK) {
    SmallVector<Value> picks = emitBestKIndices(
        b, indexConst(b, numExperts(gates)), k, [&](LoopBuilder &b, Value ei) {
          return std::make_pair(keyOf(b, ei), i1Const(b, true));
        });
    return emitTopKRowOfPicks(b, gates, mask, bi, ti, picks, renormalize, model,
                              lists);
  }
  clearMaskRow(b, mask, bi, ti);
  emitTopKByScans(b, gates, mask, bi, ti, k, keyOf);
  finishSelectedRow(b, gates, mask, bi, ti, k, renormalize, model,
                    /*lists=*/nullptr, /*picks=*/{});
}
