//===- KernelTable.cpp - the usmoe.kernels description of a module --------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "KernelTable.h"

using namespace mlir;

void usmoe::recordKernel(ModuleOp module, gpu::GPUFuncOp kernel,
                         SmallVector<NamedAttribute> info,
                         const KernelCost &cost) {
  Builder b(module.getContext());
  SmallVector<Attribute> args;
  for (Type t : kernel.getArgumentTypes())
    args.push_back(TypeAttr::get(t));
  info.push_back(b.getNamedAttr("args", b.getArrayAttr(args)));
  info.push_back(b.getNamedAttr(
      "block",
      b.getDenseI32ArrayAttr(kernel.getKnownBlockSizeAttr().asArrayRef())));
  info.push_back(b.getNamedAttr("launches", b.getStringAttr(cost.launches)));
  info.push_back(b.getNamedAttr("bytes_read", b.getStringAttr(cost.bytesRead)));
  info.push_back(
      b.getNamedAttr("bytes_written", b.getStringAttr(cost.bytesWritten)));
  if (!cost.floorBytes.empty())
    info.push_back(
        b.getNamedAttr("floor_bytes", b.getStringAttr(cost.floorBytes)));
  NamedAttrList all;
  if (auto existing = module->getAttrOfType<DictionaryAttr>(kKernelTableAttr))
    all.append(existing.getValue());
  all.set(kernel.getName(), b.getDictionaryAttr(info));
  module->setAttr(kKernelTableAttr, all.getDictionary(module.getContext()));
}

int64_t usmoe::elementBytes(Type type) {
  return std::max<int64_t>(1, type.getIntOrFloatBitWidth() / 8);
}
