//===- InitAll.cpp - register every usmoe dialect and pass ----------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "usmoe/InitAll.h"
#include "mlir/IR/DialectRegistry.h"
#include "usmoe/Conversion/Passes.h"
#include "usmoe/Dialect/Moe/IR/MoeDialect.h"
#include "usmoe/Dialect/Moe/Transforms/Passes.h"
#include "usmoe/Pipelines/Pipelines.h"

void mlir::usmoe::registerAllDialects(DialectRegistry &registry) {
  registry.insert<moe::MoeDialect>();
}

void mlir::usmoe::registerAllPasses() {
  moe::registerMoePasses();
  registerUsmoeConversionPasses();
  registerUsmoePipelines();
}
