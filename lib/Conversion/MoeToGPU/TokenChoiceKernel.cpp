//===- TokenChoiceKernel.cpp - warp-per-token Token Choice kernel ---------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// One warp routes one token. Lane l holds experts l, l + 32, ... of the row
// as SSA values (registers, no local memory): V = ceil(E / 32) of them.
//
//   x_v   = sanitize(L[e_v])                       (-inf past E)
//   m     = warpMax(max_v x_v)
//   e_v   = exp(x_v == m ? 0 : x_v - m)             (0 if m == -inf)
//   s     = SoftmaxSum of the e_v over the warp     (integer units)
//   P_v   = e_v / s
//   k picks (emitWarpTopK): per lane the best untaken (key, index), then
//            a warp arg-max; the owner lane marks the expert taken
//   write  gates / mask for every e_v < E (renormalized if asked)
//   lists  (fused moe.topk_list, k <= 32) lane j holds pick j; its rank by
//          (gate key descending, expert ascending) among the k picks, from k
//          index shuffles, is its column in the [B*T, k] ids / weights
//
//===----------------------------------------------------------------------===//

#include "Conversion/Common/RoutingMath.h"
#include "Kernels.h"
#include "WarpReduce.h"
#include "WarpRow.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using namespace mlir::usmoe::gpu_kernels;
using arith::CmpFPredicate;
using arith::CmpIPredicate;

static_assert(kMaxFusedListK == kWarpSize,
              "a fused list holds a pick per lane");

/// Group j's score: the sum of its two largest ranking scores (the largest
/// alone for one expert per group), the same in every lane after a
/// butterfly all-reduce of (largest, second largest) pairs. Group j is kept
/// when fewer than `kept` groups rank before it (higher score, or equal and
/// lower index); the keys of the other groups' experts become 0.
static void limitToKeptGroups(LoopBuilder &b, const WarpRow &row,
                              ArrayRef<Value> ranked,
                              MutableArrayRef<Value> key, int64_t experts,
                              GroupLimit limit) {
  const int64_t size = experts / limit.groups;
  Value negInf = f32Const(b, kNegInf);
  SmallVector<Value> groupOf(row.perLane), scores(limit.groups);
  for (int64_t v = 0; v < row.perLane; ++v)
    groupOf[v] = arith::DivUIOp::create(b, row.expert[v], indexConst(b, size));
  for (int64_t j = 0; j < limit.groups; ++j) {
    Value first = negInf, second = negInf;
    for (int64_t v = 0; v < row.perLane; ++v) {
      Value in = andi(b, row.inBounds[v],
                      cmpi(b, CmpIPredicate::eq, groupOf[v], indexConst(b, j)));
      Value s = select(b, in, ranked[v], negInf);
      Value above = cmpf(b, CmpFPredicate::OGT, s, first);
      second = select(b, above, first, arith::MaximumFOp::create(b, s, second));
      first = select(b, above, s, first);
    }
    for (int32_t offset = kWarpSize / 2; offset > 0; offset /= 2) {
      Value otherFirst = shuffleXor(b, first, offset);
      Value otherSecond = shuffleXor(b, second, offset);
      second = arith::MaximumFOp::create(
          b, arith::MinimumFOp::create(b, first, otherFirst),
          arith::MaximumFOp::create(b, second, otherSecond));
      first = arith::MaximumFOp::create(b, first, otherFirst);
    }
    scores[j] = size == 1 ? first : addf(b, first, second);
  }
  Value keptBits = arith::ConstantIntOp::create(b, b.getI64Type(), 0);
  for (int64_t j = 0; j < limit.groups; ++j) {
    Value before = i32Const(b, 0);
    for (int64_t i = 0; i < limit.groups; ++i) {
      if (i == j)
        continue;
      Value ahead = cmpf(b, i < j ? CmpFPredicate::OGE : CmpFPredicate::OGT,
                         scores[i], scores[j]);
      before =
          addi(b, before, arith::ExtUIOp::create(b, b.getI32Type(), ahead));
    }
    Value kept = arith::ExtUIOp::create(
        b, b.getI64Type(),
        cmpi(b, CmpIPredicate::slt, before, i32Const(b, limit.kept)));
    Value bit = arith::ShLIOp::create(
        b, kept, arith::ConstantIntOp::create(b, b.getI64Type(), j));
    keptBits = ori(b, keptBits, bit);
  }
  for (int64_t v = 0; v < row.perLane; ++v) {
    Value shift = arith::IndexCastOp::create(b, b.getI64Type(), groupOf[v]);
    Value bit = arith::TruncIOp::create(
        b, b.getI1Type(), arith::ShRUIOp::create(b, keptBits, shift));
    key[v] = select(b, bit, key[v], i32Const(b, 0));
  }
}

