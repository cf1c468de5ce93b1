//===- MoeToGPU.h - lower fused routing to GPU kernels ----------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_CONVERSION_MOETOGPU_MOETOGPU_H
#define USMOE_CONVERSION_MOETOGPU_MOETOGPU_H

#include "mlir/Pass/Pass.h"

namespace mlir::usmoe {

#define GEN_PASS_DECL_CONVERTMOETOGPUPASS
#define GEN_PASS_DECL_USMOEREQUIRECUDATOOLKITPASS
#define GEN_PASS_DECL_USMOECHECKGPUTARGETPASS
#define GEN_PASS_DECL_USMOEHOSTSHAREDALLOCSPASS
#include "usmoe/Conversion/Passes.h.inc"

} // namespace mlir::usmoe

#endif // USMOE_CONVERSION_MOETOGPU_MOETOGPU_H
