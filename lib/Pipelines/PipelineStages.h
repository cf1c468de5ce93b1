//===- PipelineStages.h - stages shared by the usmoe pipelines --*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_PIPELINES_PIPELINESTAGES_H
#define USMOE_LIB_PIPELINES_PIPELINESTAGES_H

namespace mlir {
class OpPassManager;
namespace usmoe {

/// One-shot bufferization across function boundaries with identity layouts
/// (so exported functions take plain memrefs), then the tensor/linalg ops of
/// the surrounding program lowered to loops.
void addBufferizationStage(OpPassManager &pm);

/// moe (tensors) -> host code on memrefs that launches GPU kernels: fuse
/// routing, canonicalize, convert-moe-to-gpu, bufferize, and the host's
/// buffers in managed memory. What the NVVM and the emulator pipelines share,
/// so the emulator runs exactly the kernels and launches of the GPU path.
void addMoeToGPUStage(OpPassManager &pm);

/// scf, memref, math, arith, index, cf and func (and with `gpuLaunches`,
/// gpu.launch_func -> mgpu* calls) to the LLVM dialect.
void addHostToLLVMStage(OpPassManager &pm, bool gpuLaunches,
                        bool openmp = false);

} // namespace usmoe
} // namespace mlir

#endif // USMOE_LIB_PIPELINES_PIPELINESTAGES_H
