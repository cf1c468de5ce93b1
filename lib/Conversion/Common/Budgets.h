//===- Budgets.h - run-time budgets of the selections -----------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The budget rules (N for Unified, C for Expert Choice) as host code, shared
// by the CPU loops and the GPU launches, with the run-time checks the
// verifier cannot do when T is dynamic.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_COMMON_BUDGETS_H
#define USMOE_LIB_CONVERSION_COMMON_BUDGETS_H

#include "Conversion/Common/LoopBuilder.h"

#include <optional>

namespace mlir::usmoe::loops {

/// The Unified budget N per sequence of `gates` ([B, T, E]): `n`, checked
/// against T * E at run time, or floor(k * T) in f64 arithmetic (as
/// usmoe::routing::unifiedBudget, its IR form).
Value emitUnifiedBudget(LoopBuilder &b, std::optional<int64_t> n,
                        std::optional<double> k, Value gates);
/// The Expert Choice capacity C: `capacity`, checked against T at run time,
/// or clamp(ceil(factor * T * k / E), 1, T) (as
/// usmoe::routing::expertCapacity, its IR form).
Value emitExpertCapacity(LoopBuilder &b, std::optional<int64_t> capacity,
                         std::optional<double> factor, std::optional<int64_t> k,
                         Value gates);

} // namespace mlir::usmoe::loops

#endif // USMOE_LIB_CONVERSION_COMMON_BUDGETS_H
