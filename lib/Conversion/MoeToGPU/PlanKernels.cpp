//===- PlanKernels.cpp - CSR plan, dispatch and combine on the GPU --------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
//  plan:     count   one block per expert counts its column of the mask;
//            scan    one thread turns counts into offsets (E + 1 values);
//            fill    one block per expert compacts its column in token
//                    order (block prefix counts): ascending ids, stable.
//  dispatch: one block per plan row copies hidden[ids[m], :].
//  combine:  one block per token; for each expert in ascending order a
//            binary search finds the token's row in that expert's (sorted)
//            ids, so rows are summed in ascending order: deterministic, no
//            float atomics, and the same order as the CPU path.
//
//===----------------------------------------------------------------------===//

#include "Conversion/Common/GivenSelection.h"
#include "Kernels.h"
#include "WarpReduce.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using namespace mlir::usmoe::gpu_kernels;
using arith::CmpIPredicate;

namespace {

/// Row g of a chunked walk over `rows` rows: (g, g < rows, g clamped into
/// range so that loads stay in bounds for the last partial chunk).
struct ChunkRow {
  Value index, inBounds, clamped;
};
ChunkRow chunkRow(LoopBuilder &b, Value chunk, Value tid, Value rows,
                  int64_t threads) {
  Value g = addi(b, muli(b, chunk, indexConst(b, threads)), tid);
  Value last = subi(b, arith::MaxUIOp::create(b, rows, indexConst(b, 1)),
                    indexConst(b, 1));
  return {g, cmpi(b, CmpIPredicate::ult, g, rows),
          arith::MinUIOp::create(b, g, last)};
}

Value threadId(LoopBuilder &b) {
  return gpu::ThreadIdOp::create(b, gpu::Dimension::x);
}
Value blockId(LoopBuilder &b) {
  return gpu::BlockIdOp::create(b, gpu::Dimension::x);
}

} // namespace

Value gpu_kernels::lowerBound(LoopBuilder &b, Value lo, Value hi,
                              function_ref<Value(LoopBuilder &, Value)> below) {
  auto search = scf::WhileOp::create(
      b, TypeRange{b.getIndexType(), b.getIndexType()}, ValueRange{lo, hi},
      [&](OpBuilder &nb, Location l, ValueRange range) {
        LoopBuilder ib(l, nb);
        Value more = cmpi(ib, CmpIPredicate::ult, range[0], range[1]);
        scf::ConditionOp::create(ib, more, range);
      },
      [&](OpBuilder &nb, Location l, ValueRange range) {
        LoopBuilder ib(l, nb);
        Value mid =
            addi(ib, range[0],
                 arith::DivUIOp::create(ib, subi(ib, range[1], range[0]),
                                        indexConst(ib, 2)));
        Value isBelow = below(ib, mid);
        scf::YieldOp::create(
            ib, ValueRange{select(ib, isBelow, addi(ib, mid, indexConst(ib, 1)),
                                  range[0]),
                           select(ib, isBelow, range[1], mid)});
      });
  return search.getResult(0);
}

