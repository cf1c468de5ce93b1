//===- usmoe-opt.cpp - the usmoe optimizer driver -------------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// An mlir-opt with the moe dialect and the usmoe passes and pipelines. Every
// upstream dialect, extension and pass is registered too (they live in
// libMLIR.so, so this costs nothing at build time): users can feed it any
// IR mlir-opt accepts and mix our pipelines with upstream passes.
//
//===----------------------------------------------------------------------===//

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "usmoe/InitAll.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::usmoe::registerAllPasses();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates GPU modules to LLVM IR in-process.
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::usmoe::registerAllDialects(registry);

  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "usmoe optimizer driver: moe dialect, passes and pipelines\n",
      registry));
}
