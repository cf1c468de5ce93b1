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
#include "usmoe/Routing/RouterRules.h"
#include <array>

#define GET_OP_CLASSES
#include "usmoe/Dialect/Moe/IR/MoeOps.h.inc"

namespace mlir::moe {
// The budget rules (N, C, M) and the option checks live in
// usmoe/Routing/RouterRules.h, shared with Python and the CUDA runtime.
namespace routing = ::mlir::usmoe::routing;
} // namespace mlir::moe

#endif // USMOE_DIALECT_MOE_IR_MOEOPS_H