PlanKernels gpu_kernels::buildPlanKernels(OpBuilder &builder, Location loc,
                                          StringRef name, MemRefType gatesType,
                                          MemRefType maskType,
                                          MemRefType offsetsType,
                                          MemRefType idsType,
                                          MemRefType weightsType) {
  MLIRContext *ctx = builder.getContext();
  const int64_t experts = gatesType.getDimSize(2);
  const int64_t threads = kPlanBlock, warps = kPlanBlock / kWarpSize;
  PlanKernels kernels;
  SmallVector<Type> scanBuffers = {workgroupBuffer(ctx, warps),
                                   workgroupBuffer(ctx, 1)};

  // count(mask, offsets): offsets[e + 1] = column count; offsets[0] = 0.
  kernels.count = buildKernel(
      builder, loc, (name + "_count").str(), {maskType, offsetsType},
      int32_t(threads),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value> workgroup) {
        Value mask = args[0], offsets = args[1];
        Value tid = threadId(b), e = blockId(b);
        Value lane = arith::RemUIOp::create(b, tid, indexConst(b, kWarpSize));
        Value warp = arith::DivUIOp::create(b, tid, indexConst(b, kWarpSize));
        Value tokens = dim(b, mask, 1);
        Value rows = muli(b, dim(b, mask, 0), tokens);
        // Per-thread partial count, then one block scan for the total.
        Value partial = i32Const(b, 0);
        partial = forRangeAcc(
            b, zero(b),
            arith::CeilDivUIOp::create(b, rows, indexConst(b, threads)),
            {partial}, [&](LoopBuilder &b, Value chunk, ValueRange acc) {
              auto [g, in, at] = chunkRow(b, chunk, tid, rows, threads);
              (void)g;
              Value on = load(b, mask,
                              {arith::DivUIOp::create(b, at, tokens),
                               arith::RemUIOp::create(b, at, tokens), e});
              Value add =
                  arith::ExtUIOp::create(b, b.getI32Type(), andi(b, in, on));
              return SmallVector<Value>{addi(b, acc[0], add)};
            })[0];
        Value total = blockExclusiveScan(b, partial, lane, warp, workgroup[0],
                                         workgroup[1], 0)
                          .second;
        ifThen(b, cmpi(b, CmpIPredicate::eq, tid, indexConst(b, 0)),
               [&](LoopBuilder &b) {
                 store(b, total, offsets, {addi(b, e, indexConst(b, 1))});
                 ifThen(b, cmpi(b, CmpIPredicate::eq, e, indexConst(b, 0)),
                        [&](LoopBuilder &b) {
                          store(b, i32Const(b, 0), offsets, {indexConst(b, 0)});
                        });
               });
      },
      scanBuffers);

  // scan(offsets): running sum over the E counts, by one thread.
  kernels.scan =
      buildKernel(builder, loc, (name + "_scan").str(), {offsetsType}, 1,
                  [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value>) {
                    Value offsets = args[0];
                    forRangeAcc(b, indexConst(b, 1), indexConst(b, experts + 1),
                                {i32Const(b, 0)},
                                [&](LoopBuilder &b, Value e, ValueRange acc) {
                                  Value total =
                                      addi(b, acc[0], load(b, offsets, {e}));
                                  store(b, total, offsets, {e});
                                  return SmallVector<Value>{total};
                                });
                  });

  // fill(gates, mask, offsets, ids, weights): stable compaction per expert.
  kernels.fill = buildKernel(
      builder, loc, (name + "_fill").str(),
      {gatesType, maskType, offsetsType, idsType, weightsType},
      int32_t(threads),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value> workgroup) {
        Value gates = args[0], mask = args[1], offsets = args[2], ids = args[3],
              weights = args[4];
        Value tid = threadId(b), e = blockId(b);
        Value lane = arith::RemUIOp::create(b, tid, indexConst(b, kWarpSize));
        Value warp = arith::DivUIOp::create(b, tid, indexConst(b, kWarpSize));
        Value tokens = dim(b, mask, 1);
        Value rows = muli(b, dim(b, mask, 0), tokens);
        Value start = load(b, offsets, {e});
        forRangeAcc(b, zero(b),
                    arith::CeilDivUIOp::create(b, rows, indexConst(b, threads)),
                    {start}, [&](LoopBuilder &b, Value chunk, ValueRange acc) {
                      ChunkRow row = chunkRow(b, chunk, tid, rows, threads);
                      Value in = row.inBounds, at = row.clamped;
                      SmallVector<Value> idx = {
                          arith::DivUIOp::create(b, at, tokens),
                          arith::RemUIOp::create(b, at, tokens), e};
                      Value on = andi(b, in, load(b, mask, idx));
                      Value flag =
                          arith::ExtUIOp::create(b, b.getI32Type(), on);
                      auto [before, total] = blockExclusiveScan(
                          b, flag, lane, warp, workgroup[0], workgroup[1], 0);
                      Value taken = before;
                      ifThen(b, on, [&](LoopBuilder &b) {
                        Value pos = i32ToIndex(b, addi(b, acc[0], taken));
                        store(b, indexToI32(b, at), ids, {pos});
                        store(b, load(b, gates, idx), weights, {pos});
                      });
                      gpu::BarrierOp::create(b);
                      return SmallVector<Value>{addi(b, acc[0], total)};
                    });
      },
      scanBuffers);
  return kernels;
}

