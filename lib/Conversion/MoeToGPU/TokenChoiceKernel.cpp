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
//   s     = warpSum(sum_v e_v)                      (lane 0's bits)
//   P_v   = e_v / s
//   k picks: per lane the best untaken (key, index), then warpArgMax;
//            the owner lane marks the expert taken in a 64-bit mask
//   write  gates / mask for every e_v < E (renormalized if asked)
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

gpu::GPUFuncOp gpu_kernels::buildTokenChoiceKernel(
    OpBuilder &builder, Location loc, StringRef name, MemRefType logitsType,
    MemRefType gatesType, MemRefType maskType, int64_t k, bool renormalize,
    MemRefType biasType) {
  SmallVector<Type> args = {logitsType, gatesType, maskType};
  if (biasType)
    args.push_back(biasType);
  auto func = createKernel(builder, loc, name, args,
                           int32_t(kTokenChoiceWarpsPerBlock * kWarpSize));

  Block &entry = func.getBody().front();
  LoopBuilder b(loc, builder);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&entry);
  Value logits = entry.getArgument(0), gates = entry.getArgument(1),
        mask = entry.getArgument(2);
  Value bias = biasType ? entry.getArgument(3) : Value();

  const int64_t experts = logitsType.getDimSize(2);

  forWarpRow(
      b, logits, kTokenChoiceWarpsPerBlock,
      [&](LoopBuilder &b, Value bi, Value ti, Value lane) {
        WarpRow row;
        if (!bias) {
          row = emitWarpRowSoftmax(b, logits, bi, ti, lane);
        } else {
          // sigmoid_bias: the gate is sigmoid(L) per expert, no row sum.
          row = emitWarpRowLoad(b, logits, bi, ti, lane);
          for (Value x : row.logit) {
            Value one = f32Const(b, 1.0);
            Value e = math::ExpOp::create(b, arith::NegFOp::create(b, x));
            row.score.push_back(divf(b, one, addf(b, one, e)));
          }
        }
        const int64_t perLane = row.perLane;
        SmallVector<Value> &expert = row.expert, &inBounds = row.inBounds,
                           &p = row.score;
        Value laneI32 = indexToI32(b, lane);
        SmallVector<Value> key(perLane);
        // Key 0 is below every real key: padding never wins.
        for (int64_t v = 0; v < perLane; ++v) {
          Value ranked = p[v];
          if (bias) {
            Value at = arith::MinUIOp::create(b, expert[v],
                                              indexConst(b, experts - 1));
            ranked = addf(b, ranked, load(b, bias, {at}));
          }
          key[v] = select(b, inBounds[v], scoreKey(b, ranked), i32Const(b, 0));
        }

        // Bit v of `taken` marks register v; padding starts out taken.
        Type i64 = b.getI64Type();
        auto bit = [&](LoopBuilder &b, int64_t v) {
          return arith::ConstantIntOp::create(b, i64, int64_t(1) << v);
        };
        Value taken = arith::ConstantIntOp::create(b, i64, 0);
        for (int64_t v = 0; v < perLane; ++v)
          taken = select(b, inBounds[v], taken, ori(b, taken, bit(b, v)));

        SmallVector<Value> picked = forRangeAcc(
            b, indexConst(b, 0), indexConst(b, k), {taken, f32Const(b, 0.0)},
            [&](LoopBuilder &b, Value, ValueRange acc) {
              Value taken = acc[0];
              Value bestKey = i32Const(b, 0);
              Value bestIndex =
                  i32Const(b, std::numeric_limits<int32_t>::max());
              for (int64_t v = 0; v < perLane; ++v) {
                Value free =
                    cmpi(b, CmpIPredicate::eq, andi(b, taken, bit(b, v)),
                         arith::ConstantIntOp::create(b, i64, 0));
                // Strictly greater: the lower register (lower expert) wins
                // ties.
                Value better =
                    andi(b, free, cmpi(b, CmpIPredicate::ugt, key[v], bestKey));
                bestKey = select(b, better, key[v], bestKey);
                bestIndex =
                    select(b, better, indexToI32(b, expert[v]), bestIndex);
              }
              auto [winKey, winIndex] = warpArgMax(b, bestKey, bestIndex);
              (void)winKey;
              Value owner = row.ownerLane(b, winIndex);
              Value slot = row.slotOf(b, winIndex);
              Value mine = cmpi(b, CmpIPredicate::eq, owner, laneI32);
              Value slotBit = arith::ShLIOp::create(
                  b, arith::ConstantIntOp::create(b, i64, 1),
                  arith::ExtUIOp::create(b, i64, slot));
              taken = select(b, mine, ori(b, taken, slotBit), taken);
              // The winner's score, from its owner lane, for the renormalizer.
              Value ownP = p[0];
              for (int64_t v = 1; v < perLane; ++v)
                ownP =
                    select(b, cmpi(b, CmpIPredicate::eq, slot, i32Const(b, v)),
                           p[v], ownP);
              Value winP = shuffleIdx(b, ownP, owner);
              return SmallVector<Value>{taken, addf(b, acc[1], winP)};
            });
        Value finalTaken = picked[0], pickedSum = picked[1];
        Value divide = cmpf(b, CmpFPredicate::OGT, pickedSum, f32Const(b, 0.0));

        for (int64_t v = 0; v < perLane; ++v) {
          Value isTaken =
              cmpi(b, CmpIPredicate::ne, andi(b, finalTaken, bit(b, v)),
                   arith::ConstantIntOp::create(b, i64, 0));
          Value gate = p[v];
          if (renormalize)
            gate = select(b, divide, divf(b, gate, pickedSum), gate);
          gate = select(b, isTaken, gate, f32Const(b, 0.0));
          auto write = [&](LoopBuilder &b) {
            store(b, gate, gates, {bi, ti, expert[v]});
            store(b, isTaken, mask, {bi, ti, expert[v]});
          };
          // Only the last register can run past E.
          if (row.alwaysInBounds(v, experts))
            write(b);
          else
            ifThen(b, inBounds[v], write);
        }
      });
  gpu::ReturnOp::create(b);
  return func;
}
