//===- CPUPipeline.cpp - the usmoe-to-cpu pipeline ------------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "PipelineStages.h"
#include "mlir/Conversion/SCFToOpenMP/SCFToOpenMP.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"
#include "usmoe/Conversion/MoeToLoops/MoeToLoops.h"
#include "usmoe/Conversion/VectorFriendly/VectorFriendly.h"
#include "usmoe/Dialect/Moe/Transforms/Passes.h"
#include "usmoe/Pipelines/Pipelines.h"

using namespace mlir;

void mlir::usmoe::buildUsmoeToCPUPipeline(
    OpPassManager &pm, const UsmoeToCPUPipelineOptions &options) {
  if (options.fuseRouting)
    pm.addPass(moe::createMoeFuseRoutingPass());
  pm.addPass(createCanonicalizerPass());
  ConvertMoeToLoopsPassOptions loops;
  loops.expertGemm = options.expertGemm;
  pm.addPass(createConvertMoeToLoopsPass(loops));
  pm.addPass(createUsmoeShareParallelBodiesPass());
  pm.addPass(createUsmoeExpandExpPass());

  addBufferizationStage(pm);
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  if (options.openmp) {
    pm.addPass(createConvertSCFToOpenMPPass());
    // Inlines the memref.alloca_scope around each parallel body (the bodies
    // allocate nothing), which scf-to-cf could not lower into.
    pm.addPass(createCanonicalizerPass());
  }
  addHostToLLVMStage(pm, /*gpuLaunches=*/false, options.openmp);
  pm.addPass(createUsmoeNoAliasArgsPass());
  pm.addPass(createUsmoeBoolsAsBytesPass());
  pm.addPass(createCanonicalizerPass());
}

void mlir::usmoe::registerUsmoePipelines() {
  PassPipelineRegistration<UsmoeToCPUPipelineOptions>(
      "usmoe-to-cpu",
      "Lower moe routing on tensors to the LLVM dialect for the CPU (fuse, "
      "moe-to-loops, bufferize, deallocate, convert to LLVM); with "
      "expert-gemm=onednn link libusmoe_cpu_runtime.so, with openmp libomp",
      buildUsmoeToCPUPipeline);
  PassPipelineRegistration<UsmoeToNVVMPipelineOptions>(
      "usmoe-to-nvvm",
      "Lower moe routing to NVVM kernels serialized as PTX, cubin or fatbin "
      "plus LLVM host code that launches them through the mgpu* runtime",
      buildUsmoeToNVVMPipeline);
  PassPipelineRegistration<>(
      "usmoe-to-gpu-emu",
      "Lower moe routing to the GPU path's kernels and launches (as "
      "usmoe-to-nvvm does), then run them on the CPU GPU emulator: kernels "
      "become fiber code with race, barrier and bounds checks, launches "
      "become calls of libusmoe_gpu_emulator.so",
      buildUsmoeToGPUEmulatorPipeline);
}
