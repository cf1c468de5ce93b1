//===- PipelineStages.cpp - stages shared by the usmoe pipelines ----------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "PipelineStages.h"
#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/GPUCommon/GPUCommonPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/OpenMPToLLVM/ConvertOpenMPToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "usmoe/Conversion/Passes.h"
#include "usmoe/Dialect/Moe/Transforms/Passes.h"

using namespace mlir;

void mlir::usmoe::addBufferizationStage(OpPassManager &pm) {
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
}

void mlir::usmoe::addMoeToGPUStage(OpPassManager &pm) {
  pm.addPass(moe::createMoeFuseRoutingPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createConvertMoeToGPUPass());
  // The kernels' exps as the CPU computes them (not libdevice's), so that
  // both paths score alike, bit for bit.
  pm.addPass(createUsmoeExpandExpPass());
  // No deallocation pipeline: it rejects gpu.launch_func (unknown memory
  // effects), and the GPU lowering allocates nothing but its results.
  addBufferizationStage(pm);
  pm.addPass(createCanonicalizerPass());
  // The host code's buffers in managed memory, so kernels can write them.
  pm.addPass(createUsmoeHostSharedAllocsPass());
}

void mlir::usmoe::addHostToLLVMStage(OpPassManager &pm, bool gpuLaunches,
                                     bool openmp) {
  pm.addPass(createConvertLinalgToLoopsPass());
  // Vector registers of the CPU loops (Token Choice by lanes) and of the
  // emulated kernels.
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  if (openmp)
    pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  // ub.poison from folded vector inserts (the emulated mma fragments).
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  if (gpuLaunches)
    pm.addPass(createGpuToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}
