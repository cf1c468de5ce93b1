//===- GPUToEmulator.cpp - the convert-gpu-to-emulator pass ---------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "usmoe/Conversion/GPUToEmulator/GPUToEmulator.h"
#include "EmulatorCalls.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace mlir::usmoe {
#define GEN_PASS_DEF_CONVERTGPUTOEMULATORPASS
#include "usmoe/Conversion/Passes.h.inc"
} // namespace mlir::usmoe

using namespace mlir;
using namespace mlir::usmoe::emulator;

namespace {
struct ConvertGpuToEmulatorPass
    : usmoe::impl::ConvertGpuToEmulatorPassBase<ConvertGpuToEmulatorPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    EmulatorCalls calls(module);
    // Launches first: they read the kernels' workgroup buffers.
    if (failed(convertHostCode(module, calls)))
      return signalPassFailure();
    SmallVector<gpu::GPUModuleOp> kernelModules(
        module.getOps<gpu::GPUModuleOp>());
    for (gpu::GPUModuleOp kernels : kernelModules) {
      SmallVector<gpu::GPUFuncOp> kernelFuncs(kernels.getOps<gpu::GPUFuncOp>());
      for (gpu::GPUFuncOp kernel : kernelFuncs) {
        if (!kernel.isKernel()) {
          kernel.emitOpError("is a device function, which the GPU emulator "
                             "does not model yet");
          return signalPassFailure();
        }
        if (failed(convertKernel(
                kernel, emulatedKernelName(kernels.getName(), kernel.getName()),
                calls)))
          return signalPassFailure();
      }
      kernels.erase();
    }
    module->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());
    // The kernel table describes kernels that are functions now (and its
    // #moe.kernel entries would be foreign to mlir-runner).
    module->removeAttr("usmoe.kernels");
  }
};
} // namespace
