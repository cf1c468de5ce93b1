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
//     thread 0 scans it from the top for the bin of the N-th best key. The
//     keys are computed once where they fit in shared memory: a set of at
//     most kSharedKeys elements keeps every key there (by index) from the
//     first pass on; a larger one appends the keys matching the prefix once
//     they fit (as the spread select does in global memory), and the later
//     passes read those. So a score is recomputed from its logit once, or
//     in three passes of five, not in every pass;
//  2. selection in index-order chunks of 1024: every key > K is selected;
//     keys == K are ranked by a block-wide prefix count (warp shuffle-up
//     scans + per-warp totals) so that exactly the first `remaining` ties in
//     index order are taken, as the spec demands. With the keys in shared
//     memory only the selected elements recompute their scores (for the
//     gates).
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

/// The block's state words in shared memory.
enum StateWord : int64_t {
  kDigit = 0,     ///< the digit the last pass chose
  kLeft = 1,      ///< keys still to take from that digit
  kScanTotal = 2, ///< a block scan's total (blockExclusiveScan's slot)
  kMatching = 3,  ///< keys matching the prefix chosen so far
  kAppended = 4,  ///< keys appended to the shared keys
  kStateWords = 8
};

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
  // The histogram, the state words, warp totals, the keys.
  SmallVector<Type> workgroup = {
      workgroupBuffer(ctx, kRadixBins), workgroupBuffer(ctx, kStateWords),
      workgroupBuffer(ctx, kWarps), workgroupBuffer(ctx, kSharedKeys)};
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
        Value hist = buffers[0], shared = buffers[1], warpTotals = buffers[2],
              keys = buffers[3];

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
        Value capacity = indexConst(b, kSharedKeys);
        // Every key in shared memory, at its index (uniform per block).
        Value resident = cmpi(b, CmpIPredicate::ule, count, capacity);
        Value appended = i1Const(b, false);
        Value matching = count; // keys matching the prefix so far
        ifThen(b, isFirst, [&](LoopBuilder &b) {
          store(b, i32Const(b, 0), shared, {indexConst(b, kAppended)});
        });
        for (int64_t pass = 0; pass < kRadixPasses; ++pass) {
          const int64_t shift = 8 * (kRadixPasses - 1 - pass);
          // Whether this pass reads the shared keys, or appends to them
          // (at most once, and not in the last pass: nothing reads after).
          Value fromShared =
              pass == 0 ? i1Const(b, false) : ori(b, resident, appended);
          Value appends =
              pass == 0 || pass == kRadixPasses - 1
                  ? i1Const(b, false)
                  : andi(b, notI1(b, fromShared),
                         cmpi(b, CmpIPredicate::ule, matching, capacity));
          ifThen(
              b, cmpi(b, CmpIPredicate::ult, tid, indexConst(b, kRadixBins)),
              [&](LoopBuilder &b) { store(b, i32Const(b, 0), hist, {tid}); });
          gpu::BarrierOp::create(b);
          auto countKey = [&](LoopBuilder &b, Value key, Value valid) {
            Value match = andi(
                b, valid,
                cmpi(b, CmpIPredicate::eq, andi(b, key, prefixMask), prefix));
            ifThen(b, match, [&](LoopBuilder &b) {
              Value digit =
                  andi(b, arith::ShRUIOp::create(b, key, i32Const(b, shift)),
                       i32Const(b, kRadixBins - 1));
              memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addi,
                                          i32Const(b, 1), hist,
                                          ValueRange{i32ToIndex(b, digit)});
            });
            return match;
          };
          ifThenElse(
              b, fromShared,
              [&](LoopBuilder &b) {
                Value n = select(
                    b, resident, count,
                    i32ToIndex(b, load(b, shared, {indexConst(b, kAppended)})));
                forStrided(b, tid, n, threads, [&](LoopBuilder &b, Value j) {
                  countKey(b, load(b, keys, {j}), i1Const(b, true));
                });
              },
              [&](LoopBuilder &b) {
                // In rounds that every lane of a warp runs (the append's
                // warp scan needs them all).
                Value rounds = arith::CeilDivUIOp::create(b, count, threads);
                forRange(b, zero, rounds, [&](LoopBuilder &b, Value r) {
                  Value i = addi(b, muli(b, r, threads), tid);
                  Value valid = cmpi(b, CmpIPredicate::ult, i, count);
                  Value at = arith::MinUIOp::create(
                      b, i, subi(b, count, indexConst(b, 1)));
                  Value key = scoreKey(b, scoreAt(b, element(b, at)));
                  Value match = countKey(b, key, valid);
                  if (pass == 0)
                    ifThen(b, andi(b, resident, valid),
                           [&](LoopBuilder &b) { store(b, key, keys, {i}); });
                  else
                    ifThen(b, appends, [&](LoopBuilder &b) {
                      warpAppend(b, match, key, lane, shared,
                                 indexConst(b, kAppended), keys, zero);
                    });
                });
              });
          appended = ori(b, appended, appends);
          gpu::BarrierOp::create(b);
          ifThen(b, isFirst, [&](LoopBuilder &b) {
            auto [digit, left] = pickDigit(b, hist, remaining);
            store(b, digit, shared, {indexConst(b, kDigit)});
            store(b, left, shared, {indexConst(b, kLeft)});
            store(b, load(b, hist, {i32ToIndex(b, digit)}), shared,
                  {indexConst(b, kMatching)});
          });
          gpu::BarrierOp::create(b);
          Value digit = load(b, shared, {indexConst(b, kDigit)});
          remaining = load(b, shared, {indexConst(b, kLeft)});
          matching = i32ToIndex(b, load(b, shared, {indexConst(b, kMatching)}));
          prefix = ori(b, prefix,
                       arith::ShLIOp::create(b, digit, i32Const(b, shift)));
          prefixMask =
              ori(b, prefixMask, i32Const(b, int64_t(kRadixBins - 1) << shift));
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
              // The key from shared memory, or the score recomputed (and
              // kept for the gate).
              auto source = scf::IfOp::create(
                  b, TypeRange{b.getI32Type(), b.getF32Type()}, resident,
                  /*withElseRegion=*/true);
              {
                OpBuilder::InsertionGuard guard(b);
                b.setInsertionPointToStart(source.thenBlock());
                scf::YieldOp::create(
                    b, ValueRange{load(b, keys, {at}), f32Const(b, 0.0)});
                b.setInsertionPointToStart(source.elseBlock());
                Value score = scoreAt(b, idx);
                scf::YieldOp::create(b, ValueRange{scoreKey(b, score), score});
              }
              Value key = select(b, valid, source.getResult(0), i32Const(b, 0));
              Value above =
                  andi(b, valid, cmpi(b, CmpIPredicate::ugt, key, threshold));
              Value tie =
                  andi(b, valid, cmpi(b, CmpIPredicate::eq, key, threshold));
              Value tieI32 = arith::ExtUIOp::create(b, b.getI32Type(), tie);
              auto [before, chunkTies] = blockExclusiveScan(
                  b, tieI32, lane, warp, warpTotals, shared, kScanTotal);
              Value rank = addi(b, takenBefore, before);
              Value on = ori(
                  b, above,
                  andi(b, tie, cmpi(b, CmpIPredicate::slt, rank, remaining)));
              ifThen(b, valid, [&](LoopBuilder &b) {
                // Resident keys: only the selected recompute their score.
                Value gate =
                    select(b, resident,
                           ifThenOrZero(
                               b, andi(b, resident, on), b.getF32Type(),
                               [&](LoopBuilder &b) { return scoreAt(b, idx); }),
                           source.getResult(1));
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
