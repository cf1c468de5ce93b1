//===- KernelTable.h - the usmoe.kernels description of a module -*- C++
//-*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// convert-moe-to-gpu describes every kernel it generates in the module
// attribute `usmoe.kernels` (name -> #moe.kernel): its kind, argument types,
// block, grid and cost as shape expressions (ShapeExpr.h), so that a runtime
// without MLIR can launch the serialized kernels (usmoe-extract-binary
// writes the table as JSON) and usmoe-gpu-cost-report can evaluate the cost
// model for given shapes.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_MOETOGPU_KERNELTABLE_H
#define USMOE_LIB_CONVERSION_MOETOGPU_KERNELTABLE_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <utility>

namespace mlir::usmoe {

/// The module attribute that holds the table.
inline constexpr llvm::StringLiteral kKernelTableAttr = "usmoe.kernels";
/// The gpu.module that holds every generated kernel.
inline constexpr llvm::StringLiteral kKernelModule = "usmoe_kernels";

/// A kernel's cost per call, as shape expressions over B, T, E (the [B, T,
/// E] routing shape), K (top-k), M (plan rows), D and F (hidden and FFN
/// sizes). Every read is counted as a DRAM read (no L2 reuse): an upper
/// bound for re-reads of data that fits in L2.
struct KernelCost {
  KernelCost(std::string launches, std::string bytesRead,
             std::string bytesWritten, std::string floorBytes = "",
             std::string flops = "", std::string tailBytes = "",
             std::string instructions = "")
      : launches(std::move(launches)), bytesRead(std::move(bytesRead)),
        bytesWritten(std::move(bytesWritten)),
        floorBytes(std::move(floorBytes)), flops(std::move(flops)),
        tailBytes(std::move(tailBytes)), instructions(std::move(instructions)) {
  }

  /// Launches per call ("0" when a run-time condition skips the kernel).
  std::string launches;
  /// Bytes read and written over all its launches of a call.
  std::string bytesRead, bytesWritten;
  /// On one kernel per op: the bytes the op cannot avoid moving (operands
  /// read once, results written once): the HBM floor. Empty on the others.
  std::string floorBytes;
  /// Floating-point operations per call, where arithmetic can bound the
  /// kernel's time (tensor-core GEMMs); empty elsewhere.
  std::string flops;
  /// Of the bytes read and written, those the last block to finish moves
  /// alone after the rest (a last-block scan); empty when none.
  std::string tailBytes;
  /// Thread instructions per call, where the arithmetic can bound the
  /// kernel's time (the passes that recompute scores); empty elsewhere.
  std::string instructions;
};

/// Adds `kernel` to the table of `module`: its `kind`, `grid`, argument
/// types, block, `cost`, and `info`, what the kind adds (E, k, ...).
void recordKernel(ModuleOp module, gpu::GPUFuncOp kernel, StringRef kind,
                  StringRef grid, ArrayRef<NamedAttribute> info,
                  const KernelCost &cost);

/// Checks the table of `module` against its kernels: every gpu.func kernel
/// of `kernelModule` has an entry and every entry is a valid #moe.kernel of
/// a kernel, with that kernel's argument types (in order) and known block
/// size. Emits an error naming the entry otherwise.
LogicalResult verifyKernelTable(ModuleOp module,
                                StringRef kernelModule = kKernelModule);

/// Bytes of one element of `type` in memory (i1: one byte).
int64_t elementBytes(Type type);

} // namespace mlir::usmoe

#endif // USMOE_LIB_CONVERSION_MOETOGPU_KERNELTABLE_H
