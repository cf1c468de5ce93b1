//===- MultiBlockSelect.cpp - radix select of the best N on every SM ------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A selection set larger than one chunk (kSelectChunk elements: a long
// sequence's T * E pairs, or a long (sequence, expert) column) is split
// over ceil(count / chunk) blocks, so a single sequence fills the chip
// instead of one SM. The launches, all on the same grid except the first:
//
//  (the route's score kernel zeroes the per-set workspace: histogram and
//  done counters, so that takes no launch of its own)
//  histogram  (x4, one per 8-bit digit from the top) each block counts the
//             digits of its chunk's keys that match the prefix chosen so
//             far into a shared histogram and adds it to the set's global
//             one. Once the keys matching the prefix fit the candidate
//             buffer (a quarter of the set), the next pass appends them
//             there as it reads the set, and the passes after it read
//             those few keys instead of recomputing every score (AIR
//             top-k's compaction; see keySource). The last block of the
//             set to finish (a done counter, as in RAFT's AIR top-k) takes
//             the histogram (exchanging it with zeros for the next pass),
//             picks the digit of the N-th best key and stores the longer
//             prefix, the count still to take and the keys matching it.
//             So the threshold never goes through the host. After the fourth
//             digit the last block also fixes the tie rule: if the keys
//             equal to the threshold K are all taken, every index takes
//             them; otherwise it finds, in index order, the index after the
//             last tie to take (a block scan over the set: only when ties
//             straddle the budget, which needs exactly equal scores);
//  mark       every element once: key > K, or key == K before that index,
//             is selected; gates and mask written in place.
//
// Each pass reads its state from the previous pass's slot and writes its
// own, and the global histogram, done and candidate counters are only
// touched with atomics, so the blocks of one launch never race (the
// emulator checks this). Integer counts: the selection is deterministic
// (the candidates' order is not, and nothing depends on it).
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"
#include "WarpReduce.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using namespace mlir::usmoe::gpu_kernels;
using arith::CmpIPredicate;

namespace {

using Words = SelectWorkspace;

/// What a block of the multi-block grid works on: its set, the set's size,
/// its chunk [begin, end) of the set, and the set's workspace offset.
struct BlockSet {
  Value set, count, chunks, chunk, begin, end, base;
  SelectionSet kind;
  Value batch, fixedExpert, numExperts;

