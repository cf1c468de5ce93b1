//===- Kernels.h - the GPU routing kernels ----------------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_MOETOGPU_KERNELS_H
#define USMOE_LIB_CONVERSION_MOETOGPU_KERNELS_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinTypes.h"

namespace mlir::usmoe::gpu_kernels {

/// Launch shape of the Token Choice kernel: one warp per token.
inline constexpr int64_t kTokenChoiceWarpsPerBlock = 4;

/// Experts a Token Choice kernel can hold in registers (64 per lane).
inline constexpr int64_t kTokenChoiceMaxExperts = 2048;

/// Builds, at `builder`'s insertion point inside a gpu.module, the kernel
/// `name(logits, gates, mask)` for memrefs of the given types ([B, T, E]).
gpu::GPUFuncOp buildTokenChoiceKernel(OpBuilder &builder, Location loc,
                                      StringRef name, MemRefType logits,
                                      MemRefType gates, MemRefType mask,
                                      int64_t k, bool renormalize);

} // namespace mlir::usmoe::gpu_kernels

#endif // USMOE_LIB_CONVERSION_MOETOGPU_KERNELS_H
