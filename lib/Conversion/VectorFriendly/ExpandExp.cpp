//===- ExpandExp.cpp - one f32 exp for the CPU and the GPU ----------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Every f32 exp of the routers (softmax, sigmoid) and of SwiGLU, written as
// f32 arithmetic that both the CPU and the GPU pipelines emit. Two reasons:
//  - the spec wants the CPU and the GPU to select alike, also when scores
//    tie: libm's expf and libdevice's __nv_expf (ex2.approx) differ in the
//    last bits, so the same logits gave the two paths different scores;
//    IEEE f32 adds, multiplies, fmas and conversions round the same way on
//    both (no contraction: each op is one IEEE operation);
//  - as a libm call the exp keeps every loop around it scalar; as
//    arithmetic the loops vectorize, 16 lanes wide on AVX-512.
// Accuracy: within 1.06 ulp of exp on every f32 input (measured over all
// 2.2e9 f32 in [-104, 89]), the correctly rounded f32 for 91% of inputs
// drawn over a softmax's range (test/python/test_expand_exp.py).
//
//===----------------------------------------------------------------------===//

#include "Conversion/Common/LoopBuilder.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "usmoe/Conversion/Passes.h"
#include "usmoe/Conversion/VectorFriendly/VectorFriendly.h"

namespace mlir::usmoe {
#define GEN_PASS_DEF_USMOEEXPANDEXPPASS
#include "usmoe/Conversion/Passes.h.inc"
} // namespace mlir::usmoe

using namespace mlir;

namespace {

/// x is clamped to [kLowest, kHighest] first: exp(-104) rounds to 0 and
/// exp(89) overflows f32, so the clamp changes no result, and k stays in
/// [-150, 129], where 2^(k/2) is a normal f32.
constexpr double kLowest = -104.0, kHighest = 89.0;

/// 1.5 * 2^23: an f32 whose ulp is 1 and that stays in [2^23, 2^24) when
/// any |k| <= 2^22 is added.
constexpr float kShifter = 12582912.0f;

/// ln 2 in two parts: the high part has 16 significant bits, so k * high is
/// exact for |k| <= 2^8 and x - k * high loses nothing.
constexpr float kLn2High = 0.693145751953125f;
constexpr float kLn2Low = 1.428606765330187e-06f;

/// exp(r) = 1 + r + r^2 q(r) on |r| <= ln(2)/2 with q the Taylor polynomial
/// of degree 5 (truncation below 0.13 ulp).
constexpr int kQDegree = 5;

/// exp(x) = 2^k * exp(r): k = roundeven(x * log2(e)) (by the shifter),
/// r = x - k ln 2 (two fmas), exp(r) = 1 + fma(r^2, q(r), r) with q by Horner's
/// rule in fmas, and 2^k applied as two exact powers of two 2^(k>>1) * 2^(k -
/// (k>>1)), so that only the last product rounds (into a subnormal, 0 or inf
/// where the result lies there). NaN is passed through.
struct ExpandF32Exp : OpRewritePattern<math::ExpOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(math::ExpOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.getType().isF32())
      return rewriter.notifyMatchFailure(op, "not a scalar f32 exp");
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Type f32 = b.getF32Type(), i32 = b.getI32Type();
    auto f32Const = [&](double v) -> Value {
      return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
    };
    auto i32Const = [&](int32_t v) -> Value {
      return arith::ConstantIntOp::create(b, i32, v);
    };
    auto fma = [&](Value x, Value y, Value z) -> Value {
      return math::FmaOp::create(b, x, y, z);
    };

    Value x = op.getOperand();
    // minnumf/maxnumf return the other operand for NaN: the reduction sees a
    // number, and the final select restores the NaN.
    Value clamped = arith::MaxNumFOp::create(
        b, arith::MinNumFOp::create(b, x, f32Const(kHighest)),
        f32Const(kLowest));
    // roundeven by the shifter: adding 1.5 * 2^23 rounds to an integer
    // (ties to even) for |x log2 e| < 2^22, and the sum's low bits are that
    // integer; no float <-> int conversion (a quarter-rate instruction on
    // NVIDIA GPUs), the same bits as roundeven and fptosi.
    Value shifter = f32Const(kShifter);
    Value shifted = arith::AddFOp::create(
        b, arith::MulFOp::create(b, clamped, f32Const(M_LOG2E)), shifter);
    Value k = arith::SubFOp::create(b, shifted, shifter);
    Value ki =
        arith::SubIOp::create(b, arith::BitcastOp::create(b, i32, shifted),
                              arith::BitcastOp::create(b, i32, shifter));
    Value r = fma(k, f32Const(-kLn2High), clamped);
    r = fma(k, f32Const(-kLn2Low), r);

    double factorial = 2.0;
    SmallVector<double> coefficients = {1.0 / factorial};
    for (int i = 1; i <= kQDegree; ++i)
      coefficients.push_back(1.0 / (factorial *= i + 2));
    Value q = f32Const(coefficients.back());
    for (int i = kQDegree - 1; i >= 0; --i)
      q = fma(q, r, f32Const(coefficients[i]));
    Value p = arith::AddFOp::create(
        b, fma(arith::MulFOp::create(b, r, r), q, r), f32Const(1.0));

    // 2^k as 2^(k>>1) * 2^(k - (k>>1)): for k in [-150, 129] each exponent
    // is a normal f32's.
    Value half = arith::ShRSIOp::create(b, ki, i32Const(1));
    Value rest = arith::SubIOp::create(b, ki, half);
    Value y = arith::MulFOp::create(
        b, arith::MulFOp::create(b, p, usmoe::loops::f32PowerOfTwo(b, half)),
        usmoe::loops::f32PowerOfTwo(b, rest));
    Value isNan = arith::CmpFOp::create(b, arith::CmpFPredicate::UNO, x, x);
    rewriter.replaceOp(op, arith::SelectOp::create(b, isNan, x, y));
    return success();
  }
};

struct UsmoeExpandExpPass
    : usmoe::impl::UsmoeExpandExpPassBase<UsmoeExpandExpPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    usmoe::populateExpandExpPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::usmoe::populateExpandExpPatterns(RewritePatternSet &patterns) {
  patterns.add<ExpandF32Exp>(patterns.getContext());
}
