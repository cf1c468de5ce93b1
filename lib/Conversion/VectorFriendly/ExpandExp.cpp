//===- ExpandExp.cpp - f32 exp as vectorizable f64 arithmetic -------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The routers spend most of their scoring time in exp (softmax, sigmoid). As
// a libm call it keeps every loop around it scalar. Written as arithmetic,
// the loops vectorize; evaluated in f64, the result is the correctly rounded
// f32 except where exp(x) lies within about 1e-14 (relative) of a rounding
// midpoint: no case in 10^7 random inputs over [-104, 89]
// (test/python/test_expand_exp.py checks this against long-double exp).
//
//===----------------------------------------------------------------------===//

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

/// Degree of the Taylor polynomial of exp(r) on |r| <= ln(2)/2: its
/// truncation error, r^12/12! < 7e-15, sits below f64 rounding of the rest.
constexpr int kDegree = 11;

/// |x| is clamped to this before the reduction: exp(+-200) is far outside
/// f32's range (so the final rounding gives inf or 0) and 2^k for
/// |k| <= 289 is a normal f64.
constexpr double kClamp = 200.0;

/// exp(x) = 2^k * exp(r), k = roundeven(x / ln 2), r = x - k ln 2 (one fma,
/// exact enough in f64 for |k| <= 289); exp(r) by Horner's rule in fmas;
/// 2^k from its f64 bits; the product rounded once to f32 (which also gives
/// f32 subnormals, 0 and inf). NaN is passed through.
struct ExpandF32Exp : OpRewritePattern<math::ExpOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(math::ExpOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.getType().isF32())
      return rewriter.notifyMatchFailure(op, "not a scalar f32 exp");
    ImplicitLocOpBuilder b(op.getLoc(), rewriter);
    Type f32 = b.getF32Type(), f64 = b.getF64Type(), i64 = b.getI64Type();
    auto f32Const = [&](double v) -> Value {
      return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
    };
    auto f64Const = [&](double v) -> Value {
      return arith::ConstantOp::create(b, b.getF64FloatAttr(v));
    };
    auto i64Const = [&](int64_t v) -> Value {
      return arith::ConstantIntOp::create(b, i64, v);
    };

    Value x = op.getOperand();
    // minnumf/maxnumf return the other operand for NaN: the reduction sees a
    // number, and the final select restores the NaN.
    Value clamped = arith::MaxNumFOp::create(
        b, arith::MinNumFOp::create(b, x, f32Const(kClamp)), f32Const(-kClamp));
    Value xd = arith::ExtFOp::create(b, f64, clamped);
    Value kd = math::RoundEvenOp::create(
        b, arith::MulFOp::create(b, xd, f64Const(M_LOG2E)));
    Value r = math::FmaOp::create(b, kd, f64Const(-M_LN2), xd);

    double coefficient = 1.0;
    SmallVector<double> coefficients = {1.0};
    for (int i = 1; i <= kDegree; ++i)
      coefficients.push_back(coefficient /= i);
    Value poly = f64Const(coefficients.back());
    for (int i = kDegree - 1; i >= 0; --i)
      poly = math::FmaOp::create(b, poly, r, f64Const(coefficients[i]));

    Value k = arith::FPToSIOp::create(b, i64, kd);
    Value bits = arith::ShLIOp::create(
        b, arith::AddIOp::create(b, k, i64Const(1023)), i64Const(52));
    Value scale = arith::BitcastOp::create(b, f64, bits);
    Value y =
        arith::TruncFOp::create(b, f32, arith::MulFOp::create(b, poly, scale));
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
