//===- EmulatorPipeline.cpp - the usmoe-to-gpu-emu pipeline ---------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "PipelineStages.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "usmoe/Conversion/Passes.h"
#include "usmoe/Pipelines/Pipelines.h"

using namespace mlir;

void mlir::usmoe::buildUsmoeToGPUEmulatorPipeline(OpPassManager &pm) {
  addMoeToGPUStage(pm);
  pm.addPass(createConvertGpuToEmulatorPass());
  // Static sizes and strides fold, so most bounds checks become constants.
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  addHostToLLVMStage(pm, /*gpuLaunches=*/false);
  pm.addPass(createCanonicalizerPass());
}
