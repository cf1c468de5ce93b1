//===- Pipelines.h - usmoe compilation pipelines ----------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The pipelines are built by these functions only: usmoe-opt registers them
// under their command-line names and the Python module calls the same
// functions, so the two can never drift apart.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_PIPELINES_PIPELINES_H
#define USMOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"
#include "usmoe/Conversion/MoeToLoops/MoeToLoops.h"

namespace mlir {
class OpPassManager;
namespace usmoe {

struct UsmoeToCPUPipelineOptions
    : public PassPipelineOptions<UsmoeToCPUPipelineOptions> {
  PassOptions::Option<bool> fuseRouting{
      *this, "fuse-routing",
      llvm::cl::desc("Fuse score + selection chains into moe.route first"),
      llvm::cl::init(true)};
  PassOptions::Option<ExpertGemm> expertGemm{
      *this, "expert-gemm",
      llvm::cl::desc("Where moe.expert_ffn's GEMMs run (convert-moe-to-loops)"),
      llvm::cl::init(ExpertGemm::Loops),
      llvm::cl::values(
          clEnumValN(ExpertGemm::Loops, "loops", "generated scf loops"),
          clEnumValN(ExpertGemm::OneDnn, "onednn",
                     "oneDNN matmuls in libusmoe_cpu_runtime.so"))};
  PassOptions::Option<bool> openmp{
      *this, "openmp",
      llvm::cl::desc("Run the lowering's parallel loops (scf.parallel) on "
                     "OpenMP threads: link LLVM's libomp"),
      llvm::cl::init(false)};
};

/// moe (tensors) -> LLVM dialect, ready for mlir-runner or the JIT:
/// fuse routing, lower moe to loops, bufferize, free temporaries, lower to
/// LLVM. Functions keep their signatures with identity-layout memrefs.
void buildUsmoeToCPUPipeline(OpPassManager &pm,
                             const UsmoeToCPUPipelineOptions &options);

struct UsmoeToNVVMPipelineOptions
    : public PassPipelineOptions<UsmoeToNVVMPipelineOptions> {
  PassOptions::Option<std::string> chip{
      *this, "chip", llvm::cl::desc("GPU architecture (sm_XX)"),
      llvm::cl::init("sm_90")};
  PassOptions::Option<std::string> features{
      *this, "features", llvm::cl::desc("PTX features (ISA version)"),
      llvm::cl::init("+ptx80")};
  PassOptions::Option<std::string> format{
      *this, "format",
      llvm::cl::desc("Artifact: isa (PTX text), bin (cubin) or fatbin"),
      llvm::cl::init("isa")};
  PassOptions::Option<unsigned> optLevel{
      *this, "opt-level", llvm::cl::desc("NVPTX optimization level (0-3)"),
      llvm::cl::init(3)};
  PassOptions::Option<std::string> cudaRoot{
      *this, "cuda-root",
      llvm::cl::desc("CUDA toolkit root (default: $CUDA_ROOT, $CUDA_HOME, "
                     "else the toolkit found when usmoe was built)"),
      llvm::cl::init("")};
};

/// moe (tensors) -> host LLVM dialect + a gpu.binary of NVVM kernels: fuse
/// routing, check the toolkit, convert-moe-to-gpu, bufferize, attach the
/// NVVM target (chip, features, libdevice), lower kernels to NVVM and the
/// host to LLVM, and serialize the kernels (PTX, cubin or fatbin).
void buildUsmoeToNVVMPipeline(OpPassManager &pm,
                              const UsmoeToNVVMPipelineOptions &options);

/// moe (tensors) -> LLVM dialect host code that runs the GPU path's kernels
/// (the same convert-moe-to-gpu output as usmoe-to-nvvm) on the GPU
/// emulator: link or load libusmoe_gpu_emulator.so to run it.
void buildUsmoeToGPUEmulatorPipeline(OpPassManager &pm);

/// The CUDA toolkit root the NVVM pipeline uses when none is given.
std::string defaultCudaRoot();

/// Registers `usmoe-to-cpu`, `usmoe-to-nvvm` and `usmoe-to-gpu-emu` with the
/// pass registry.
void registerUsmoePipelines();

} // namespace usmoe
} // namespace mlir

#endif // USMOE_PIPELINES_PIPELINES_H