  /// Element i of the set as [b, t, e] indices.
  SmallVector<Value> element(LoopBuilder &b, Value i) const {
    if (kind == SelectionSet::Sequence)
      return {batch, arith::DivUIOp::create(b, i, numExperts),
              arith::RemUIOp::create(b, i, numExperts)};
    return {batch, i, fixedExpert};
  }
};

BlockSet blockSet(LoopBuilder &b, Value gates, SelectionSet kind,
                  int64_t experts, int64_t chunkSize) {
  BlockSet s;
  s.kind = kind;
  s.numExperts = indexConst(b, experts);
  Value tokens = dim(b, gates, 1);
  s.count =
      kind == SelectionSet::Sequence ? muli(b, tokens, s.numExperts) : tokens;
  Value chunk = indexConst(b, chunkSize);
  s.chunks = arith::CeilDivUIOp::create(b, s.count, chunk);
  Value block = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  s.set = arith::DivUIOp::create(b, block, s.chunks);
  s.chunk = arith::RemUIOp::create(b, block, s.chunks);
  s.begin = muli(b, s.chunk, chunk);
  s.end = arith::MinUIOp::create(b, addi(b, s.begin, chunk), s.count);
  s.base = muli(b, s.set, indexConst(b, Words::kWords));
  if (kind == SelectionSet::Sequence) {
    s.batch = s.set;
  } else {
    s.batch = arith::DivUIOp::create(b, s.set, s.numExperts);
    s.fixedExpert = arith::RemUIOp::create(b, s.set, s.numExperts);
  }
  return s;
}

Value word(LoopBuilder &b, Value base, int64_t offset) {
  return addi(b, base, indexConst(b, offset));
}

Value atomic(LoopBuilder &b, arith::AtomicRMWKind kind, Value value,
             Value memref, Value index) {
  return memref::AtomicRMWOp::create(b, kind, value, memref, ValueRange{index});
}

/// `cond ? memref[index] : 0` (i32), loading nothing when `cond` is false.
Value loadIf(LoopBuilder &b, Value cond, Value memref, Value index) {
  return ifThenOrZero(b, cond, b.getI32Type(),
                      [&](LoopBuilder &b) { return load(b, memref, {index}); });
}

/// Where a digit pass finds its keys. The pass after the one whose prefix
/// first matches at most `capacity` keys (compaction needs the count
/// before the pass starts: it sizes nothing, but a larger count would
/// overflow the buffer) reads the whole set and appends the matching keys
/// to the set's candidates; the passes after it read only those. At most
/// the second-to-last pass compacts (the last one has no successor). Every
/// block derives the same answer from the counts the earlier passes'
/// last blocks stored, so the choice is uniform over the grid.
struct KeySource {
  Value reads, writes, capacity, base;
};

KeySource keySource(LoopBuilder &b, const BlockSet &s, Value ws, Value pass) {
  KeySource k;
  k.capacity = candidateCapacity(b, s.count);
  k.base = muli(b, s.set, k.capacity);
  Value writer = indexConst(b, kRadixPasses);
  // From the latest eligible pass down, so that the earliest one wins.
  for (int64_t q = kRadixPasses - 3; q >= 0; --q) {
    Value known = cmpi(b, CmpIPredicate::ugt, pass, indexConst(b, q));
    Value matches = loadIf(b, known, ws, word(b, s.base, Words::kMatches + q));
    Value fits =
        andi(b, known,
             cmpi(b, CmpIPredicate::ule, i32ToIndex(b, matches), k.capacity));
    writer = select(b, fits, indexConst(b, q + 1), writer);
  }
  k.reads = cmpi(b, CmpIPredicate::ult, writer, pass);
  k.writes = cmpi(b, CmpIPredicate::eq, writer, pass);
  return k;
}

/// Stores into sharedState[3] the index (in the set) after the
/// `remaining`-th key equal to `threshold` in index order, found by a
/// block-wide scan over the whole set (0 when `remaining` is 0). Every thread
/// of the block must call it; the value is visible to all on return.
/// An element's score at [b, t, e]: read from the gate buffer, or
/// recomputed from the logits (see RecomputedScores).
using ScoreAt = function_ref<Value(LoopBuilder &, ArrayRef<Value>)>;

void storeTieEnd(LoopBuilder &b, const BlockSet &s, ScoreAt scoreAt,
                 Value threshold, Value remaining, Value tid, Value sharedState,
                 Value warpTotals) {
  Value lane = arith::RemUIOp::create(b, tid, indexConst(b, kWarpSize));
  Value warp = arith::DivUIOp::create(b, tid, indexConst(b, kWarpSize));
  Value threads = indexConst(b, kSelectBlock);
  ifThen(b, cmpi(b, CmpIPredicate::eq, tid, indexConst(b, 0)),
         [&](LoopBuilder &b) {
           store(b, i32Const(b, 0), sharedState, {indexConst(b, 3)});
         });
  gpu::BarrierOp::create(b);
  Value chunks = arith::CeilDivUIOp::create(b, s.count, threads);
  forRangeAcc(
      b, indexConst(b, 0), chunks, {i32Const(b, 0)},
      [&](LoopBuilder &b, Value chunk, ValueRange acc) -> SmallVector<Value> {
        Value i = addi(b, muli(b, chunk, threads), tid);
        Value valid = cmpi(b, CmpIPredicate::ult, i, s.count);
        Value at =
            arith::MinUIOp::create(b, i, subi(b, s.count, indexConst(b, 1)));
        Value key = scoreKey(b, scoreAt(b, s.element(b, at)));
        Value tie = andi(b, valid, cmpi(b, CmpIPredicate::eq, key, threshold));
        auto [before, ties] = blockExclusiveScan(
            b, arith::ExtUIOp::create(b, b.getI32Type(), tie), lane, warp,
            warpTotals, sharedState, 2);
        Value last = cmpi(b, CmpIPredicate::eq, addi(b, acc[0], before),
                          subi(b, remaining, i32Const(b, 1)));
        ifThen(b, andi(b, tie, last), [&](LoopBuilder &b) {
          store(b, indexToI32(b, addi(b, i, indexConst(b, 1))), sharedState,
                {indexConst(b, 3)});
        });
        gpu::BarrierOp::create(b);
        return {addi(b, acc[0], ties)};
      });
}

} // namespace

