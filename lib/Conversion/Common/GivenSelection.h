//===- GivenSelection.h - one row of moe.select_given ---------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_COMMON_GIVENSELECTION_H
#define USMOE_LIB_CONVERSION_COMMON_GIVENSELECTION_H

#include "Conversion/Common/LoopBuilder.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"

namespace mlir::usmoe::loops {

/// Row r of moe.select_given: gates[0, r, :] and mask[0, r, :] cleared, then
/// each given (ids[r, j], weights[r, j]) pair set. With `checked` (the CPU,
/// where a failed check reaches the caller) an id outside [0, E) or a
/// repeated id fails the run; without (a GPU kernel) an id outside [0, E)
/// is skipped and a repeated id is set once.
inline void emitGivenRow(LoopBuilder &b, Value ids, Value weights, Value gates,
                         Value mask, Value r, int64_t experts, bool checked) {
  using arith::CmpIPredicate;
  Value zero = indexConst(b, 0);
  forRange(b, zero, indexConst(b, experts), [&](LoopBuilder &b, Value e) {
    store(b, f32Const(b, 0.0), gates, {zero, r, e});
    store(b, i1Const(b, false), mask, {zero, r, e});
  });
  forRange(b, zero, dim(b, ids, 1), [&](LoopBuilder &b, Value j) {
    Value id = load(b, ids, {r, j});
    Value inRange = andi(b, cmpi(b, CmpIPredicate::sge, id, i32Const(b, 0)),
                         cmpi(b, CmpIPredicate::slt, id, i32Const(b, experts)));
    auto set = [&](LoopBuilder &b) {
      Value e = i32ToIndex(b, id);
      if (checked)
        cf::AssertOp::create(
            b, notI1(b, load(b, mask, {zero, r, e})),
            "moe: select_given: an expert id repeats in a row");
      store(b, i1Const(b, true), mask, {zero, r, e});
      store(b, load(b, weights, {r, j}), gates, {zero, r, e});
    };
    if (!checked)
      return ifThen(b, inRange, set);
    cf::AssertOp::create(b, inRange,
                         "moe: select_given: an expert id is outside [0, E)");
    set(b);
  });
}

} // namespace mlir::usmoe::loops

#endif // USMOE_LIB_CONVERSION_COMMON_GIVENSELECTION_H
