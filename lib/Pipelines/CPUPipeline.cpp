//===- CPUPipeline.cpp - the usmoe-to-cpu pipeline ------------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "usmoe/Conversion/MoeToLoops/MoeToLoops.h"
#include "usmoe/Dialect/Moe/Transforms/Passes.h"
#include "usmoe/Pipelines/Pipelines.h"

using namespace mlir;

void mlir::usmoe::buildUsmoeToCPUPipeline(
    OpPassManager &pm, const UsmoeToCPUPipelineOptions &options) {
  if (options.fuseRouting)
    pm.addPass(moe::createMoeFuseRoutingPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createConvertMoeToLoopsPass());

  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  // tensor/linalg ops of the surrounding program bufferize to linalg.
  pm.addPass(createConvertLinalgToLoopsPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

void mlir::usmoe::registerUsmoePipelines() {
  PassPipelineRegistration<UsmoeToCPUPipelineOptions>(
      "usmoe-to-cpu",
      "Lower moe routing on tensors to the LLVM dialect for the CPU (fuse, "
      "moe-to-loops, bufferize, deallocate, convert to LLVM)",
      buildUsmoeToCPUPipeline);
  PassPipelineRegistration<UsmoeToNVVMPipelineOptions>(
      "usmoe-to-nvvm",
      "Lower moe routing to NVVM kernels serialized as PTX, cubin or fatbin "
      "plus LLVM host code that launches them through the mgpu* runtime",
      buildUsmoeToNVVMPipeline);
}