MultiBlockSelectKernels gpu_kernels::buildMultiBlockSelectKernels(
    OpBuilder &builder, Location loc, StringRef name, MemRefType gatesType,
    MemRefType maskType, SelectionSet kind, const ModelOptions &model,
    int64_t chunkSize, std::optional<PlanCountTypes> plan,
    std::optional<RecomputedScores> recompute) {
  MLIRContext *ctx = builder.getContext();
  const int64_t experts = gatesType.getDimSize(2);
  MemRefType workspaceType = wordBufferType(ctx);
  MultiBlockSelectKernels kernels;
  ScoreSource source{recompute, model};
  const size_t sourceArgs = source.numArgs();

  // histogram([logits, stats,] gates, workspace, budget, pass); with
  // recomputed scores `gates` is not an argument.
  SmallVector<Type> histBuffers = {
      workgroupBuffer(ctx, kRadixBins), workgroupBuffer(ctx, 4),
      workgroupBuffer(ctx, kSelectBlock / kWarpSize)};
  SmallVector<Type> histArgs = source.argTypes(ctx);
  if (!recompute)
    histArgs.push_back(gatesType);
  histArgs.append({workspaceType, workspaceType, builder.getIndexType(),
                   builder.getIndexType()});
  kernels.histogram = buildKernel(
      builder, loc, (name + "_histogram").str(), histArgs,
      int32_t(kSelectBlock),
      [&](LoopBuilder &b, ArrayRef<Value> allArgs, ArrayRef<Value> shared) {
        // Without recomputed scores the gates follow the source's (none).
        Value gates = recompute ? Value() : allArgs[sourceArgs];
        auto scoreAt = [&](LoopBuilder &b, ArrayRef<Value> idx) {
          return source.scoreAt(b, allArgs, gates, idx);
        };
        ArrayRef<Value> args =
            allArgs.drop_front(sourceArgs + (recompute ? 0 : 1));
        Value ws = args[0], candidates = args[1], budget = args[2],
              pass = args[3];
        Value hist = shared[0], state = shared[1], warpTotals = shared[2];
        Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
        Value zero = indexConst(b, 0);
        // The logits have the gates' [B, T, E] shape.
        BlockSet s = blockSet(b, recompute ? allArgs[0] : gates, kind, experts,
                              chunkSize);

        // The prefix chosen by the earlier passes (slot pass - 1), the mask
        // of its bits, this pass's digit position.
        Value first = cmpi(b, CmpIPredicate::eq, pass, zero);
        Value prevSlot =
            addi(b, word(b, s.base, Words::kState),
                 muli(b,
                      subi(b, arith::MaxUIOp::create(b, pass, indexConst(b, 1)),
                           indexConst(b, 1)),
                      indexConst(b, 2)));
        // Pass 0 reads no slot: its own last block writes slot 0.
        Value later = notI1(b, first);
        Value prefix = loadIf(b, later, ws, prevSlot);
        Value remaining =
            select(b, first, indexToI32(b, budget),
                   loadIf(b, later, ws, addi(b, prevSlot, indexConst(b, 1))));
        Value bitsDone = muli(b, indexToI32(b, pass), i32Const(b, 8));
        Value prefixMask = arith::XOrIOp::create(
            b, arith::ShRUIOp::create(b, i32Const(b, -1), bitsDone),
            i32Const(b, -1));
        Value shift = subi(b, i32Const(b, 24), bitsDone);

        ifThen(b, cmpi(b, CmpIPredicate::ult, tid, indexConst(b, kRadixBins)),
               [&](LoopBuilder &b) { store(b, i32Const(b, 0), hist, {tid}); });
        gpu::BarrierOp::create(b);
        auto matchesPrefix = [&](LoopBuilder &b, Value key) {
          return cmpi(b, CmpIPredicate::eq, andi(b, key, prefixMask), prefix);
        };
        auto countDigit = [&](LoopBuilder &b, Value key) {
          Value digit = andi(b, arith::ShRUIOp::create(b, key, shift),
                             i32Const(b, kRadixBins - 1));
          atomic(b, arith::AtomicRMWKind::addi, i32Const(b, 1), hist,
                 i32ToIndex(b, digit));
        };
        KeySource keys = keySource(b, s, ws, pass);
        Value threads = indexConst(b, kSelectBlock);
        ifThenElse(
            b, keys.reads,
            [&](LoopBuilder &b) {
              // The set's candidates, split evenly over its blocks.
              Value n = i32ToIndex(
                  b, load(b, ws, {word(b, s.base, Words::kCandidates)}));
              Value share = arith::CeilDivUIOp::create(b, n, s.chunks);
              Value begin =
                  arith::MinUIOp::create(b, muli(b, s.chunk, share), n);
              Value end = arith::MinUIOp::create(b, addi(b, begin, share), n);
              forStrided(b, addi(b, begin, tid), end, threads,
                         [&](LoopBuilder &b, Value j) {
                           Value key =
                               load(b, candidates, {addi(b, keys.base, j)});
                           ifThen(b, matchesPrefix(b, key),
                                  [&](LoopBuilder &b) { countDigit(b, key); });
                         });
            },
            [&](LoopBuilder &b) {
              // The whole chunk, in rounds that every lane of a warp runs
              // (the compaction's warp scan needs them all).
              Value lane =
                  arith::RemUIOp::create(b, tid, indexConst(b, kWarpSize));
              Value last = subi(b, s.end, indexConst(b, 1));
              Value rounds = arith::CeilDivUIOp::create(
                  b, subi(b, s.end, s.begin), threads);
              forRange(
                  b, indexConst(b, 0), rounds, [&](LoopBuilder &b, Value r) {
                    Value i =
                        addi(b, addi(b, s.begin, muli(b, r, threads)), tid);
                    Value valid = cmpi(b, CmpIPredicate::ult, i, s.end);
                    Value at = arith::MinUIOp::create(b, i, last);
                    Value key = scoreKey(b, scoreAt(b, s.element(b, at)));
                    Value match = andi(b, valid, matchesPrefix(b, key));
                    ifThen(b, match,
                           [&](LoopBuilder &b) { countDigit(b, key); });
                    ifThen(b, keys.writes, [&](LoopBuilder &b) {
                      warpAppend(b, match, key, lane, ws,
                                 word(b, s.base, Words::kCandidates),
                                 candidates, keys.base);
                    });
                  });
            });
        gpu::BarrierOp::create(b);
        // The block's counts into the set's histogram.
        ifThen(b, cmpi(b, CmpIPredicate::ult, tid, indexConst(b, kRadixBins)),
               [&](LoopBuilder &b) {
                 Value c = load(b, hist, {tid});
                 ifThen(b, cmpi(b, CmpIPredicate::ne, c, i32Const(b, 0)),
                        [&](LoopBuilder &b) {
                          atomic(b, arith::AtomicRMWKind::addi, c, ws,
                                 word(b, addi(b, s.base, tid), Words::kHist));
                        });
               });
        gpu::BarrierOp::create(b);
        ifThen(b, cmpi(b, CmpIPredicate::eq, tid, zero), [&](LoopBuilder &b) {
          fenceDevice(b);
          Value done = atomic(b, arith::AtomicRMWKind::addi, i32Const(b, 1), ws,
                              addi(b, word(b, s.base, Words::kCounters), pass));
          fenceDevice(b);
          Value last = cmpi(b, CmpIPredicate::eq, done,
                            indexToI32(b, subi(b, s.chunks, indexConst(b, 1))));
          store(b, arith::ExtUIOp::create(b, b.getI32Type(), last), state,
                {indexConst(b, 0)});
        });
        gpu::BarrierOp::create(b);
        Value isLast = cmpi(b, CmpIPredicate::ne,
                            load(b, state, {indexConst(b, 0)}), i32Const(b, 0));
        // Uniform per block: the barriers inside are reached by all threads.
        ifThen(b, isLast, [&](LoopBuilder &b) {
          gpu::BarrierOp::create(b);
          ifThen(b, cmpi(b, CmpIPredicate::ult, tid, indexConst(b, kRadixBins)),
                 [&](LoopBuilder &b) {
                   Value c =
                       atomic(b, arith::AtomicRMWKind::assign, i32Const(b, 0),
                              ws, word(b, addi(b, s.base, tid), Words::kHist));
                   store(b, c, hist, {tid});
                 });
          gpu::BarrierOp::create(b);
          ifThen(b, cmpi(b, CmpIPredicate::eq, tid, zero), [&](LoopBuilder &b) {
            auto [digit, left] = pickDigit(b, hist, remaining);
            Value chosen =
                ori(b, prefix, arith::ShLIOp::create(b, digit, shift));
            Value slot = addi(b, word(b, s.base, Words::kState),
                              muli(b, pass, indexConst(b, 2)));
            store(b, chosen, ws, {slot});
            store(b, left, ws, {addi(b, slot, indexConst(b, 1))});
            store(b, chosen, state, {indexConst(b, 0)});
            store(b, left, state, {indexConst(b, 1)});
            // Keys equal to the chosen prefix (after the last digit, the
            // ties at the threshold), which also tells the next passes
            // whether they fit the candidate buffer.
            Value matching = load(b, hist, {i32ToIndex(b, digit)});
            store(b, matching, state, {indexConst(b, 2)});
            store(b, matching, ws,
                  {addi(b, word(b, s.base, Words::kMatches), pass)});
          });
          gpu::BarrierOp::create(b);
          Value threshold = load(b, state, {indexConst(b, 0)});
          Value left = load(b, state, {indexConst(b, 1)});
          Value ties = load(b, state, {indexConst(b, 2)});
          gpu::BarrierOp::create(b);
          Value lastPass =
              cmpi(b, CmpIPredicate::eq, pass, indexConst(b, kRadixPasses - 1));
          ifThen(b, lastPass, [&](LoopBuilder &b) {
            Value allTies = cmpi(b, CmpIPredicate::eq, ties, left);
            // The index bound lands in state[3] (read by thread 0 only).
            ifThenElse(
                b, allTies,
                [&](LoopBuilder &b) {
                  ifThen(b, cmpi(b, CmpIPredicate::eq, tid, zero),
                         [&](LoopBuilder &b) {
                           store(b, indexToI32(b, s.count), state,
                                 {indexConst(b, 3)});
                         });
                },
                [&](LoopBuilder &b) {
                  storeTieEnd(b, s, scoreAt, threshold, left, tid, state,
                              warpTotals);
                });
            ifThen(b, cmpi(b, CmpIPredicate::eq, tid, zero),
                   [&](LoopBuilder &b) {
                     store(b, load(b, state, {indexConst(b, 3)}), ws,
                           {word(b, s.base, Words::kTieEnd)});
                   });
          });
        });
      },
      histBuffers);
  // 64 registers is what a 1024-thread block may use; left alone, ptxas
  // aims at two blocks an SM (32) and spilled (Expert Choice, sm_90).
  kernels.histogram->setAttr("nvvm.maxnreg", builder.getI32IntegerAttr(64));

  // mark([logits, stats,] gates, mask, workspace[, counts, starts,
  // offsets]): the selection, in place (counted for the plan when B * T
  // spans several tiles).
  SmallVector<Type> markArgs = source.argTypes(ctx);
  markArgs.append({gatesType, maskType, workspaceType});
  SmallVector<Type> markBuffers;
  if (plan) {
    markArgs.append({plan->counts, plan->starts, plan->offsets});
    markBuffers = {workgroupBuffer(ctx, kSelectBlock / kWarpSize),
                   workgroupBuffer(ctx, 1), workgroupBuffer(ctx, 1)};
  }
  kernels.mark = buildKernel(
      builder, loc, (name + "_mark").str(), markArgs, int32_t(kSelectBlock),
      [&](LoopBuilder &b, ArrayRef<Value> allArgs, ArrayRef<Value> shared) {
        ArrayRef<Value> args = allArgs.drop_front(sourceArgs);
        Value gates = args[0], mask = args[1], ws = args[2];
        Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
        BlockSet s = blockSet(b, gates, kind, experts, chunkSize);
        Value threshold = load(
            b, ws, {word(b, s.base, Words::kState + 2 * (kRadixPasses - 1))});
        Value end =
            i32ToIndex(b, load(b, ws, {word(b, s.base, Words::kTieEnd)}));
        std::optional<PlanCounter> counter;
        if (plan)
          counter.emplace(b, gates, args[3], args[4], args[5]);
        forStrided(
            b, addi(b, s.begin, tid), s.end, indexConst(b, kSelectBlock),
            [&](LoopBuilder &b, Value i) {
              SmallVector<Value> idx = s.element(b, i);
              Value gate = source.scoreAt(b, allArgs, gates, idx);
              Value key = scoreKey(b, gate);
              Value on = ori(b, cmpi(b, CmpIPredicate::ugt, key, threshold),
                             andi(b, cmpi(b, CmpIPredicate::eq, key, threshold),
                                  cmpi(b, CmpIPredicate::ult, i, end)));
              store(b, on, mask, idx);
              store(b, select(b, on, model.gate(b, gate), f32Const(b, 0.0)),
                    gates, idx);
              if (counter)
                counter->count(b, on, idx);
            });
        if (counter)
          counter->scanIfLast(b, kSelectBlock, shared);
      },
      markBuffers);
  return kernels;
}
