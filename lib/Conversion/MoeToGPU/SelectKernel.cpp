//===- SelectKernel.cpp - block-wide radix select of the best N -----------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// One 1024-thread block per selection set (a sequence's T * E pairs for
// Unified, a (sequence, expert) column of T tokens for Expert Choice). The
// scores come from the gate buffer or are recomputed from the logits and
// the rows' softmax statistics (RecomputedScores); the gates go to the gate
// buffer.
//
//  1. radix select, 4 passes of 8 bits: a 256-bin histogram in shared memory
//     (integer atomics: the counts, hence the result, are deterministic);
//     thread 0 scans it from the top for the bin of the N-th best key;
//  2. selection in index-order chunks of 1024: every key > K is selected;
//     keys == K are ranked by a block-wide prefix count (warp shuffle-up
//     scans + per-warp totals) so that exactly the first `remaining` ties in
//     index order are taken, as the spec demands.
//
//===----------------------------------------------------------------------===//

#include "Conversion/Common/RoutingMath.h"
#include "Kernels.h"
#include "WarpReduce.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using namespace mlir::usmoe::gpu_kernels;
using arith::CmpIPredicate;

namespace {

constexpr int64_t kThreads = kSelectBlock;
constexpr int64_t kWarps = kSelectBlock / kWarpSize;

} // namespace

std::pair<Value, Value> gpu_kernels::pickDigit(LoopBuilder &b, Value hist,
                                               Value remaining) {
  SmallVector<Value> scan = forRangeAcc(
      b, indexConst(b, 0), indexConst(b, kRadixBins),
      {i32Const(b, 0), i1Const(b, false), i32Const(b, 0), remaining},
      [&](LoopBuilder &b, Value i, ValueRange acc) {
        Value d = subi(b, indexConst(b, kRadixBins - 1), i);
        Value newCum = addi(b, acc[0], load(b, hist, {d}));
        Value hit = andi(b, notI1(b, acc[1]),
                         cmpi(b, CmpIPredicate::sge, newCum, remaining));
        return SmallVector<Value>{
            newCum, ori(b, acc[1], hit),
            select(b, hit, indexToI32(b, d), acc[2]),
            select(b, hit, subi(b, remaining, acc[0]), acc[3])};
      });
  return {scan[2], scan[3]};
}

MemRefType gpu_kernels::workgroupBuffer(MLIRContext *ctx, int64_t size) {
  return MemRefType::get(
      {size}, IntegerType::get(ctx, 32), MemRefLayoutAttrInterface(),
      gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup));
}

