//===- WarpReduce.h - warp-wide reductions with gpu.shuffle ---*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_MOETOGPU_WARPREDUCE_H
#define USMOE_LIB_CONVERSION_MOETOGPU_WARPREDUCE_H

#include "Conversion/Common/LoopBuilder.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"

namespace mlir::usmoe::gpu_kernels {

using loops::LoopBuilder;

/// NVIDIA warps are 32 lanes wide; kept in one place for other targets.
inline constexpr int32_t kWarpSize = 32;
/// Elements per vector load of a row (16 bytes of f32).
inline constexpr int64_t kVectorWidth = 4;

/// gpu.shuffle moves 32-bit values: an i64 goes as its two halves.
inline Value shuffle(LoopBuilder &b, Value v, Value offset,
                     gpu::ShuffleMode mode) {
  Value width = loops::i32Const(b, kWarpSize);
  if (!v.getType().isInteger(64))
    return gpu::ShuffleOp::create(b, v, offset, width, mode).getShuffleResult();
  Type i32 = b.getI32Type(), i64 = b.getI64Type();
  Value high32 = arith::ConstantIntOp::create(b, i64, 32);
  auto move = [&](Value half) -> Value {
    Value moved =
        gpu::ShuffleOp::create(b, arith::TruncIOp::create(b, i32, half), offset,
                               width, mode)
            .getShuffleResult();
    return arith::ExtUIOp::create(b, i64, moved);
  };
  Value low = move(v);
  Value high = move(arith::ShRUIOp::create(b, v, high32));
  return loops::ori(b, arith::ShLIOp::create(b, high, high32), low);
}

inline Value shuffleXor(LoopBuilder &b, Value v, int32_t offset) {
  return shuffle(b, v, loops::i32Const(b, offset), gpu::ShuffleMode::XOR);
}

inline Value shuffleIdx(LoopBuilder &b, Value v, Value lane) {
  return shuffle(b, v, lane, gpu::ShuffleMode::IDX);
}

/// Butterfly all-reduce: every lane ends with `combine` over the lanes of
/// its segment of `width` lanes (a power of two dividing the warp: the xor
/// offsets stay inside aligned segments; the whole warp by default).
/// Exact for max and integer sums; a float sum may differ between lanes
/// in the last ulp.
inline Value
warpAllReduce(LoopBuilder &b, Value v,
              function_ref<Value(LoopBuilder &, Value, Value)> combine,
              int32_t width = kWarpSize) {
  for (int32_t offset = width / 2; offset > 0; offset /= 2)
    v = combine(b, v, shuffleXor(b, v, offset));
  return v;
}

inline Value warpMax(LoopBuilder &b, Value v, int32_t width = kWarpSize) {
  return warpAllReduce(
      b, v,
      [](LoopBuilder &b, Value x, Value y) -> Value {
        return arith::MaximumFOp::create(b, x, y);
      },
      width);
}

/// The sum of an i64 over the lanes of a segment of `width` lanes, in every
/// lane (integer sums are exact in any order).
inline Value warpSumI64(LoopBuilder &b, Value v, int32_t width = kWarpSize) {
  return warpAllReduce(
      b, v,
      [](LoopBuilder &b, Value x, Value y) { return loops::addi(b, x, y); },
      width);
}

/// Arg-max over (unsigned key, index) pairs of the lanes of a segment of
/// `width` lanes: larger key first, then the lower index. A total order, so
/// every lane of the segment ends with the same pair.
inline std::pair<Value, Value>
warpArgMax(LoopBuilder &b, Value key, Value index, int32_t width = kWarpSize) {
  for (int32_t offset = width / 2; offset > 0; offset /= 2) {
    Value otherKey = shuffleXor(b, key, offset);
    Value otherIndex = shuffleXor(b, index, offset);
    Value better = loops::ori(
        b, loops::cmpi(b, arith::CmpIPredicate::ugt, otherKey, key),
        loops::andi(
            b, loops::cmpi(b, arith::CmpIPredicate::eq, otherKey, key),
            loops::cmpi(b, arith::CmpIPredicate::slt, otherIndex, index)));
    key = loops::select(b, better, otherKey, key);
    index = loops::select(b, better, otherIndex, index);
  }
  return {key, index};
}

/// `combine` over all threads of a block of `warps` warps, the same bits in
/// every thread: each warp all-reduces, its lane 0 leaves the result in
/// `perWarp` (workgroup memory, one slot per warp), and every thread
/// combines the slots in warp order. Every thread of the block must
/// call it (it synchronizes twice: `perWarp` is free again on return).
inline Value
blockAllReduce(LoopBuilder &b, Value v, Value lane, Value warp, int64_t warps,
               Value perWarp,
               function_ref<Value(LoopBuilder &, Value, Value)> combine) {
  using namespace loops;
  v = warpAllReduce(b, v, combine);
  ifThen(b, cmpi(b, arith::CmpIPredicate::eq, lane, indexConst(b, 0)),
         [&](LoopBuilder &b) { store(b, v, perWarp, {warp}); });
  gpu::BarrierOp::create(b);
  Value total = load(b, perWarp, {indexConst(b, 0)});
  for (int64_t w = 1; w < warps; ++w)
    total = combine(b, total, load(b, perWarp, {indexConst(b, w)}));
  gpu::BarrierOp::create(b);
  return total;
}

/// Inclusive prefix sum of an i32 over the lanes of a warp (shuffle up).
inline Value warpInclusiveScan(LoopBuilder &b, Value v, Value lane) {
  for (int32_t offset = 1; offset < kWarpSize; offset *= 2) {
    Value up =
        gpu::ShuffleOp::create(b, v, offset, kWarpSize, gpu::ShuffleMode::UP)
            .getShuffleResult();
    Value has = loops::cmpi(b, arith::CmpIPredicate::uge, lane,
                            loops::indexConst(b, offset));
    v = loops::addi(b, v, loops::select(b, has, up, loops::i32Const(b, 0)));
  }
  return v;
}

/// Appends `value` from each lane of the warp where `append` holds to
/// `buffer[base + slot]`, reserving the warp's slots with one atomic add on
/// `counter[counterIndex]` (global or shared memory): slots in lane order
/// within the warp, in no particular order between warps. Every lane of
/// the warp must call it.
inline void warpAppend(LoopBuilder &b, Value append, Value value, Value lane,
                       Value counter, Value counterIndex, Value buffer,
                       Value base) {
  using namespace loops;
  Value last = i32Const(b, kWarpSize - 1);
  Value inclusive = warpInclusiveScan(
      b, arith::ExtUIOp::create(b, b.getI32Type(), append), lane);
  Value total = shuffleIdx(b, inclusive, last);
  Value reserves = andi(
      b, cmpi(b, arith::CmpIPredicate::eq, lane, indexConst(b, kWarpSize - 1)),
      cmpi(b, arith::CmpIPredicate::ne, total, i32Const(b, 0)));
  Value reserved =
      ifThenOrZero(b, reserves, b.getI32Type(), [&](LoopBuilder &b) {
        return memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addi, total,
                                           counter, ValueRange{counterIndex})
            .getResult();
      });
  Value first = shuffleIdx(b, reserved, last);
  ifThen(b, append, [&](LoopBuilder &b) {
    Value slot =
        i32ToIndex(b, subi(b, addi(b, first, inclusive), i32Const(b, 1)));
    store(b, value, buffer, {addi(b, base, slot)});
  });
}

