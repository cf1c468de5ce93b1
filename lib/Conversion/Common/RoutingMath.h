//===- RoutingMath.h - per-element routing math of all backends -*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The per-element pieces of the routing semantics (docs/Dialect.md,
// "Semantics"). The CPU loops and the GPU kernels build their scores and
// keys from these functions only, so that both emit the same f32 operations.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_COMMON_ROUTINGMATH_H
#define USMOE_LIB_CONVERSION_COMMON_ROUTINGMATH_H

#include "Conversion/Common/LoopBuilder.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

namespace mlir::usmoe::loops {

inline constexpr double kNegInf = -std::numeric_limits<double>::infinity();

/// NaN logits count as -inf (spec: "NaN logits are treated as -inf").
/// An f32, or a vector of them.
inline Value sanitize(LoopBuilder &b, Value x) {
  Value isNan = cmpf(b, arith::CmpFPredicate::UNO, x, x);
  Value negInf = constantLike(b, b.getF32FloatAttr(kNegInf), x.getType());
  return select(b, isNan, negInf, x);
}

/// The options of real models that act around a router's scores (spec,
/// "Options of real models"), as the kernels apply them: every logit read
/// goes through `logit`, every selected gate written through `gate`.
struct ModelOptions {
  /// cap * tanh(L / cap) on each logit before any score.
  std::optional<double> softcap;
  /// The factor on each selected gate, after renormalization.
  std::optional<double> gateScale;

  /// A logit loaded as f32, soft-capped, then NaN as -inf (a NaN stays NaN
  /// through tanh; +-inf become +-cap). The cap is computed in f64 and
  /// rounded once to f32: f32 tanh implementations (glibc, libdevice,
  /// NumPy) disagree in the last bits on a third of all inputs, which would
  /// flip near-ties between the CPU, the GPU and the reference, while their
  /// f64 results round to the same f32.
  Value logit(LoopBuilder &b, Value x) const {
    if (softcap) {
      Value cap = f64Const(b, *softcap);
      Value wide = arith::ExtFOp::create(b, b.getF64Type(), x);
      wide = mulf(b, cap, math::TanhOp::create(b, divf(b, wide, cap)));
      x = arith::TruncFOp::create(b, b.getF32Type(), wide);
    }
    return sanitize(b, x);
  }
  /// A selected gate as the plan reports it (0 stays 0).
  Value gate(LoopBuilder &b, Value g) const {
    return gateScale ? mulf(b, g, f32Const(b, *gateScale)) : g;
  }
};

/// The denominator of a softmax over `n` terms e_i = exp(x_i - max), each in
/// [0, 1] and one of them exactly 1, summed as 64-bit integers in units of
/// 2^-s with s = 62 - ceil(log2 n): each term is truncated to a whole
/// number of units (exact in f32, then an exact conversion), the total
/// (at most 2^62) converted to f32 once. Integer addition is associative,
/// so the sum has the same bits in every order of summation: the CPU's
/// index order, the GPU's lanes, warps and blocks. A float sum depends on
/// the order, and scores that tie on one path would not on the other.
/// The truncation costs below n^2 2^-61 of the sum (2^-39 at n = 2048
/// terms, 2^-29 at 65536): well under one f32 ulp.
struct SoftmaxSum {
  Value scale;   ///< f32 2^s
  Value unscale; ///< f32 2^-s

  /// s for sums of n terms (n = 0 counts as 1): 62 - ceil(log2 n).
  static int64_t shiftFor(uint64_t n) {
    return 62 - int64_t(llvm::Log2_64_Ceil(std::max<uint64_t>(n, 1)));
  }

  /// The units for sums of `n` (index) terms: constants when n is one (the
  /// experts of a row), else computed as shiftFor does (the tokens of a
  /// column).
  static SoftmaxSum forTerms(LoopBuilder &b, Value n) {
    if (std::optional<int64_t> count = getConstantIntValue(n)) {
      int64_t s = shiftFor(uint64_t(*count));
      return {f32Const(b, std::ldexp(1.0, int(s))),
              f32Const(b, std::ldexp(1.0, -int(s)))};
    }
    Type i64 = b.getI64Type(), i32 = b.getI32Type();
    Value count = arith::IndexCastUIOp::create(b, i64, n);
    Value one = arith::ConstantIntOp::create(b, i64, 1);
    count = arith::MaxUIOp::create(b, count, one);
    // ceil(log2 n) = 64 - ctlz(n - 1) for n >= 1.
    Value bits = arith::SubIOp::create(
        b, arith::ConstantIntOp::create(b, i64, 64),
        math::CountLeadingZerosOp::create(b, subi(b, count, one)));
    Value s = arith::TruncIOp::create(
        b, i32,
        arith::SubIOp::create(b, arith::ConstantIntOp::create(b, i64, 62),
                              bits));
    return {f32PowerOfTwo(b, s), f32PowerOfTwo(b, subi(b, i32Const(b, 0), s))};
  }
  /// The i64 zero the sums start from.
  static Value zero(LoopBuilder &b) {
    return arith::ConstantIntOp::create(b, b.getI64Type(), 0);
  }
  /// One term e (f32 in [0, 1]) as an i64 count of units.
  Value term(LoopBuilder &b, Value e) const {
    return arith::FPToSIOp::create(b, b.getI64Type(), mulf(b, e, scale));
  }
  /// The sum of terms (i64) as f32: 0, or at least 1.
  Value total(LoopBuilder &b, Value units) const {
    return mulf(b, arith::SIToFPOp::create(b, b.getF32Type(), units), unscale);
  }
};

/// F = (2/E) * (1 / (1 + exp(-x))), with (2/E) rounded once to f32.
inline Value sigmoidScore(LoopBuilder &b, Value x, int64_t experts) {
  Value one = f32Const(b, 1.0);
  Value negX = arith::NegFOp::create(b, x);
  Value sig = divf(b, one, addf(b, one, math::ExpOp::create(b, negX)));
  return mulf(b, f32Const(b, 2.0 / double(experts)), sig);
}

/// U = (1 - alpha) * P + alpha * F(x) (F: sigmoidScore), each product and
/// the sum rounded to f32 (no FMA): the unified score of one pair, the same
/// on the CPU and the GPU.
inline Value unifiedScore(LoopBuilder &b, Value p, Value x, double alpha,
                          int64_t experts) {
  return addf(b, mulf(b, f32Const(b, 1.0 - alpha), p),
              mulf(b, f32Const(b, alpha), sigmoidScore(b, x, experts)));
}

/// An unsigned i32 key with the order of the f32 score: NaN ranks as -inf
/// and -0 as +0, so that integer comparison is total and agrees with the
/// float order everywhere else.
/// An f32 score, or a vector of them (a vector of keys).
inline Value scoreKey(LoopBuilder &b, Value score) {
  Type type = score.getType(), keyType = typeLike(b.getI32Type(), type);
  Value x = sanitize(b, score);
  Value zero = constantLike(b, b.getF32FloatAttr(0.0), type);
  x = select(b, cmpf(b, arith::CmpFPredicate::OEQ, x, zero), zero, x);
  Value bits = arith::BitcastOp::create(b, keyType, x);
  Value sign = arith::ShRSIOp::create(
      b, bits, constantLike(b, b.getI32IntegerAttr(31), keyType));
  Value signBit = constantLike(
      b, b.getI32IntegerAttr(std::numeric_limits<int32_t>::min()), keyType);
  return arith::XOrIOp::create(b, bits, ori(b, sign, signBit));
}

} // namespace mlir::usmoe::loops

#endif // USMOE_LIB_CONVERSION_COMMON_ROUTINGMATH_H
