//===- MoeToGPU.h - lower fused routing to GPU kernels ----------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_CONVERSION_MOETOGPU_MOETOGPU_H
#define USMOE_CONVERSION_MOETOGPU_MOETOGPU_H

#include "mlir/Pass/Pass.h"

#include <cstdint>

namespace mlir::usmoe {

/// Elements of a selection set per block of the GPU select: a set of at
/// most this many runs on one block, a larger one on ceil(count / chunk)
/// blocks (4096 = 4 keys per thread of a 1024-thread block; 256 blocks for
/// a 16384 x 64 sequence, about two per SM of an H100).
inline constexpr int64_t kDefaultSelectChunk = 4096;

#define GEN_PASS_DECL_CONVERTMOETOGPUPASS
#define GEN_PASS_DECL_USMOEREQUIRECUDATOOLKITPASS
#define GEN_PASS_DECL_USMOECHECKGPUTARGETPASS
#define GEN_PASS_DECL_USMOEHOSTSHAREDALLOCSPASS
#include "usmoe/Conversion/Passes.h.inc"

} // namespace mlir::usmoe

#endif // USMOE_CONVERSION_MOETOGPU_MOETOGPU_H
