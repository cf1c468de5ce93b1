//===- MoeDialect.h - moe dialect -------------------------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_DIALECT_MOE_IR_MOEDIALECT_H
#define USMOE_DIALECT_MOE_IR_MOEDIALECT_H

#include "mlir/IR/Dialect.h"

#include "usmoe/Dialect/Moe/IR/MoeOpsDialect.h.inc"

#include "usmoe/Dialect/Moe/IR/MoeEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "usmoe/Dialect/Moe/IR/MoeAttrs.h.inc"

#endif // USMOE_DIALECT_MOE_IR_MOEDIALECT_H
