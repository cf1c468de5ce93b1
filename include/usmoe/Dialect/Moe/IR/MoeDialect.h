//===- MoeDialect.h - moe dialect -------------------------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_DIALECT_MOE_IR_MOEDIALECT_H
#define USMOE_DIALECT_MOE_IR_MOEDIALECT_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "usmoe/Routing/RouterRules.h"

#include "usmoe/Dialect/Moe/IR/MoeOpsDialect.h.inc"

#include "usmoe/Dialect/Moe/IR/MoeEnums.h.inc"

#include "usmoe/Dialect/Moe/IR/MoeAttrInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "usmoe/Dialect/Moe/IR/MoeAttrs.h.inc"

namespace mlir::moe {
/// The expert score of the dialect's enum as the router rules name it, and
/// back.
usmoe::routing::ExpertScore toRoutingScore(ExpertScoreKind kind);
ExpertScoreKind toScoreKind(usmoe::routing::ExpertScore score);

/// Emits the budget of one select set of a router with `options` (see
/// RouterAttrInterface::buildSetBudget); the unfused selection ops use it
/// with their partial options. Inside a GPU kernel, where a failed check
/// cannot reach the caller, `checked = false` leaves out the run-time check
/// of an explicit n or capacity (a budget above the set size selects the
/// whole set).
Value buildSetBudget(OpBuilder &builder, Location loc,
                     const usmoe::routing::RouterOptions &options,
                     Value numTokens, int64_t numExperts, bool checked = true);
} // namespace mlir::moe

#endif // USMOE_DIALECT_MOE_IR_MOEDIALECT_H
