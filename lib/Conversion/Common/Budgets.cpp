//===- Budgets.cpp - run-time budgets of the selections -------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "Conversion/Common/Budgets.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using arith::CmpIPredicate;

static int64_t numExperts(Value memref) {
  return cast<MemRefType>(memref.getType()).getDimSize(2);
}

static Value indexToF64(LoopBuilder &b, Value v) {
  Value i64 = arith::IndexCastOp::create(b, b.getI64Type(), v);
  return arith::SIToFPOp::create(b, b.getF64Type(), i64);
}

static Value f64ToIndex(LoopBuilder &b, Value v) {
  Value i64 = arith::FPToSIOp::create(b, b.getI64Type(), v);
  return arith::IndexCastOp::create(b, b.getIndexType(), i64);
}

/// Aborts with `message` unless `value <= limit` or the input is empty
/// (T == 0): the run-time half of the verifier when T is dynamic.
static void emitBudgetCheck(LoopBuilder &b, Value value, Value limit,
                            Value numTokens, StringRef message) {
  Value ok = ori(b, cmpi(b, CmpIPredicate::sle, value, limit),
                 cmpi(b, CmpIPredicate::eq, numTokens, indexConst(b, 0)));
  cf::AssertOp::create(b, ok, message);
}

Value loops::emitUnifiedBudget(LoopBuilder &b, std::optional<int64_t> n,
                               std::optional<double> k, Value gates) {
  Value tokens = dim(b, gates, 1);
  if (n) {
    Value budget = indexConst(b, *n);
    Value pairs = muli(b, tokens, indexConst(b, numExperts(gates)));
    emitBudgetCheck(b, budget, pairs, tokens,
                    "moe: unified budget n exceeds T * E of the input");
    return budget;
  }
  Value product = mulf(b, f64Const(b, *k), indexToF64(b, tokens));
  return f64ToIndex(b, math::FloorOp::create(b, product));
}

Value loops::emitExpertCapacity(LoopBuilder &b, std::optional<int64_t> capacity,
                                std::optional<double> factor,
                                std::optional<int64_t> k, Value gates) {
  Value tokens = dim(b, gates, 1);
  if (capacity) {
    Value c = indexConst(b, *capacity);
    emitBudgetCheck(b, c, tokens, tokens,
                    "moe: expert capacity exceeds the number of tokens T");
    return c;
  }
  Value c = mulf(b, f64Const(b, *factor), indexToF64(b, tokens));
  c = mulf(b, c, f64Const(b, double(*k)));
  c = divf(b, c, f64Const(b, double(numExperts(gates))));
  // Clamp to T in f64: a product beyond int64 does not convert to an index.
  Value ceiled = math::CeilOp::create(b, c);
  Value result = f64ToIndex(
      b, arith::MinimumFOp::create(b, ceiled, indexToF64(b, tokens)));
  return arith::MaxSIOp::create(b, result, indexConst(b, 1));
}
