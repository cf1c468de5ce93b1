//===- ExpertFfnKernel.cpp - grouped SwiGLU experts, a block per row ------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The simplest correct grouped expert MLP: block m finds the expert of plan
// row m by binary search in the offsets, then
//   threads over f: h[f] = silu(x W1[e][:, f]) * (x W3[e][:, f])  -> scratch
//   barrier
//   threads over d: y[d] = sum_f h[f] W2[e][f, d]
// In the in_out layout consecutive threads read consecutive weight columns
// (coalesced); in out_in they read rows D (or F) elements apart. A GEMV per
// row either way: a grouped-GEMM kernel with tensor cores is future work.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"
#include "WarpReduce.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using namespace mlir::usmoe::gpu_kernels;
using arith::CmpIPredicate;

gpu::GPUFuncOp gpu_kernels::buildExpertFfnKernel(
    OpBuilder &builder, Location loc, StringRef name, MemRefType xType,
    MemRefType offsetsType, MemRefType w1Type, MemRefType w3Type,
    MemRefType w2Type, MemRefType scratchType, MemRefType outType,
    moe::WeightLayout layout) {
  // Weight element (e, d, f) of W1/W3 and (e, f, d) of W2 in `layout`.
  bool inOut = layout == moe::WeightLayout::in_out;
  auto up = [inOut](Value e, Value d, Value f) {
    return inOut ? SmallVector<Value>{e, d, f} : SmallVector<Value>{e, f, d};
  };
  return buildKernel(
      builder, loc, name,
      {xType, offsetsType, w1Type, w3Type, w2Type, scratchType, outType},
      int32_t(kRowBlock),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value>) {
        Value x = args[0], offsets = args[1], w1 = args[2], w3 = args[3],
              w2 = args[4], scratch = args[5], out = args[6];
        Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
        Value m = gpu::BlockIdOp::create(b, gpu::Dimension::x);
        Value mI32 = indexToI32(b, m);
        Value experts = dim(b, w1, 0), width = dim(b, w1, inOut ? 1 : 2),
              ffn = dim(b, w1, inOut ? 2 : 1);
        // e = (first e in [0, E] with offsets[e] > m) - 1.
        Value upper = lowerBound(
            b, indexConst(b, 0), addi(b, experts, indexConst(b, 1)),
            [&](LoopBuilder &b, Value e) {
              return cmpi(b, CmpIPredicate::sle, load(b, offsets, {e}), mI32);
            });
        Value e = subi(b, upper, indexConst(b, 1));
        Value step = indexConst(b, kRowBlock), zero = indexConst(b, 0);
        Value one = f32Const(b, 1.0);

        forStrided(b, tid, ffn, step, [&](LoopBuilder &b, Value f) {
          SmallVector<Value> acc = forRangeAcc(
              b, zero, width, {f32Const(b, 0.0), f32Const(b, 0.0)},
              [&](LoopBuilder &b, Value d, ValueRange a) {
                Value xv = loadAsF32(b, x, {m, d});
                return SmallVector<Value>{
                    addf(b, a[0], mulf(b, xv, loadAsF32(b, w1, up(e, d, f)))),
                    addf(b, a[1], mulf(b, xv, loadAsF32(b, w3, up(e, d, f))))};
              });
          Value silu = divf(
              b, acc[0],
              addf(b, one,
                   math::ExpOp::create(b, arith::NegFOp::create(b, acc[0]))));
          store(b, mulf(b, silu, acc[1]), scratch, {m, f});
        });
        gpu::BarrierOp::create(b);
        Type element = outType.getElementType();
        forStrided(b, tid, width, step, [&](LoopBuilder &b, Value d) {
          Value y = forRangeAcc(
              b, zero, ffn, {f32Const(b, 0.0)},
              [&](LoopBuilder &b, Value f, ValueRange a) {
                Value h = load(b, scratch, {m, f});
                return SmallVector<Value>{
                    addf(b, a[0], mulf(b, h, loadAsF32(b, w2, up(e, f, d))))};
              })[0];
          if (!element.isF32())
            y = arith::TruncFOp::create(b, element, y);
          store(b, y, out, {m, d});
        });
      });
}
