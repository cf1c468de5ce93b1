//===- MoeOps.h - moe dialect operations ------------------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_DIALECT_MOE_IR_MOEOPS_H
#define USMOE_DIALECT_MOE_IR_MOEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "usmoe/Dialect/Moe/IR/MoeDialect.h"

#define GET_OP_CLASSES
#include "usmoe/Dialect/Moe/IR/MoeOps.h.inc"

namespace mlir::moe {

/// The number of (token, expert) pairs a unified router selects in a
/// sequence of `numTokens` tokens for `expertsPerToken` experts per token on
/// average: `floor(k * T)`, the budget rule of the spec, shared by the
/// canonicalizer and the lowerings so that they cannot disagree.
int64_t unifiedBudget(double expertsPerToken, int64_t numTokens);

/// The Expert Choice capacity `ceil(factor * T * k / E)` clamped to [1, T].
int64_t expertChoiceCapacity(double capacityFactor, int64_t expertsPerToken,
                             int64_t numTokens, int64_t numExperts);

} // namespace mlir::moe

#endif // USMOE_DIALECT_MOE_IR_MOEOPS_H
