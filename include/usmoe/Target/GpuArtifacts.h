//===- GpuArtifacts.h - serialized kernels and their metadata ---*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// After usmoe-to-nvvm, a module holds gpu.binary ops (PTX, cubin or fatbin
// objects) and the `usmoe.kernels` attribute that convert-moe-to-gpu wrote.
// These helpers turn them into files a runtime without MLIR can use; the
// usmoe-extract-binary tool and the Python module share them.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_TARGET_GPUARTIFACTS_H
#define USMOE_TARGET_GPUARTIFACTS_H

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace mlir::usmoe {

/// One serialized object of a gpu.binary.
struct GpuObject {
  std::string binary; ///< the gpu.binary's name (the gpu.module's)
  std::string chip;
  std::string extension; ///< "ptx", "cubin" or "fatbin"
  std::string bytes;
};

/// Every object of every gpu.binary in `module`, in order.
std::vector<GpuObject> collectGpuObjects(ModuleOp module);

/// JSON metadata of `binaryName`: its object files (named
/// `<binary>[.<chip>].<extension>`) and each kernel with its launch shape,
/// argument types and the expanded parameter list (a memref argument is
/// allocated ptr, aligned ptr, offset, sizes, strides).
std::string gpuMetadataJson(ModuleOp module, StringRef binaryName);

/// The file name of `object` among `all` objects of the same binary.
std::string gpuObjectFileName(const GpuObject &object, size_t objectsInBinary);

} // namespace mlir::usmoe

#endif // USMOE_TARGET_GPUARTIFACTS_H
