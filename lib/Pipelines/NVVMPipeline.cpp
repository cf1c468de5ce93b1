//===- NVVMPipeline.cpp - the usmoe-to-nvvm pipeline ----------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "PipelineStages.h"
#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/NVGPUToNVVM/NVGPUToNVVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "usmoe/Conversion/Passes.h"
#include "usmoe/Pipelines/Pipelines.h"

#include <cstdlib>

#ifndef USMOE_DEFAULT_CUDA_ROOT
#define USMOE_DEFAULT_CUDA_ROOT ""
#endif

using namespace mlir;

std::string mlir::usmoe::defaultCudaRoot() {
  for (const char *var : {"CUDA_ROOT", "CUDA_HOME", "CUDA_PATH"})
    if (const char *value = std::getenv(var); value && *value)
      return value;
  return USMOE_DEFAULT_CUDA_ROOT;
}

void mlir::usmoe::buildUsmoeToNVVMPipeline(
    OpPassManager &pm, const UsmoeToNVVMPipelineOptions &options) {
  std::string cudaRoot = options.cudaRoot.empty() ? defaultCudaRoot()
                                                  : options.cudaRoot.getValue();
  bool needPtxas = options.format != "isa" && options.format != "llvm";

  UsmoeCheckGpuTargetPassOptions targetCheck;
  targetCheck.chip = options.chip;
  targetCheck.features = options.features;
  targetCheck.format = options.format;
  targetCheck.optLevel = options.optLevel;
  pm.addPass(createUsmoeCheckGpuTargetPass(targetCheck));

  UsmoeRequireCudaToolkitPassOptions toolkit;
  toolkit.cudaRoot = cudaRoot;
  toolkit.needPtxas = needPtxas;
  pm.addPass(createUsmoeRequireCudaToolkitPass(toolkit));

  addMoeToGPUStage(pm);

  // Kernels: NVVM target with libdevice linked in (exp -> __nv_expf).
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = options.optLevel;
  target.linkLibs.push_back(cudaRoot + "/nvvm/libdevice/libdevice.10.bc");
  pm.addPass(createGpuNVVMAttachTarget(target));
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
  // Tensor-core fragments first (bf16 ones by usmoe's own pattern).
  kernels.addPass(createUsmoeBf16MmaSyncToNVVMPass());
  kernels.addPass(createConvertNVGPUToNVVMPass());
  kernels.addPass(createConvertGpuOpsToNVVMOps());
  kernels.addPass(createCanonicalizerPass());
  kernels.addPass(createCSEPass());
  kernels.addPass(createReconcileUnrealizedCastsPass());

  // Host: memrefs and launches to LLVM (mgpu* runtime calls).
  addHostToLLVMStage(pm, /*gpuLaunches=*/true);

  GpuModuleToBinaryPassOptions binary;
  binary.toolkitPath = cudaRoot;
  binary.compilationTarget = options.format;
  pm.addPass(createGpuModuleToBinaryPass(binary));
  pm.addPass(createCanonicalizerPass());
}
