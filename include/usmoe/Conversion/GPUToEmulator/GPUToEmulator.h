//===- GPUToEmulator.h - GPU kernels for the CPU emulator -------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_CONVERSION_GPUTOEMULATOR_GPUTOEMULATOR_H
#define USMOE_CONVERSION_GPUTOEMULATOR_GPUTOEMULATOR_H

#include "mlir/Pass/Pass.h"

namespace mlir::usmoe {

#define GEN_PASS_DECL_CONVERTGPUTOEMULATORPASS
#include "usmoe/Conversion/Passes.h.inc"

} // namespace mlir::usmoe

#endif // USMOE_CONVERSION_GPUTOEMULATOR_GPUTOEMULATOR_H
