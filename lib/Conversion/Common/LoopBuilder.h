//===- LoopBuilder.h - scf/arith/memref building blocks ---------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Small helpers shared by the moe lowerings (loops and GPU kernels). They keep
// the routing algorithms readable: a loop nest reads like the pseudo-code in
// docs/Dialect.md instead of a page of builder calls.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_COMMON_LOOPBUILDER_H
#define USMOE_LIB_CONVERSION_COMMON_LOOPBUILDER_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "usmoe/Conversion/MoeToLoops/SequentialTwin.h"

namespace mlir::usmoe::loops {

using LoopBuilder = ImplicitLocOpBuilder;
using LoopBody = function_ref<void(LoopBuilder &, Value)>;
using AccumulatingBody =
    function_ref<SmallVector<Value>(LoopBuilder &, Value, ValueRange)>;

//===----------------------------------------------------------------------===//
// Constants and arithmetic
//===----------------------------------------------------------------------===//

inline Value indexConst(LoopBuilder &b, int64_t v) {
  return arith::ConstantIndexOp::create(b, v);
}
inline Value zero(LoopBuilder &b) { return indexConst(b, 0); }
inline Value i32Const(LoopBuilder &b, int64_t v) {
  return arith::ConstantIntOp::create(b, b.getI32Type(), v);
}
inline Value i1Const(LoopBuilder &b, bool v) {
  return arith::ConstantIntOp::create(b, b.getI1Type(), v);
}
inline Value f32Const(LoopBuilder &b, double v) {
  return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
}
/// A constant `scalar` as a value of type `like`: itself, or its splat
/// when `like` is a vector (per-element code written once for both).
inline Value constantLike(LoopBuilder &b, TypedAttr scalar, Type like) {
  if (auto vector = dyn_cast<VectorType>(like))
    return arith::ConstantOp::create(b, DenseElementsAttr::get(vector, scalar));
  return arith::ConstantOp::create(b, scalar);
}
/// `element` in the shape of `like` (a scalar type, or a vector's shape).
inline Type typeLike(Type element, Type like) {
  if (auto vector = dyn_cast<VectorType>(like))
    return vector.clone(element);
  return element;
}
inline Value f64Const(LoopBuilder &b, double v) {
  return arith::ConstantOp::create(b, b.getF64FloatAttr(v));
}

inline Value addf(LoopBuilder &b, Value x, Value y) {
  return arith::AddFOp::create(b, x, y);
}
inline Value subf(LoopBuilder &b, Value x, Value y) {
  return arith::SubFOp::create(b, x, y);
}
inline Value mulf(LoopBuilder &b, Value x, Value y) {
  return arith::MulFOp::create(b, x, y);
}
inline Value divf(LoopBuilder &b, Value x, Value y) {
  return arith::DivFOp::create(b, x, y);
}
inline Value addi(LoopBuilder &b, Value x, Value y) {
  return arith::AddIOp::create(b, x, y);
}
inline Value subi(LoopBuilder &b, Value x, Value y) {
  return arith::SubIOp::create(b, x, y);
}
inline Value muli(LoopBuilder &b, Value x, Value y) {
  return arith::MulIOp::create(b, x, y);
}
inline Value andi(LoopBuilder &b, Value x, Value y) {
  return arith::AndIOp::create(b, x, y);
}
inline Value ori(LoopBuilder &b, Value x, Value y) {
  return arith::OrIOp::create(b, x, y);
}
inline Value cmpf(LoopBuilder &b, arith::CmpFPredicate p, Value x, Value y) {
  return arith::CmpFOp::create(b, p, x, y);
}
inline Value cmpi(LoopBuilder &b, arith::CmpIPredicate p, Value x, Value y) {
  return arith::CmpIOp::create(b, p, x, y);
}
inline Value select(LoopBuilder &b, Value c, Value x, Value y) {
  return arith::SelectOp::create(b, c, x, y);
}
inline Value notI1(LoopBuilder &b, Value c) {
  return arith::XOrIOp::create(b, c, i1Const(b, true));
}
inline Value indexToI32(LoopBuilder &b, Value v) {
  return arith::IndexCastOp::create(b, b.getI32Type(), v);
}
inline Value i32ToIndex(LoopBuilder &b, Value v) {
  return arith::IndexCastOp::create(b, b.getIndexType(), v);
}
/// 2^n as an f32 built from its bits, for an i32 n in [-126, 127] (exact,
/// and no float/int conversion).
inline Value f32PowerOfTwo(LoopBuilder &b, Value n) {
  Value biased = arith::AddIOp::create(
      b, n, arith::ConstantIntOp::create(b, b.getI32Type(), 127));
  return arith::BitcastOp::create(
      b, b.getF32Type(),
      arith::ShLIOp::create(
          b, biased, arith::ConstantIntOp::create(b, b.getI32Type(), 23)));
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

inline Value dim(LoopBuilder &b, Value memref, int64_t d) {
  return memref::DimOp::create(b, memref, d);
}
inline Value load(LoopBuilder &b, Value memref, ValueRange indices) {
  return memref::LoadOp::create(b, memref, indices);
}
inline void store(LoopBuilder &b, Value value, Value memref,
                  ValueRange indices) {
  memref::StoreOp::create(b, value, memref, indices);
}
/// Loads an element and widens it to f32 (router math is always f32).
inline Value loadAsF32(LoopBuilder &b, Value memref, ValueRange indices) {
  Value v = load(b, memref, indices);
  if (v.getType().isF32())
    return v;
  return arith::ExtFOp::create(b, b.getF32Type(), v);
}
/// A buffer of `type` whose dynamic sizes are `dynSizes`; freed by the
/// buffer-deallocation pipeline, so the lowering never emits deallocs.
inline Value alloc(LoopBuilder &b, MemRefType type, ValueRange dynSizes = {}) {
  return memref::AllocOp::create(b, type, dynSizes);
}

//===----------------------------------------------------------------------===//
// Tensor <-> buffer bridge
//===----------------------------------------------------------------------===//

/// The buffer behind a tensor operand (read only), with an identity layout;
/// one-shot-bufferize inserts a copy where the real buffer is strided.
inline Value toBuffer(LoopBuilder &b, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
  return bufferization::ToBufferOp::create(b, memrefType, tensor,
                                           /*read_only=*/true);
}

/// The type of a read-only view of `tensor` with any offset and outer
/// strides and a unit innermost stride: what a slice of a larger buffer
/// (one half of a fused gate/up weight) bufferizes to without a copy.
inline MemRefType stridedViewType(RankedTensorType type) {
  SmallVector<int64_t> strides(type.getRank(), ShapedType::kDynamic);
  if (!strides.empty())
    strides.back() = 1;
  return MemRefType::get(
      type.getShape(), type.getElementType(),
      StridedLayoutAttr::get(type.getContext(), ShapedType::kDynamic, strides));
}

/// The buffer behind a tensor operand (read only) as a strided view, so
/// that one-shot-bufferize casts instead of copying when it is a slice.
inline Value toStridedBuffer(LoopBuilder &b, Value tensor) {
  return bufferization::ToBufferOp::create(
      b, stridedViewType(cast<RankedTensorType>(tensor.getType())), tensor,
      /*read_only=*/true);
}

/// The tensor result of a freshly allocated buffer that nothing else aliases.
inline Value toTensor(LoopBuilder &b, Value memref, Type tensorType) {
  return bufferization::ToTensorOp::create(b, tensorType, memref,
                                           /*restrict=*/b.getUnitAttr(),
                                           /*writable=*/b.getUnitAttr());
}

/// A buffer for a result of type `type`; each dynamic size is taken from the
/// same dimension of `shapeSource` (a memref of the same rank).
inline Value allocResult(LoopBuilder &b, Type type, Value shapeSource) {
  auto tensorType = cast<RankedTensorType>(type);
  SmallVector<Value> dynSizes;
  for (int64_t d = 0; d < tensorType.getRank(); ++d)
    if (tensorType.isDynamicDim(d))
      dynSizes.push_back(dim(b, shapeSource, d));
  return alloc(
      b, MemRefType::get(tensorType.getShape(), tensorType.getElementType()),
      dynSizes);
}

//===----------------------------------------------------------------------===//
// Control flow
//===----------------------------------------------------------------------===//

/// for iv in [lb, ub): body(iv)
inline void forRange(LoopBuilder &b, Value lb, Value ub, LoopBody body) {
  scf::ForOp::create(b, lb, ub, indexConst(b, 1), ValueRange{},
                     [&](OpBuilder &nb, Location loc, Value iv, ValueRange) {
                       LoopBuilder ib(loc, nb);
                       body(ib, iv);
                       scf::YieldOp::create(ib);
                     });
}

/// for iv = lb; iv < ub; iv += step (a GPU thread's share of a range:
/// lb = thread id, step = block size).
inline void forStrided(LoopBuilder &b, Value lb, Value ub, Value step,
                       LoopBody body) {
  scf::ForOp::create(b, lb, ub, step, ValueRange{},
                     [&](OpBuilder &nb, Location loc, Value iv, ValueRange) {
                       LoopBuilder ib(loc, nb);
                       body(ib, iv);
                       scf::YieldOp::create(ib);
                     });
}

/// for iv in [lb, ub) carrying `init`: acc = body(iv, acc); returns acc.
inline SmallVector<Value> forRangeAcc(LoopBuilder &b, Value lb, Value ub,
                                      ValueRange init, AccumulatingBody body) {
  auto loop = scf::ForOp::create(
      b, lb, ub, indexConst(b, 1), init,
      [&](OpBuilder &nb, Location loc, Value iv, ValueRange acc) {
        LoopBuilder ib(loc, nb);
        scf::YieldOp::create(ib, body(ib, iv, acc));
      });
  return SmallVector<Value>(loop.getResults());
}

/// forStrided carrying `init`: acc = body(iv, acc); returns acc.
inline SmallVector<Value> forStridedAcc(LoopBuilder &b, Value lb, Value ub,
                                        Value step, ValueRange init,
                                        AccumulatingBody body) {
  auto loop = scf::ForOp::create(
      b, lb, ub, step, init,
      [&](OpBuilder &nb, Location loc, Value iv, ValueRange acc) {
        LoopBuilder ib(loc, nb);
        scf::YieldOp::create(ib, body(ib, iv, acc));
      });
  return SmallVector<Value>(loop.getResults());
}

/// Loops with less work than this many elements (as their callers count
/// it) stay sequential: waking other threads costs tens of microseconds,
/// more than a decode step's whole router.
inline constexpr int64_t kParallelWork = int64_t(1) << 15;

/// for i in [0, ub0) x [0, ub1) with independent iterations: an
/// scf.parallel, which the CPU pipeline runs sequentially or, with
/// usmoe-to-cpu{openmp}, on OpenMP threads, when `work` (the loop's
/// elements, an index) reaches kParallelWork, else plain scf.for loops.
/// The body must not write memory another iteration reads or writes. The
/// if is marked as a sequential twin: usmoe-share-parallel-bodies makes
/// both forms call one copy of the body.
inline void
forParallel2D(LoopBuilder &b, Value ub0, Value ub1, Value work,
              function_ref<void(LoopBuilder &, Value, Value)> body) {
  Value zero = indexConst(b, 0), one = indexConst(b, 1);
  Value worth = arith::CmpIOp::create(b, arith::CmpIPredicate::uge, work,
                                      indexConst(b, kParallelWork));
  auto twin = scf::IfOp::create(
      b, worth,
      [&](OpBuilder &nb, Location loc) {
        LoopBuilder ib(loc, nb);
        scf::ParallelOp::create(
            ib, ValueRange{zero, zero}, ValueRange{ub0, ub1},
            ValueRange{one, one},
            [&](OpBuilder &pb, Location ploc, ValueRange ivs) {
              LoopBuilder lb(ploc, pb);
              body(lb, ivs[0], ivs[1]);
            });
        scf::YieldOp::create(ib);
      },
      [&](OpBuilder &nb, Location loc) {
        LoopBuilder ib(loc, nb);
        forRange(ib, zero, ub0, [&](LoopBuilder &b0, Value i) {
          forRange(b0, zero, ub1,
                   [&](LoopBuilder &b1, Value j) { body(b1, i, j); });
        });
        scf::YieldOp::create(ib);
      });
  twin->setAttr(kSequentialTwinAttrName, b.getUnitAttr());
}

/// if (cond) then()
inline void ifThen(LoopBuilder &b, Value cond,
                   function_ref<void(LoopBuilder &)> then) {
  scf::IfOp::create(b, cond, [&](OpBuilder &nb, Location loc) {
    LoopBuilder ib(loc, nb);
    then(ib);
    scf::YieldOp::create(ib);
  });
}

/// cond ? then() : 0 (a zero of `type`), where then() runs only when cond
/// holds: a guarded load or atomic that must not touch memory otherwise.
inline Value ifThenOrZero(LoopBuilder &b, Value cond, Type type,
                          function_ref<Value(LoopBuilder &)> then) {
  auto branch = scf::IfOp::create(
      b, cond,
      [&](OpBuilder &nb, Location loc) {
        LoopBuilder ib(loc, nb);
        scf::YieldOp::create(ib, then(ib));
      },
      [&](OpBuilder &nb, Location loc) {
        LoopBuilder ib(loc, nb);
        scf::YieldOp::create(
            ib,
            arith::ConstantOp::create(ib, ib.getZeroAttr(type)).getResult());
      });
  return branch.getResult(0);
}

/// if (cond) then() else otherwise()
inline void ifThenElse(LoopBuilder &b, Value cond,
                       function_ref<void(LoopBuilder &)> then,
                       function_ref<void(LoopBuilder &)> otherwise) {
  scf::IfOp::create(
      b, cond,
      [&](OpBuilder &nb, Location loc) {
        LoopBuilder ib(loc, nb);
        then(ib);
        scf::YieldOp::create(ib);
      },
      [&](OpBuilder &nb, Location loc) {
        LoopBuilder ib(loc, nb);
        otherwise(ib);
        scf::YieldOp::create(ib);
      });
}

} // namespace mlir::usmoe::loops

#endif // USMOE_LIB_CONVERSION_COMMON_LOOPBUILDER_H
