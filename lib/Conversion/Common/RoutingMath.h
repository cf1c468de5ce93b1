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