gpu::GPUFuncOp gpu_kernels::buildSelectGivenKernel(
    OpBuilder &builder, Location loc, StringRef name, MemRefType idsType,
    MemRefType weightsType, MemRefType gatesType, MemRefType maskType) {
  const int64_t experts = gatesType.getDimSize(2);
  return buildKernel(
      builder, loc, name, {idsType, weightsType, gatesType, maskType},
      int32_t(kColumnBlock),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value>) {
        Value ids = args[0], weights = args[1], gates = args[2], mask = args[3];
        Value r = addi(b, muli(b, blockId(b), indexConst(b, kColumnBlock)),
                       threadId(b));
        ifThen(b, cmpi(b, CmpIPredicate::ult, r, dim(b, ids, 0)),
               [&](LoopBuilder &b) {
                 emitGivenRow(b, ids, weights, gates, mask, r, experts,
                              /*checked=*/false);
               });
      });
}

gpu::GPUFuncOp gpu_kernels::buildDispatchKernel(OpBuilder &builder,
                                                Location loc, StringRef name,
                                                MemRefType hiddenType,
                                                MemRefType idsType,
                                                MemRefType outType) {
  return buildKernel(
      builder, loc, name, {hiddenType, idsType, outType}, int32_t(kRowBlock),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value>) {
        Value hidden = args[0], ids = args[1], out = args[2];
        Value m = blockId(b);
        Value g = i32ToIndex(b, load(b, ids, {m}));
        forStrided(b, threadId(b), dim(b, hidden, 1), indexConst(b, kRowBlock),
                   [&](LoopBuilder &b, Value d) {
                     store(b, load(b, hidden, {g, d}), out, {m, d});
                   });
      });
}

gpu::GPUFuncOp gpu_kernels::buildCombineKernel(
    OpBuilder &builder, Location loc, StringRef name, MemRefType outType,
    MemRefType idsType, MemRefType weightsType, MemRefType offsetsType,
    MemRefType initType, MemRefType resultType) {
  return buildKernel(
      builder, loc, name,
      {outType, idsType, weightsType, offsetsType, initType, resultType},
      int32_t(kRowBlock),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value>) {
        Value expertOut = args[0], ids = args[1], weights = args[2],
              offsets = args[3], init = args[4], result = args[5];
        const int64_t experts = offsetsType.getDimSize(0) - 1;
        Type element = resultType.getElementType();
        Value g = blockId(b);
        Value gI32 = indexToI32(b, g);
        forStrided(
            b, threadId(b), dim(b, init, 1), indexConst(b, kRowBlock),
            [&](LoopBuilder &b, Value d) {
              Value acc = loadAsF32(b, init, {g, d});
              acc = forRangeAcc(
                  b, zero(b), indexConst(b, experts), {acc},
                  [&](LoopBuilder &b, Value e, ValueRange a) {
                    // Lower bound of g in ids[offsets[e] .. offsets[e + 1]).
                    Value lo = i32ToIndex(b, load(b, offsets, {e}));
                    Value hi = i32ToIndex(
                        b, load(b, offsets, {addi(b, e, indexConst(b, 1))}));
                    Value m =
                        lowerBound(b, lo, hi, [&](LoopBuilder &b, Value mid) {
                          return cmpi(b, CmpIPredicate::slt,
                                      load(b, ids, {mid}), gI32);
                        });
                    Value at = arith::MinUIOp::create(
                        b, m,
                        subi(b, arith::MaxUIOp::create(b, hi, indexConst(b, 1)),
                             indexConst(b, 1)));
                    Value found = andi(
                        b, cmpi(b, CmpIPredicate::ult, m, hi),
                        cmpi(b, CmpIPredicate::eq, load(b, ids, {at}), gI32));
                    Value term = mulf(b, load(b, weights, {at}),
                                      loadAsF32(b, expertOut, {at, d}));
                    return SmallVector<Value>{
                        select(b, found, addf(b, a[0], term), a[0])};
                  })[0];
              Value v = element.isF32()
                            ? acc
                            : arith::TruncFOp::create(b, element, acc);
              store(b, v, result, {g, d});
            });
      });
}
