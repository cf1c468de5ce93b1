//===- ExpertChoiceByRows.cpp - small-capacity Expert Choice, row-wise ----===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Expert Choice with capacity C <= kRowWiseCapacity (short sequences: C = 1
// whenever T * k <= E) walked the way the scores lie: token by token, a
// block of experts side by side, each with its running top-C in scratch
// memory. Walking each (sequence, expert) column instead reads one score
// per cache line (stride E) and cannot be vectorized; here every step is a
// contiguous, branch-free update LLVM vectorizes across the block.
//
//===----------------------------------------------------------------------===//

#include "RoutingKernels.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using arith::CmpIPredicate;

namespace {

/// Experts one task keeps running top-C's for: one AVX-512 vector of f32
/// (fewer when E is smaller), and E / 16 tasks per sequence to share out.
constexpr int64_t kExpertsPerTask = 16;

/// The running top-`slots` of every expert of a block, slot-major (slot s
/// of block expert j at s * width + j: a row's update is contiguous in j).
struct BlockState {
  Value keys, ids, task;
  int64_t slots, width;

  Value at(LoopBuilder &b, Value slot, Value j) const {
    return addi(b, muli(b, slot, indexConst(b, width)), j);
  }
};

/// Inserts (key, id) into expert j's running top-`slots` (insertSorted on
/// the state in memory).
void insertBranchFree(LoopBuilder &b, const BlockState &state, Value j,
                      Value key, Value id) {
  SmallVector<Value> best(2 * state.slots);
  for (int64_t s = 0; s < state.slots; ++s) {
    Value at = state.at(b, indexConst(b, s), j);
    best[s] = load(b, state.keys, {state.task, at});
    best[state.slots + s] = load(b, state.ids, {state.task, at});
  }
  SmallVector<Value> next = insertSorted(b, best, key, id);
  for (int64_t s = 0; s < state.slots; ++s) {
    Value at = state.at(b, indexConst(b, s), j);
    store(b, next[s], state.keys, {state.task, at});
    store(b, next[state.slots + s], state.ids, {state.task, at});
  }
}

/// Expert Choice of `count` (1 <= count <= slots, or any count when T = 0)
/// tokens per (sequence, expert) with running top-`slots` state.
void emitWithSlots(LoopBuilder &b, Value gates, Value mask, Value count,
                   int64_t slots, const ModelOptions &model) {
  Value zero = indexConst(b, 0);
  Value sequences = dim(b, gates, 0), tokens = dim(b, gates, 1);
  int64_t experts = numExperts(gates);
  int64_t width = std::min(experts, kExpertsPerTask);
  Value blocks = indexConst(b, llvm::divideCeil(experts, width));
  auto stateType =
      MemRefType::get({ShapedType::kDynamic, slots * width}, b.getI32Type());
  Value tasks = muli(b, sequences, blocks);
  Value keys = alloc(b, stateType, {tasks}), ids = alloc(b, stateType, {tasks});
  // The threshold is slot count - 1: every expert takes the tokens ranked
  // at or before it (a greater key, or the same key no later).
  Value last = subi(b, count, indexConst(b, 1));
  forParallel2D(
      b, sequences, blocks,
      muli(b, muli(b, sequences, tokens), indexConst(b, experts)),
      [&](LoopBuilder &b, Value bi, Value block) {
        BlockState state{keys, ids, addi(b, muli(b, bi, blocks), block), slots,
                         width};
        Value e0 = muli(b, block, indexConst(b, width));
        Value n = arith::MinUIOp::create(b, indexConst(b, width),
                                         subi(b, indexConst(b, experts), e0));
        // Keys 0 are below every real key (-inf's is 0x007FFFFF).
        forRange(b, zero, indexConst(b, slots * width),
                 [&](LoopBuilder &b, Value i) {
                   store(b, i32Const(b, 0), keys, {state.task, i});
                   store(b, i32Const(b, -1), ids, {state.task, i});
                 });
        forRange(b, zero, tokens, [&](LoopBuilder &b, Value ti) {
          Value id = indexToI32(b, ti);
          forRange(b, zero, n, [&](LoopBuilder &b, Value j) {
            Value key = scoreKey(b, load(b, gates, {bi, ti, addi(b, e0, j)}));
            insertBranchFree(b, state, j, key, id);
          });
        });
        forRange(b, zero, tokens, [&](LoopBuilder &b, Value ti) {
          Value id = indexToI32(b, ti);
          forRange(b, zero, n, [&](LoopBuilder &b, Value j) {
            Value at = state.at(b, last, j);
            Value thresholdKey = load(b, keys, {state.task, at});
            Value thresholdAt = load(b, ids, {state.task, at});
            Value ei = addi(b, e0, j);
            Value gate = load(b, gates, {bi, ti, ei});
            Value key = scoreKey(b, gate);
            Value on = rankedAtOrBefore(b, key, id, thresholdKey, thresholdAt);
            storeSelection(b, gates, mask, {bi, ti, ei}, gate, on, model);
          });
        });
      });
}

} // namespace

void loops::emitExpertChoiceByRows(LoopBuilder &b, Value gates, Value mask,
                                   Value capacity, const ModelOptions &model) {
  // A fixed capacity takes the fewest slots that hold it (each slot more
  // costs every step). A run-time one picks among 1, 8 and 32 slots: each
  // variant is a large vectorized loop nest to compile (every slot count
  // of 1, 2, 4 ... 32 made a router's JIT compile 2 s longer).
  if (std::optional<int64_t> fixed = getConstantIntValue(capacity))
    return emitWithSlots(
        b, gates, mask, capacity,
        int64_t(llvm::PowerOf2Ceil(std::max<int64_t>(*fixed, 1))), model);
  std::function<void(LoopBuilder &, int64_t)> bySlots = [&](LoopBuilder &b,
                                                            int64_t slots) {
    if (slots >= kRowWiseCapacity)
      return emitWithSlots(b, gates, mask, capacity, kRowWiseCapacity, model);
    ifThenElse(
        b, cmpi(b, CmpIPredicate::ule, capacity, indexConst(b, slots)),
        [&](LoopBuilder &b) {
          emitWithSlots(b, gates, mask, capacity, slots, model);
        },
        [&](LoopBuilder &b) { bySlots(b, slots * 8); });
  };
  bySlots(b, 1);
}
