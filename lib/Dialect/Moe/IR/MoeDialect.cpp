//===- MoeDialect.cpp - moe dialect registration --------------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "usmoe/Dialect/Moe/IR/MoeDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "usmoe/Dialect/Moe/IR/MoeOps.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::moe;

#include "usmoe/Dialect/Moe/IR/MoeOpsDialect.cpp.inc"

#include "usmoe/Dialect/Moe/IR/MoeEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "usmoe/Dialect/Moe/IR/MoeAttrs.cpp.inc"

void MoeDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "usmoe/Dialect/Moe/IR/MoeAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "usmoe/Dialect/Moe/IR/MoeOps.cpp.inc"
      >();
}
