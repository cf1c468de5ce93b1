//===- RoutingKernels.cpp - scoring and selection loop nests --------------===//
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

static int64_t numExperts(Value memref) {
  return cast<MemRefType>(memref.getType()).getDimSize(2);
}

//===----------------------------------------------------------------------===//
// Scoring
//===----------------------------------------------------------------------===//

/// Lanes (rows, or columns) whose softmaxes are computed side by side: their
/// sums, each a chain of f32 adds in index order that LLVM must not
/// reorder, run as this many independent chains, which hides the latency of
/// an add (one chain runs at a quarter of the adders' throughput).
constexpr int64_t kSoftmaxLanes = 8;

/// Where element i of lane `lane` lives, in both `logits` and `out`.
using LaneIndex =
    function_ref<SmallVector<Value>(LoopBuilder &, Value lane, Value i)>;

/// Softmax over each of `count` (1..kSoftmaxLanes) lanes of `n` elements:
///   x_i = sanitize(L_i); m = max x_i
///   e_i = exp(x_i == m ? 0 : x_i - m)   (so +inf logits share the mass)
///   P_i = e_i / sum_i e_i                (ascending i), or 0 if m == -inf
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
  SmallVector<Value> sums = forRangeAcc(
      b, zero, n, SmallVector<Value>(kSoftmaxLanes, f32Const(b, 0.0)),
      [&](LoopBuilder &b, Value i, ValueRange acc) {
        SmallVector<Value> next;
        for (int64_t j = 0; j < kSoftmaxLanes; ++j)
          next.push_back(addf(b, acc[j], load(b, out, at(b, lanes[j], i))));
        return next;
      });
  forRange(b, zero, count, [&](LoopBuilder &b, Value lane) {
    Value sum = sums[0];
    for (int64_t j = 1; j < kSoftmaxLanes; ++j)
      sum = select(b, cmpi(b, CmpIPredicate::eq, lane, indexConst(b, j)),
                   sums[j], sum);
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

/// One step of the running top-k: `best` holds k keys then k ids, best
/// first; `key` / `id` enters when `include` and it beats the k-th best.
/// Most elements do not (about k * ln(n / k) of n do, for keys in random
/// order), so that test comes first and the insertion network runs only
/// behind it: a branch the CPU predicts well.
static SmallVector<Value> insertIntoBestK(LoopBuilder &b, ValueRange best,
                                          Value key, Value id, Value include) {
  const int64_t k = best.size() / 2;
  Value enters =
      andi(b, include, cmpi(b, CmpIPredicate::ugt, key, best[k - 1]));
  auto insertion = scf::IfOp::create(b, ValueRange(best).getTypes(), enters,
                                     /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&insertion.getThenRegion().front());
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
  scf::YieldOp::create(b, next);
  b.setInsertionPointToStart(&insertion.getElseRegion().front());
  scf::YieldOp::create(b, best);
  return SmallVector<Value>(insertion.getResults());
}

/// The initial running top-k: keys 0 (below every real key: the key of
/// -inf is 0x007FFFFF) and ids -1.
static SmallVector<Value> emptyBestK(LoopBuilder &b, int64_t k) {
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

/// Small k: one pass keeping the k best; returns the picks (i32 expert ids,
/// by key descending).
static SmallVector<Value> emitTopKByInsertion(LoopBuilder &b, Value gates,
                                              Value mask, Value bi, Value ti,
                                              int64_t k, KeyFn keyOf) {
  SmallVector<Value> best = emitBestKIndices(
      b, indexConst(b, numExperts(gates)), k, [&](LoopBuilder &b, Value ei) {
        return std::make_pair(keyOf(b, ei), i1Const(b, true));
      });
  for (Value idx : best)
    store(b, i1Const(b, true), mask, {bi, ti, i32ToIndex(b, idx)});
  return best;
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

void loops::emitTopKRow(LoopBuilder &b, Value gates, Value mask, Value bi,
                        Value ti, int64_t k, bool renormalize, KeyFn keyOf,
                        const ModelOptions &model,
                        const TopKListBuffers *lists) {
  Value zero = indexConst(b, 0);
  Value experts = indexConst(b, numExperts(gates));
  auto gateKey = [&](LoopBuilder &b, Value ei) {
    return scoreKey(b, load(b, gates, {bi, ti, ei}));
  };
  if (!keyOf)
    keyOf = gateKey;
  forRange(b, zero, experts, [&](LoopBuilder &b, Value ei) {
    store(b, i1Const(b, false), mask, {bi, ti, ei});
  });
  assert((!lists || k <= kInsertionTopK) && "lists come from kept picks");
  SmallVector<Value> picks;
  if (k <= kInsertionTopK)
    picks = emitTopKByInsertion(b, gates, mask, bi, ti, k, keyOf);
  else
    emitTopKByScans(b, gates, mask, bi, ti, k, keyOf);
  auto writeLists = [&] {
    if (lists)
      emitTopKListRow(b, gates, *lists, bi, ti, picks);
  };
  Value sum = forRangeAcc(
      b, zero, experts, {f32Const(b, 0.0)},
      [&](LoopBuilder &b, Value ei, ValueRange acc) {
        Value on = load(b, mask, {bi, ti, ei});
        Value g = select(b, on, load(b, gates, {bi, ti, ei}), f32Const(b, 0.0));
        store(b, renormalize ? g : model.gate(b, g), gates, {bi, ti, ei});
        return SmallVector<Value>{addf(b, acc[0], g)};
      })[0];
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

/// Visits the elements of one selection set in tie-break order (lower rank
/// first), threading accumulators: for Expert Choice the tokens of one
/// (sequence, expert) column, for Unified the flat (t, e) pairs of one
/// sequence.
using ElementBody =
    function_ref<SmallVector<Value>(LoopBuilder &, ValueRange, ValueRange)>;
using SetVisitor =
    function_ref<SmallVector<Value>(LoopBuilder &, ValueRange, ElementBody)>;

/// A selection set by token ranges, for passes that split it in chunks:
/// `range(b, first, last, init, body)` visits the elements of tokens
/// [first, last) in visiting order, `perToken` of them a token (E for a
/// Unified sequence, 1 for an Expert Choice column).
struct SetWalk {
  Value tokens;
  int64_t perToken;
  function_ref<SmallVector<Value>(LoopBuilder &, Value, Value, ValueRange,
                                  ElementBody)>
      range;
};

/// Copies of each radix pass's 256-bin histogram, filled by turns.
constexpr int64_t kRadixCopies = 4;

/// Histogram entries of one chunk of a set: kRadixCopies x 256 bins.
constexpr int64_t kChunkBins = 256 * kRadixCopies;

/// Chunks a Unified sequence's radix passes split into when it is the only
/// set (B = 1) and has at least kChunkedSetSize elements: one core would
/// otherwise select while the others wait.
constexpr int64_t kMaxChunks = 8;
constexpr int64_t kChunkedSetSize = int64_t(1) << 16;

/// Clears the histograms of the chunk whose entries start at `base`.
static void clearHistogram(LoopBuilder &b, Value hist, Value base) {
  forRange(
      b, base, addi(b, base, indexConst(b, kChunkBins)),
      [&](LoopBuilder &b, Value d) { store(b, i32Const(b, 0), hist, {d}); });
}

/// Counts `key`'s digit at `shift` in copy (`position` % kRadixCopies):
/// runs of equal digits (scores cluster in few top bytes) do not wait on
/// one bin's previous store.
static void countDigit(LoopBuilder &b, Value hist, Value base, Value key,
                       int shift, Value position) {
  Value digit = andi(b, arith::ShRUIOp::create(b, key, i32Const(b, shift)),
                     i32Const(b, 255));
  Value copy = andi(b, position, i32Const(b, kRadixCopies - 1));
  Value d =
      addi(b, base,
           i32ToIndex(b, ori(b, digit,
                             arith::ShLIOp::create(b, copy, i32Const(b, 8)))));
  store(b, addi(b, load(b, hist, {d}), i32Const(b, 1)), hist, {d});
}

/// How many keys of the first `chunks` chunks' histograms have digit `d`.
static Value binCount(LoopBuilder &b, Value hist, Value chunks, Value d) {
  return forRangeAcc(
      b, indexConst(b, 0), chunks, {i32Const(b, 0)},
      [&](LoopBuilder &b, Value c, ValueRange acc) {
        Value sum = acc[0];
        Value base = addi(b, muli(b, c, indexConst(b, kChunkBins)), d);
        for (int64_t copy = 0; copy < kRadixCopies; ++copy)
          sum = addi(b, sum,
                     load(b, hist, {addi(b, base, indexConst(b, 256 * copy))}));
        return SmallVector<Value>{sum};
      })[0];
}

/// A radix pass's outcome: the digit whose bin holds the remaining-th best
/// key, how many keys of that bin are still to take, and the bin's size.
struct DigitChoice {
  Value digit, remaining, population;
};

/// Scans the first `chunks` chunks' histograms from digit 255 down for the
/// bin holding the `remaining`-th key.
static DigitChoice chooseDigit(LoopBuilder &b, Value hist, Value chunks,
                               Value remaining) {
  SmallVector<Value> scan =
      forRangeAcc(b, indexConst(b, 0), indexConst(b, 256),
                  {i32Const(b, 0), i1Const(b, false), i32Const(b, 0), remaining,
                   i32Const(b, 0)},
                  [&](LoopBuilder &b, Value i, ValueRange acc) {
                    Value cum = acc[0], found = acc[1];
                    Value d = subi(b, indexConst(b, 255), i);
                    Value inBin = binCount(b, hist, chunks, d);
                    Value newCum = addi(b, cum, inBin);
                    Value hit =
                        andi(b, notI1(b, found),
                             cmpi(b, CmpIPredicate::sge, newCum, remaining));
                    return SmallVector<Value>{
                        newCum, ori(b, found, hit),
                        select(b, hit, indexToI32(b, d), acc[2]),
                        select(b, hit, subi(b, remaining, cum), acc[3]),
                        select(b, hit, inBin, acc[4])};
                  });
  return {scan[2], scan[3], scan[4]};
}

/// Selects, in place, the `count` best elements of a set by a 4-pass radix
/// select over the 32-bit keys (8 bits a pass): O(set size), no sort.
/// Afterwards every element with key > K is selected, plus the first
/// `remaining` elements with key == K in visiting order (ties by index).
/// Two passes read the whole set: the first counts top bytes; the second
/// counts the next byte of the keys in the chosen top-byte bin and gathers
/// them (key and position, in visiting order), and the last two passes and
/// the tie cut read only those (a bin holds 1-33% of router scores, the
/// fewer the more experts). The final pass then needs no running count:
/// it takes the keys above K and the ties up to the last one to take.
///
/// The passes over the whole set run on `chunks` (an index, 1 to
/// kMaxChunks) consecutive token ranges in parallel, each counting into
/// its own histograms and listing at its own offset: the list stays in
/// visiting order.
static void emitRadixSelect(LoopBuilder &b, Value gates, Value mask, Value hist,
                            Value count, Value chunks,
                            const ModelOptions &model, const SetWalk &walk) {
  Value zero = indexConst(b, 0), one = i32Const(b, 1);
  Value chunkBins = indexConst(b, kChunkBins);
  Value chunkTokens = arith::CeilDivUIOp::create(b, walk.tokens, chunks);
  Value parallelWork =
      select(b, cmpi(b, CmpIPredicate::ugt, chunks, indexConst(b, 1)),
             muli(b, walk.tokens, indexConst(b, walk.perToken)), zero);
  // body(chunk, first token, last token, position of the first element).
  auto forEachChunk =
      [&](function_ref<void(LoopBuilder &, Value, Value, Value, Value)> body) {
        forParallel2D(b, indexConst(b, 1), chunks, parallelWork,
                      [&](LoopBuilder &b, Value, Value c) {
                        Value first = arith::MinUIOp::create(
                            b, muli(b, c, chunkTokens), walk.tokens);
                        Value last = arith::MinUIOp::create(
                            b, addi(b, first, chunkTokens), walk.tokens);
                        Value position = indexToI32(
                            b, muli(b, first, indexConst(b, walk.perToken)));
                        body(b, c, first, last, position);
                      });
      };

  forEachChunk(
      [&](LoopBuilder &b, Value c, Value first, Value last, Value position) {
        Value base = muli(b, c, chunkBins);
        clearHistogram(b, hist, base);
        walk.range(b, first, last, {position},
                   [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
                     Value key = scoreKey(b, load(b, gates, idx));
                     countDigit(b, hist, base, key, 24, acc[0]);
                     return SmallVector<Value>{addi(b, acc[0], one)};
                   });
      });
  DigitChoice top = chooseDigit(b, hist, chunks, indexToI32(b, count));

  // Each chunk lists its keys of the chosen bin from its own offset.
  auto listType = MemRefType::get({ShapedType::kDynamic}, b.getI32Type());
  Value starts = alloc(b, listType, {chunks});
  forRangeAcc(b, zero, chunks, {i32Const(b, 0)},
              [&](LoopBuilder &b, Value c, ValueRange acc) {
                store(b, acc[0], starts, {c});
                Value inBin = binCount(
                    b, hist, indexConst(b, 1),
                    addi(b, muli(b, c, chunkBins), i32ToIndex(b, top.digit)));
                return SmallVector<Value>{addi(b, acc[0], inBin)};
              });
  Value listed = i32ToIndex(b, top.population);
  Value listKeys = alloc(b, listType, {listed});
  Value listPositions = alloc(b, listType, {listed});
  forEachChunk([&](LoopBuilder &b, Value c, Value first, Value last,
                   Value position) {
    Value base = muli(b, c, chunkBins);
    clearHistogram(b, hist, base);
    walk.range(b, first, last, {position, i32ToIndex(b, load(b, starts, {c}))},
               [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
                 Value key = scoreKey(b, load(b, gates, idx));
                 Value inBin =
                     cmpi(b, CmpIPredicate::eq,
                          arith::ShRUIOp::create(b, key, i32Const(b, 24)),
                          top.digit);
                 ifThen(b, inBin, [&](LoopBuilder &b) {
                   countDigit(b, hist, base, key, 16, acc[0]);
                   store(b, key, listKeys, {acc[1]});
                   store(b, acc[0], listPositions, {acc[1]});
                 });
                 Value next = select(b, inBin,
                                     addi(b, acc[1], indexConst(b, 1)), acc[1]);
                 return SmallVector<Value>{addi(b, acc[0], one), next};
               });
  });
  DigitChoice second = chooseDigit(b, hist, chunks, top.remaining);
  Value prefix = ori(b, arith::ShLIOp::create(b, top.digit, i32Const(b, 24)),
                     arith::ShLIOp::create(b, second.digit, i32Const(b, 16)));
  Value prefixMask = i32Const(b, int64_t(0xFFFF0000));
  Value remaining = second.remaining;
  for (int shift = 8; shift >= 0; shift -= 8) {
    clearHistogram(b, hist, zero);
    forRange(b, zero, listed, [&](LoopBuilder &b, Value i) {
      Value key = load(b, listKeys, {i});
      Value match =
          cmpi(b, CmpIPredicate::eq, andi(b, key, prefixMask), prefix);
      ifThen(b, match, [&](LoopBuilder &b) {
        countDigit(b, hist, zero, key, shift, indexToI32(b, i));
      });
    });
    DigitChoice next = chooseDigit(b, hist, indexConst(b, 1), remaining);
    prefix = ori(b, prefix,
                 arith::ShLIOp::create(b, next.digit, i32Const(b, shift)));
    prefixMask = ori(b, prefixMask, i32Const(b, int64_t(0xFF) << shift));
    remaining = next.remaining;
  }
  Value threshold = prefix;
  // The position of the remaining-th key equal to K (-1: take none).
  Value lastTie = forRangeAcc(
      b, zero, listed, {i32Const(b, 0), i32Const(b, -1)},
      [&](LoopBuilder &b, Value i, ValueRange acc) {
        Value tie =
            cmpi(b, CmpIPredicate::eq, load(b, listKeys, {i}), threshold);
        Value seen =
            addi(b, acc[0], arith::ExtUIOp::create(b, b.getI32Type(), tie));
        Value last = andi(b, tie, cmpi(b, CmpIPredicate::eq, seen, remaining));
        return SmallVector<Value>{
            seen, select(b, last, load(b, listPositions, {i}), acc[1])};
      })[1];
  forEachChunk([&](LoopBuilder &b, Value, Value first, Value last,
                   Value position) {
    walk.range(b, first, last, {position},
               [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
                 Value gate = load(b, gates, idx);
                 Value key = scoreKey(b, gate);
                 Value on =
                     ori(b, cmpi(b, CmpIPredicate::ugt, key, threshold),
                         andi(b, cmpi(b, CmpIPredicate::eq, key, threshold),
                              cmpi(b, CmpIPredicate::sle, acc[0], lastTie)));
                 store(b, on, mask, idx);
                 store(b, select(b, on, model.gate(b, gate), f32Const(b, 0.0)),
                       gates, idx);
                 return SmallVector<Value>{addi(b, acc[0], one)};
               });
  });
}

/// Selects, in place, the `count` best elements of a small set by ranks:
/// element i is taken when fewer than `count` elements rank before it (a
/// greater key, or an equal key earlier in visiting order), the radix
/// select's rule. O(set size^2) but no histogram: four 256-bin passes cost
/// more than that below kSmallSetSelect elements (Expert Choice on short
/// sequences, where every (sequence, expert) column is such a set).
static void emitRankSelect(LoopBuilder &b, Value gates, Value mask, Value ranks,
                           Value count, const ModelOptions &model,
                           SetVisitor visit) {
  Value limit = indexToI32(b, count), one = i32Const(b, 1);
  auto extend = [&](LoopBuilder &b, Value flag) {
    return arith::ExtUIOp::create(b, b.getI32Type(), flag);
  };
  // Ranks first (gates still hold scores), then one pass that writes.
  visit(b, {i32Const(b, 0)},
        [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
          Value key = scoreKey(b, load(b, gates, idx));
          Value position = acc[0];
          SmallVector<Value> before = visit(
              b, {i32Const(b, 0), i32Const(b, 0)},
              [&](LoopBuilder &b, ValueRange other, ValueRange inner) {
                Value otherKey = scoreKey(b, load(b, gates, other));
                Value ahead =
                    ori(b, cmpi(b, CmpIPredicate::ugt, otherKey, key),
                        andi(b, cmpi(b, CmpIPredicate::eq, otherKey, key),
                             cmpi(b, CmpIPredicate::slt, inner[0], position)));
                return SmallVector<Value>{addi(b, inner[0], one),
                                          addi(b, inner[1], extend(b, ahead))};
              });
          store(b, before[1], ranks, {i32ToIndex(b, position)});
          return SmallVector<Value>{addi(b, position, one)};
        });
  visit(b, {i32Const(b, 0)},
        [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
          Value gate = load(b, gates, idx);
          Value on = cmpi(b, CmpIPredicate::slt,
                          load(b, ranks, {i32ToIndex(b, acc[0])}), limit);
          store(b, on, mask, idx);
          store(b, select(b, on, model.gate(b, gate), f32Const(b, 0.0)), gates,
                idx);
          return SmallVector<Value>{addi(b, acc[0], one)};
        });
}

/// Selects, in place, the `count` (at most kInsertionSelect) best elements
/// of a set: one pass keeps the kInsertionSelect best (key, position in
/// visiting order) sorted, the count-th of them is the threshold, and a
/// second pass takes every element ranked at or before it (a greater key,
/// or the same key no later in visiting order): the radix select's rule in
/// two passes, whatever the set's size.
static void emitInsertionSelect(LoopBuilder &b, Value gates, Value mask,
                                Value count, int64_t k,
                                const ModelOptions &model, SetVisitor visit) {
  Value one = i32Const(b, 1);
  SmallVector<Value> init = {i32Const(b, 0)};
  init.append(emptyBestK(b, k));
  SmallVector<Value> best =
      visit(b, init, [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
        Value key = scoreKey(b, load(b, gates, idx));
        SmallVector<Value> next = {addi(b, acc[0], one)};
        next.append(insertIntoBestK(b, acc.drop_front(), key, acc[0],
                                    i1Const(b, true)));
        return next;
      });
  // The threshold: entry count - 1 of the sorted best (none for count 0).
  Value last = subi(b, indexToI32(b, count), one);
  Value thresholdKey = i32Const(b, 0), thresholdAt = i32Const(b, -1);
  for (int64_t j = 0; j < k; ++j) {
    Value here = cmpi(b, CmpIPredicate::eq, last, i32Const(b, j));
    thresholdKey = select(b, here, best[1 + j], thresholdKey);
    thresholdAt = select(b, here, best[1 + k + j], thresholdAt);
  }
  visit(b, {i32Const(b, 0)},
        [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
          Value gate = load(b, gates, idx);
          Value key = scoreKey(b, gate);
          Value on =
              andi(b, cmpi(b, CmpIPredicate::sge, thresholdAt, i32Const(b, 0)),
                   ori(b, cmpi(b, CmpIPredicate::ugt, key, thresholdKey),
                       andi(b, cmpi(b, CmpIPredicate::eq, key, thresholdKey),
                            cmpi(b, CmpIPredicate::sle, acc[0], thresholdAt))));
          store(b, on, mask, idx);
          store(b, select(b, on, model.gate(b, gate), f32Const(b, 0.0)), gates,
                idx);
          return SmallVector<Value>{addi(b, acc[0], one)};
        });
}

/// The `count` best of a set: by insertion for a small count, by ranks for
/// a small set, by the radix select otherwise (the same selection every
/// way; the radix passes over `chunks` token ranges).
static void emitSetSelect(LoopBuilder &b, Value gates, Value mask, Value hist,
                          Value ranks, Value count, Value chunks,
                          const ModelOptions &model, const SetWalk &walk) {
  Value size = muli(b, walk.tokens, indexConst(b, walk.perToken));
  auto visit = [&](LoopBuilder &b, ValueRange init, ElementBody body) {
    return walk.range(b, indexConst(b, 0), walk.tokens, init, body);
  };
  // A fixed count (moe.unified<n = N>) takes its way statically.
  std::optional<int64_t> fixed = getConstantIntValue(count);
  // A running top-k as small as the count allows (Expert Choice of short
  // sequences often has C = 1): each slot more costs every insertion.
  std::function<void(LoopBuilder &, int64_t)> byInsertion = [&](LoopBuilder &b,
                                                                int64_t slots) {
    if (slots == kInsertionSelect || (fixed && *fixed <= slots))
      return emitInsertionSelect(b, gates, mask, count, slots, model, visit);
    if (fixed)
      return byInsertion(b, 2 * slots);
    ifThenElse(
        b, cmpi(b, CmpIPredicate::ule, count, indexConst(b, slots)),
        [&](LoopBuilder &b) {
          emitInsertionSelect(b, gates, mask, count, slots, model, visit);
        },
        [&](LoopBuilder &b) { byInsertion(b, 2 * slots); });
  };
  auto bySize = [&](LoopBuilder &b) {
    ifThenElse(
        b, cmpi(b, CmpIPredicate::ule, size, indexConst(b, kSmallSetSelect)),
        [&](LoopBuilder &b) {
          emitRankSelect(b, gates, mask, ranks, count, model, visit);
        },
        [&](LoopBuilder &b) {
          emitRadixSelect(b, gates, mask, hist, count, chunks, model, walk);
        });
  };
  if (fixed)
    return *fixed <= kInsertionSelect ? byInsertion(b, 1) : bySize(b);
  ifThenElse(
      b, cmpi(b, CmpIPredicate::ule, count, indexConst(b, kInsertionSelect)),
      [&](LoopBuilder &b) { byInsertion(b, 1); }, bySize);
}

/// Per-set scratch for `sets` selections running in parallel: histograms
/// [sets, kChunkBins * chunks] and ranks [sets, kSmallSetSelect] (i32).
struct SelectScratch {
  Value hist, ranks;

  static SelectScratch alloc(LoopBuilder &b, Value sets, int64_t chunks = 1) {
    auto type = [&](int64_t width) {
      return MemRefType::get({ShapedType::kDynamic, width}, b.getI32Type());
    };
    return {loops::alloc(b, type(kChunkBins * chunks), {sets}),
            loops::alloc(b, type(kSmallSetSelect), {sets})};
  }

  /// Row `set` of `buffer` as a 1-D view.
  static Value row(LoopBuilder &b, Value buffer, Value set) {
    int64_t width = cast<MemRefType>(buffer.getType()).getDimSize(1);
    auto viewType = MemRefType::get(
        {width}, b.getI32Type(),
        StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic, {1}));
    SmallVector<OpFoldResult> offsets = {set, b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1),
                                       b.getIndexAttr(width)};
    SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
    return memref::SubViewOp::create(b, viewType, buffer, offsets, sizes,
                                     strides);
  }
};

/// Sequences with at least this many scores (T * E) select their Expert
/// Choice columns from a transposed copy: a column read in place touches a
/// cache line per token (stride E), once per radix pass, and such a
/// sequence no longer fits in the L2 cache that would keep those lines.
constexpr int64_t kTransposedColumnsWork = int64_t(1) << 18;

/// Rows of [B, T, E] per block of the transposes: the block's lines of the
/// [B, E, T] side stay in cache while its rows are walked.
constexpr int64_t kTransposeRows = 64;

/// Elements (64 bytes of f32) added to each row of the transposed copies.
constexpr int64_t kTransposePadding = 16;

/// for each (b, t, e) of `like` [B, T, E], in blocks of rows in parallel:
/// body(b, t, e).
static void forEachPairByRowBlocks(
    LoopBuilder &b, Value like,
    function_ref<void(LoopBuilder &, Value, Value, Value)> body) {
  Value zero = indexConst(b, 0), tokens = dim(b, like, 1);
  Value sequences = dim(b, like, 0), experts = indexConst(b, numExperts(like));
  Value rows = indexConst(b, kTransposeRows);
  Value blocks = arith::CeilDivUIOp::create(b, tokens, rows);
  forParallel2D(
      b, sequences, blocks, muli(b, muli(b, sequences, tokens), experts),
      [&](LoopBuilder &b, Value bi, Value block) {
        Value first = muli(b, block, rows);
        Value last = arith::MinUIOp::create(b, addi(b, first, rows), tokens);
        forRange(b, first, last, [&](LoopBuilder &b, Value ti) {
          forRange(b, zero, experts,
                   [&](LoopBuilder &b, Value ei) { body(b, bi, ti, ei); });
        });
      });
}

/// Expert Choice column by column: each (sequence, expert) column is a set
/// of T scores for emitSetSelect.
static void emitExpertChoiceByColumns(LoopBuilder &b, Value gates, Value mask,
                                      Value capacity,
                                      const ModelOptions &model) {
  Value zero = indexConst(b, 0);
  Value tokens = dim(b, gates, 1), sequences = dim(b, gates, 0);
  int64_t numExpertsStatic = numExperts(gates);
  Value experts = indexConst(b, numExpertsStatic);
  // Experts are the parallel loop, the sequences run inside it: one region
  // for the whole batch (B short sequences are as parallel as one long
  // one), and an expert's sets reuse its scratch row one after the other.
  SelectScratch scratch = SelectScratch::alloc(b, experts);
  auto selectColumns = [&](LoopBuilder &b, Value scores, Value selected,
                           bool transposed) {
    forParallel2D(b, indexConst(b, 1), experts,
                  muli(b, muli(b, sequences, experts), tokens),
                  [&](LoopBuilder &b, Value, Value ei) {
                    Value hist = SelectScratch::row(b, scratch.hist, ei);
                    Value ranks = SelectScratch::row(b, scratch.ranks, ei);
                    forRange(b, zero, sequences, [&](LoopBuilder &b, Value bi) {
                      auto column = [&](LoopBuilder &b, Value first, Value last,
                                        ValueRange init, ElementBody body) {
                        return forRangeAcc(
                            b, first, last, init,
                            [&](LoopBuilder &b, Value t, ValueRange acc) {
                              return body(b,
                                          transposed
                                              ? SmallVector<Value>{bi, ei, t}
                                              : SmallVector<Value>{bi, t, ei},
                                          acc);
                            });
                      };
                      emitSetSelect(b, scores, selected, hist, ranks, capacity,
                                    indexConst(b, 1), model,
                                    SetWalk{tokens, /*perToken=*/1, column});
                    });
                  });
  };
  Value long_ = cmpi(b, CmpIPredicate::uge, muli(b, tokens, experts),
                     indexConst(b, kTransposedColumnsWork));
  ifThenElse(
      b, long_,
      [&](LoopBuilder &b) {
        // Columns as rows of [B, E, T] copies; selected there, copied back.
        auto columnsType = [&](Type element) {
          return MemRefType::get(
              {ShapedType::kDynamic, numExpertsStatic, ShapedType::kDynamic},
              element);
        };
        // Rows padded by a cache line: with T a power of two, the
        // transposes' E accesses of one token would map to one L1 set.
        Value padded = addi(b, tokens, indexConst(b, kTransposePadding));
        Value scores =
            alloc(b, columnsType(b.getF32Type()), {sequences, padded});
        Value selected =
            alloc(b, columnsType(b.getI1Type()), {sequences, padded});
        forEachPairByRowBlocks(
            b, gates, [&](LoopBuilder &b, Value bi, Value ti, Value ei) {
              store(b, load(b, gates, {bi, ti, ei}), scores, {bi, ei, ti});
            });
        selectColumns(b, scores, selected, /*transposed=*/true);
        forEachPairByRowBlocks(
            b, gates, [&](LoopBuilder &b, Value bi, Value ti, Value ei) {
              store(b, load(b, scores, {bi, ei, ti}), gates, {bi, ti, ei});
              store(b, load(b, selected, {bi, ei, ti}), mask, {bi, ti, ei});
            });
      },
      [&](LoopBuilder &b) {
        selectColumns(b, gates, mask, /*transposed=*/false);
      });
}

void loops::emitExpertChoice(LoopBuilder &b, Value gates, Value mask,
                             Value capacity, const ModelOptions &model) {
  // A fixed capacity (moe.expert<capacity = C>) takes one way, statically.
  if (std::optional<int64_t> fixed = getConstantIntValue(capacity)) {
    if (*fixed <= kRowWiseCapacity)
      return emitExpertChoiceByRows(b, gates, mask, capacity, model);
    return emitExpertChoiceByColumns(b, gates, mask, capacity, model);
  }
  ifThenElse(
      b, cmpi(b, CmpIPredicate::ule, capacity, indexConst(b, kRowWiseCapacity)),
      [&](LoopBuilder &b) {
        emitExpertChoiceByRows(b, gates, mask, capacity, model);
      },
      [&](LoopBuilder &b) {
        emitExpertChoiceByColumns(b, gates, mask, capacity, model);
      });
}

void loops::emitGlobalTopN(LoopBuilder &b, Value gates, Value mask,
                           Value budget, const ModelOptions &model) {
  Value zero = indexConst(b, 0), one = indexConst(b, 1);
  Value tokens = dim(b, gates, 1), sequences = dim(b, gates, 0);
  int64_t numExpertsStatic = numExperts(gates);
  Value experts = indexConst(b, numExpertsStatic);
  // Sequences in parallel, each with its own scratch row; one sequence
  // (B = 1) of at least kChunkedSetSize pairs runs its radix passes on
  // kMaxChunks token ranges in parallel instead.
  Value size = muli(b, tokens, experts);
  Value alone = cmpi(b, CmpIPredicate::eq, sequences, one);
  Value chunks = select(
      b,
      andi(b, alone,
           cmpi(b, CmpIPredicate::uge, size, indexConst(b, kChunkedSetSize))),
      indexConst(b, kMaxChunks), one);
  SelectScratch scratch = SelectScratch::alloc(b, sequences, kMaxChunks);
  forParallel2D(
      b, one, sequences, select(b, alone, zero, muli(b, sequences, size)),
      [&](LoopBuilder &b, Value, Value bi) {
        auto pairs = [&](LoopBuilder &b, Value first, Value last,
                         ValueRange init, ElementBody body) {
          return forRangeAcc(
              b, first, last, init,
              [&](LoopBuilder &b, Value t, ValueRange acc) {
                return forRangeAcc(
                    b, zero, experts, acc,
                    [&](LoopBuilder &b, Value e, ValueRange acc) {
                      return body(b, {bi, t, e}, acc);
                    });
              });
        };
        emitSetSelect(b, gates, mask, SelectScratch::row(b, scratch.hist, bi),
                      SelectScratch::row(b, scratch.ranks, bi), budget, chunks,
                      model, SetWalk{tokens, numExpertsStatic, pairs});
      });
}
