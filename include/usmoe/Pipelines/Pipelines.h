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

namespace mlir {
class OpPassManager;
namespace usmoe {

struct UsmoeToCPUPipelineOptions
    : public PassPipelineOptions<UsmoeToCPUPipelineOptions> {
  PassOptions::Option<bool> fuseRouting{
      *this, "fuse-routing",
      llvm::cl::desc("Fuse score + selection chains into moe.route first"),
      llvm::cl::init(true)};
};

/// moe (tensors) -> LLVM dialect, ready for mlir-runner or the JIT:
/// fuse routing, lower moe to loops, bufferize, free temporaries, lower to
/// LLVM. Functions keep their signatures with identity-layout memrefs.
void buildUsmoeToCPUPipeline(OpPassManager &pm,
                             const UsmoeToCPUPipelineOptions &options);

/// Registers `usmoe-to-cpu` with the global pass registry.
void registerUsmoePipelines();

} // namespace usmoe
} // namespace mlir

#endif // USMOE_PIPELINES_PIPELINES_H
