//===- RouterBudget.cpp - a router's budget as IR -------------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The IR form of routing::setBudget, for lowerings whose T is only known at
// run time: the CPU loops and the GPU host code both call it, so the two
// paths cannot compute different budgets.
//
//===----------------------------------------------------------------------===//

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "usmoe/Dialect/Moe/IR/MoeOps.h"

using namespace mlir;
using namespace mlir::moe;
using arith::CmpIPredicate;

namespace {
/// Index <-> f64 through i64, as routing::setBudget computes.
Value indexToF64(OpBuilder &b, Location loc, Value v) {
  Value i64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), v);
  return arith::SIToFPOp::create(b, loc, b.getF64Type(), i64);
}

Value f64ToIndex(OpBuilder &b, Location loc, Value v) {
  Value i64 = arith::FPToSIOp::create(b, loc, b.getI64Type(), v);
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), i64);
}

/// Fails the run (the caller gets `message`) unless `value <= limit` or the
/// input is empty (T == 0): the run-time half of the verifier for a
/// dynamic T.
void checkAtMost(OpBuilder &b, Location loc, Value value, Value limit,
                 Value numTokens, StringRef message) {
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value ok = arith::OrIOp::create(
      b, loc, arith::CmpIOp::create(b, loc, CmpIPredicate::sle, value, limit),
      arith::CmpIOp::create(b, loc, CmpIPredicate::eq, numTokens, zero));
  cf::AssertOp::create(b, loc, ok, message);
}
} // namespace

Value mlir::moe::buildSetBudget(OpBuilder &b, Location loc,
                                const routing::RouterOptions &options,
                                Value numTokens, int64_t numExperts,
                                bool checked) {
  auto constant = [&](int64_t value) -> Value {
    return arith::ConstantIndexOp::create(b, loc, value);
  };
  auto f64 = [&](double value) -> Value {
    return arith::ConstantFloatOp::create(b, loc, b.getF64Type(),
                                          APFloat(value));
  };
  switch (options.mode) {
  case routing::Mode::Token:
    return constant(routing::countOfK(*options.k));
  case routing::Mode::Expert: {
    if (options.capacity) {
      Value capacity = constant(*options.capacity);
      if (checked)
        checkAtMost(b, loc, capacity, numTokens, numTokens,
                    "moe: expert capacity exceeds the number of tokens T");
      return capacity;
    }
    // clamp(ceil(factor * T * k / E), 1, T), clamped to T in f64 first: a
    // product beyond int64 does not convert to an index.
    Value tokens = indexToF64(b, loc, numTokens);
    Value c =
        arith::MulFOp::create(b, loc, f64(*options.capacityFactor), tokens);
    c = arith::MulFOp::create(b, loc, c, f64(*options.k));
    c = arith::DivFOp::create(b, loc, c, f64(double(numExperts)));
    c = arith::MinimumFOp::create(b, loc, math::CeilOp::create(b, loc, c),
                                  tokens);
    return arith::MaxSIOp::create(b, loc, f64ToIndex(b, loc, c), constant(1));
  }
  case routing::Mode::Unified: {
    if (options.n) {
      Value budget = constant(*options.n);
      Value pairs =
          arith::MulIOp::create(b, loc, numTokens, constant(numExperts));
      if (checked)
        checkAtMost(b, loc, budget, pairs, numTokens,
                    "moe: unified budget n exceeds T * E of the input");
      return budget;
    }
    Value product = arith::MulFOp::create(b, loc, f64(*options.k),
                                          indexToF64(b, loc, numTokens));
    return f64ToIndex(b, loc, math::FloorOp::create(b, loc, product));
  }
  }
  return nullptr;
}

Value RouterAttrInterface::buildSetBudget(OpBuilder &builder, Location loc,
                                          Value numTokens, int64_t numExperts) {
  return moe::buildSetBudget(builder, loc, getRouterOptions(), numTokens,
                             numExperts);
}