gpu::GPUFuncOp
gpu_kernels::buildSelectKernel(OpBuilder &builder, Location loc, StringRef name,
                               MemRefType gatesType, MemRefType maskType,
                               SelectionSet set, const ModelOptions &model,
                               MemRefType seqlensType, SetBudgetFn budgetOf,
                               std::optional<PlanCountTypes> plan,
                               std::optional<RecomputedScores> recompute) {
  MLIRContext *ctx = builder.getContext();
  const int64_t experts = gatesType.getDimSize(2);
  assert(!(plan && seqlensType) && "a packed batch's plan is not budgeted");
  SmallVector<Type> workgroup = {workgroupBuffer(ctx, 256),
                                 workgroupBuffer(ctx, 4),
                                 workgroupBuffer(ctx, kWarps)};
  Type third = seqlensType ? Type(seqlensType) : builder.getIndexType();
  ScoreSource source{recompute, model};
  SmallVector<Type> argTypes = source.argTypes(ctx);
  argTypes.append({gatesType, maskType, third});
  if (plan)
    argTypes.append({plan->counts, plan->starts, plan->offsets});
  return buildKernel(
      builder, loc, name, argTypes, int32_t(kThreads),
      [&](LoopBuilder &b, ArrayRef<Value> allArgs, ArrayRef<Value> buffers) {
        ArrayRef<Value> args = allArgs.drop_front(source.numArgs());
        Value gates = args[0], mask = args[1];
        // An element's score: from the gate buffer, or recomputed.
        auto scoreAt = [&](LoopBuilder &b, ArrayRef<Value> idx) {
          return source.scoreAt(b, allArgs, gates, idx);
        };
        std::optional<PlanCounter> counter;
        if (plan)
          counter.emplace(b, gates, args[3], args[4], args[5]);
        Value hist = buffers[0], shared = buffers[1], warpTotals = buffers[2];

        Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
        Value setId = gpu::BlockIdOp::create(b, gpu::Dimension::x);
        Value lane = arith::RemUIOp::create(b, tid, indexConst(b, kWarpSize));
        Value warp = arith::DivUIOp::create(b, tid, indexConst(b, kWarpSize));
        Value numExperts = indexConst(b, experts);
        Value zero = indexConst(b, 0), threads = indexConst(b, kThreads);

        // This block's sequence (a batch index, or a packed sequence whose
        // rows start at `first`), its T and budget, and the set size.
        Value sequence = set == SelectionSet::Sequence
                             ? setId
                             : arith::DivUIOp::create(b, setId, numExperts);
        Value seq = sequence, first = zero, tokens, budget;
        if (seqlensType) {
          Value seqlens = args[2];
          first = i32ToIndex(b, load(b, seqlens, {sequence}));
          Value end = i32ToIndex(
              b, load(b, seqlens, {addi(b, sequence, indexConst(b, 1))}));
          tokens = subi(b, end, first);
          seq = zero;
          budget = budgetOf(b, tokens);
        } else {
          tokens = dim(b, gates, 1);
          budget = args[2];
        }
        Value count, fixedExpert;
        if (set == SelectionSet::Sequence) {
          count = muli(b, tokens, numExperts);
        } else {
          fixedExpert = arith::RemUIOp::create(b, setId, numExperts);
          count = tokens;
        }
        // Element i of the set, as [b, t, e] indices.
        auto element = [&](LoopBuilder &b, Value i) -> SmallVector<Value> {
          if (set == SelectionSet::Sequence)
            return {seq,
                    addi(b, first, arith::DivUIOp::create(b, i, numExperts)),
                    arith::RemUIOp::create(b, i, numExperts)};
          return {seq, addi(b, first, i), fixedExpert};
        };

        // --- 1. Radix select of the key K of the budget-th best element.
        Value prefix = i32Const(b, 0), prefixMask = i32Const(b, 0);
        Value remaining = indexToI32(b, budget);
        Value isFirst = cmpi(b, CmpIPredicate::eq, tid, zero);
        for (int shift = 24; shift >= 0; shift -= 8) {
          ifThen(
              b, cmpi(b, CmpIPredicate::ult, tid, indexConst(b, 256)),
              [&](LoopBuilder &b) { store(b, i32Const(b, 0), hist, {tid}); });
          gpu::BarrierOp::create(b);
          forStrided(b, tid, count, threads, [&](LoopBuilder &b, Value i) {
            Value key = scoreKey(b, scoreAt(b, element(b, i)));
            Value match =
                cmpi(b, CmpIPredicate::eq, andi(b, key, prefixMask), prefix);
            ifThen(b, match, [&](LoopBuilder &b) {
              Value digit =
                  andi(b, arith::ShRUIOp::create(b, key, i32Const(b, shift)),
                       i32Const(b, 255));
              memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addi,
                                          i32Const(b, 1), hist,
                                          ValueRange{i32ToIndex(b, digit)});
            });
          });
          gpu::BarrierOp::create(b);
          ifThen(b, isFirst, [&](LoopBuilder &b) {
            auto [digit, left] = pickDigit(b, hist, remaining);
            store(b, digit, shared, {indexConst(b, 0)});
            store(b, left, shared, {indexConst(b, 1)});
          });
          gpu::BarrierOp::create(b);
          Value digit = load(b, shared, {indexConst(b, 0)});
          remaining = load(b, shared, {indexConst(b, 1)});
          prefix = ori(b, prefix,
                       arith::ShLIOp::create(b, digit, i32Const(b, shift)));
          prefixMask = ori(b, prefixMask, i32Const(b, int64_t(0xFF) << shift));
        }
        Value threshold = prefix;

        // --- 2. Select in index order; ties ranked by a block-wide prefix
        // count.
        Value chunks = arith::CeilDivUIOp::create(b, count, threads);
        forRangeAcc(
            b, zero, chunks, {i32Const(b, 0)},
            [&](LoopBuilder &b, Value chunk,
                ValueRange acc) -> SmallVector<Value> {
              Value takenBefore = acc[0];
              Value i = addi(b, muli(b, chunk, threads), tid);
              Value valid = cmpi(b, CmpIPredicate::ult, i, count);
              Value at = arith::MinUIOp::create(
                  b, i,
                  subi(b, arith::MaxUIOp::create(b, count, indexConst(b, 1)),
                       indexConst(b, 1)));
              SmallVector<Value> idx = element(b, at);
              Value gate = scoreAt(b, idx);
              Value key = select(b, valid, scoreKey(b, gate), i32Const(b, 0));
              Value above =
                  andi(b, valid, cmpi(b, CmpIPredicate::ugt, key, threshold));
              Value tie =
                  andi(b, valid, cmpi(b, CmpIPredicate::eq, key, threshold));
              Value tieI32 = arith::ExtUIOp::create(b, b.getI32Type(), tie);
              auto [before, chunkTies] = blockExclusiveScan(
                  b, tieI32, lane, warp, warpTotals, shared, 2);
              Value rank = addi(b, takenBefore, before);
              Value on = ori(
                  b, above,
                  andi(b, tie, cmpi(b, CmpIPredicate::slt, rank, remaining)));
              ifThen(b, valid, [&](LoopBuilder &b) {
                store(b, on, mask, idx);
                store(b, select(b, on, model.gate(b, gate), f32Const(b, 0.0)),
                      gates, idx);
                if (counter)
                  counter->count(b, on, idx);
              });
              gpu::BarrierOp::create(b);
              return {addi(b, takenBefore, chunkTies)};
            });
        if (counter)
          counter->scanIfLast(b, kThreads, {warpTotals, shared, hist});
      },
      workgroup);
}