gpu::GPUFuncOp gpu_kernels::buildTokenChoiceKernel(
    OpBuilder &builder, Location loc, StringRef name, MemRefType logitsType,
    MemRefType gatesType, MemRefType maskType, int64_t k, bool renormalize,
    MemRefType biasType, std::optional<GroupLimit> groupLimit,
    const ModelOptions &model, MemRefType listIdsType,
    MemRefType listWeightsType, ArrayRef<MemRefType> zeroed,
    std::optional<double> unifiedAlpha) {
  assert(!(unifiedAlpha && (biasType || groupLimit || renormalize)) &&
         "a unified sequence of one token ranks U alone");
  SmallVector<Type> argTypes = {logitsType, gatesType, maskType};
  if (biasType)
    argTypes.push_back(biasType);
  bool lists = bool(listIdsType);
  size_t listArg = argTypes.size();
  if (lists) {
    argTypes.push_back(listIdsType);
    argTypes.push_back(listWeightsType);
  }
  size_t zeroedArg = argTypes.size();
  argTypes.append(zeroed.begin(), zeroed.end());
  return buildKernel(
      builder, loc, name, argTypes,
      int32_t(kTokenChoiceWarpsPerBlock * kWarpSize),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value>) {
        Value logits = args[0], gates = args[1], mask = args[2];
        Value bias = biasType ? args[3] : Value();
        Value listIds = lists ? args[listArg] : Value();
        Value listWeights = lists ? args[listArg + 1] : Value();
        zeroFromEveryThread(b, args.drop_front(zeroedArg));

        const int64_t experts = logitsType.getDimSize(2);

        const int64_t width = tokenChoiceRowLanes(experts, bool(groupLimit));
        forWarpRow(
            b, logits, kTokenChoiceWarpsPerBlock,
            [&](LoopBuilder &b, Value bi, Value ti, const RowLanes &lanes,
                Value valid) {
              // Several rows a warp: stores only for rows that exist.
              auto ifValid = [&](LoopBuilder &b, Value cond,
                                 function_ref<void(LoopBuilder &)> then) {
                if (lanes.width < kWarpSize)
                  cond = cond ? andi(b, cond, valid) : valid;
                if (cond)
                  ifThen(b, cond, then);
                else
                  then(b);
              };
              Value lane = lanes.lane;
              WarpRow row;
              if (!bias) {
                row = emitWarpRowSoftmax(b, logits, bi, ti, lanes, model);
                // One token of a unified sequence: its top N by U.
                if (unifiedAlpha)
                  for (int64_t v = 0; v < row.perLane; ++v)
                    row.score[v] = unifiedScore(b, row.score[v], row.logit[v],
                                                *unifiedAlpha, experts);
              } else {
                // sigmoid_bias: the gate is sigmoid(L) per expert, no row sum.
                row = emitWarpRowLoad(b, logits, bi, ti, lanes, model);
                for (Value x : row.logit) {
                  Value one = f32Const(b, 1.0);
                  Value e = math::ExpOp::create(b, arith::NegFOp::create(b, x));
                  row.score.push_back(divf(b, one, addf(b, one, e)));
                }
              }
              const int64_t perLane = row.perLane;
              SmallVector<Value> key(perLane), ranked(perLane);
              // Key 0 is below every real key: padding never wins.
              for (int64_t v = 0; v < perLane; ++v) {
                ranked[v] = row.score[v];
                if (bias) {
                  Value at = arith::MinUIOp::create(b, row.expert[v],
                                                    indexConst(b, experts - 1));
                  ranked[v] = addf(b, ranked[v], load(b, bias, {at}));
                }
                key[v] = select(b, row.inBounds[v], scoreKey(b, ranked[v]),
                                i32Const(b, 0));
              }
              // Experts of dropped groups get key 0 as well.
              if (groupLimit)
                limitToKeptGroups(b, row, ranked, key, experts, *groupLimit);

              // The picks' score sum (SoftmaxSum's units: the CPU's bits,
              // whatever the order) is the renormalizer; with lists, lane
              // j also keeps pick j's expert and score.
              Value laneI32 = indexToI32(b, lane);
              SoftmaxSum units = SoftmaxSum::forTerms(b, indexConst(b, k));
              SmallVector<Value> init = {SoftmaxSum::zero(b)};
              if (lists)
                init.append({i32Const(b, 0), f32Const(b, 0.0)});
              SmallVector<Value> picked = emitWarpTopK(
                  b, row, key, lanes.warpLane, k, init,
                  [&](LoopBuilder &b, Value round, Value, Value winExpert,
                      Value winScore, ValueRange acc) {
                    SmallVector<Value> next = {
                        addi(b, acc[0], units.term(b, winScore))};
                    if (lists) {
                      Value mine = cmpi(b, CmpIPredicate::eq, round, lane);
                      next.push_back(select(b, mine, winExpert, acc[1]));
                      next.push_back(select(b, mine, winScore, acc[2]));
                    }
                    return next;
                  });
              Value finalTaken = picked[0];
              Value pickedSum = units.total(b, picked[1]);
              Value divide =
                  cmpf(b, CmpFPredicate::OGT, pickedSum, f32Const(b, 0.0));
              auto finalGate = [&](LoopBuilder &b, Value score) {
                Value gate = score;
                if (renormalize)
                  gate = select(b, divide, divf(b, gate, pickedSum), gate);
                return model.gate(b, gate);
              };
              if (lists) {
                Value expert = picked[2];
                Value gate = finalGate(b, picked[3]);
                Value gateKey = scoreKey(b, gate);
                Value rank = i32Const(b, 0);
                for (int64_t i = 0; i < k; ++i) {
                  Value other = addi(b, lanes.base, i32Const(b, i));
                  Value otherKey = shuffleIdx(b, gateKey, other);
                  Value otherExpert = shuffleIdx(b, expert, other);
                  Value ahead = ori(
                      b, cmpi(b, CmpIPredicate::ugt, otherKey, gateKey),
                      andi(b, cmpi(b, CmpIPredicate::eq, otherKey, gateKey),
                           cmpi(b, CmpIPredicate::slt, otherExpert, expert)));
                  rank = addi(b, rank,
                              arith::ExtUIOp::create(b, b.getI32Type(), ahead));
                }
                ifValid(b, cmpi(b, CmpIPredicate::slt, laneI32, i32Const(b, k)),
                        [&](LoopBuilder &b) {
                          Value listRow =
                              addi(b, muli(b, bi, dim(b, logits, 1)), ti);
                          Value column = i32ToIndex(b, rank);
                          store(b, expert, listIds, {listRow, column});
                          store(b, gate, listWeights, {listRow, column});
                        });
              }

              for (int64_t v = 0; v < perLane; ++v) {
                Value isTaken = isTakenBit(b, finalTaken, v);
                Value gate = select(b, isTaken, finalGate(b, row.score[v]),
                                    f32Const(b, 0.0));
                auto write = [&](LoopBuilder &b) {
                  store(b, gate, gates, {bi, ti, row.expert[v]});
                  store(b, isTaken, mask, {bi, ti, row.expert[v]});
                };
                // Only the last register can run past E.
                ifValid(b,
                        row.alwaysInBounds(v, experts) ? Value()
                                                       : row.inBounds[v],
                        write);
              }
            },
            width);
      });
}
