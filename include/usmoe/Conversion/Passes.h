//===- Passes.h - usmoe conversion passes -----------------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_CONVERSION_PASSES_H
#define USMOE_CONVERSION_PASSES_H

#include "usmoe/Conversion/VectorFriendly/VectorFriendly.h"
#include "usmoe/Conversion/GPUToEmulator/GPUToEmulator.h"
#include "usmoe/Conversion/MoeToGPU/MoeToGPU.h"
#include "usmoe/Conversion/MoeToLoops/MoeToLoops.h"

namespace mlir::usmoe {

#define GEN_PASS_REGISTRATION
#include "usmoe/Conversion/Passes.h.inc"

} // namespace mlir::usmoe

#endif // USMOE_CONVERSION_PASSES_H