/// Exclusive prefix sum of an i32 over all threads of a block, in thread
/// order, and the block's total. `warpTotals` is workgroup memory with one
/// slot per warp of the block (up to 32); the total goes through
/// `scratch[slot]` (workgroup i32s). Every thread of the block must call it (it
/// synchronizes twice); the caller synchronizes again before reusing the
/// scratch memory.
inline std::pair<Value, Value> blockExclusiveScan(LoopBuilder &b, Value v,
                                                  Value lane, Value warp,
                                                  Value warpTotals,
                                                  Value scratch, int64_t slot) {
  using namespace loops;
  const int64_t warps = cast<MemRefType>(warpTotals.getType()).getDimSize(0);
  Value inclusive = warpInclusiveScan(b, v, lane);
  ifThen(b,
         cmpi(b, arith::CmpIPredicate::eq, lane, indexConst(b, kWarpSize - 1)),
         [&](LoopBuilder &b) { store(b, inclusive, warpTotals, {warp}); });
  gpu::BarrierOp::create(b);
  ifThen(b, cmpi(b, arith::CmpIPredicate::eq, warp, indexConst(b, 0)),
         [&](LoopBuilder &b) {
           // Lanes past the block's warps count zero (and read nothing).
           Value ownsSlot =
               cmpi(b, arith::CmpIPredicate::ult, lane, indexConst(b, warps));
           Value total =
               ifThenOrZero(b, ownsSlot, b.getI32Type(), [&](LoopBuilder &b) {
                 return load(b, warpTotals, {lane});
               });
           Value scanned = warpInclusiveScan(b, total, lane);
           // Each lane rewrites only its own slot: no barrier needed here
           // (and none is allowed: only warp 0 takes this branch).
           ifThen(b, ownsSlot, [&](LoopBuilder &b) {
             store(b, subi(b, scanned, total), warpTotals, {lane});
           });
           ifThen(b,
                  cmpi(b, arith::CmpIPredicate::eq, lane,
                       indexConst(b, kWarpSize - 1)),
                  [&](LoopBuilder &b) {
                    store(b, scanned, scratch, {indexConst(b, slot)});
                  });
         });
  gpu::BarrierOp::create(b);
  Value exclusive = addi(b, load(b, warpTotals, {warp}), subi(b, inclusive, v));
  return {exclusive, load(b, scratch, {indexConst(b, slot)})};
}

} // namespace mlir::usmoe::gpu_kernels

#endif // USMOE_LIB_CONVERSION_MOETOGPU_WARPREDUCE_H
