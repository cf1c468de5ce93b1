//===- KernelTable.cpp - the usmoe.kernels description of a module --------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "KernelTable.h"
#include "usmoe/Dialect/Moe/IR/MoeOps.h"

using namespace mlir;

LogicalResult usmoe::verifyKernelTable(ModuleOp module,
                                       StringRef kernelModule) {
  auto table = module->getAttrOfType<DictionaryAttr>(kKernelTableAttr);
  auto kernels = module.lookupSymbol<gpu::GPUModuleOp>(kernelModule);
  if (!table && !kernels)
    return success();
  if (!table || !kernels)
    return module.emitError()
           << "'" << kKernelTableAttr << "' and the gpu.module @"
           << kernelModule << " come together";
  for (auto func : kernels.getOps<gpu::GPUFuncOp>())
    if (func.isKernel() && !table.get(func.getName()))
      return module.emitError()
             << "'" << kKernelTableAttr << "' has no entry for kernel @"
             << func.getName();
  for (NamedAttribute entry : table) {
    auto fail = [&]() {
      return module.emitError() << "'" << kKernelTableAttr << "' entry '"
                                << entry.getName().getValue() << "': ";
    };
    auto func = kernels.lookupSymbol<gpu::GPUFuncOp>(entry.getName());
    if (!func || !func.isKernel())
      return fail() << "no such kernel in @" << kernelModule;
    auto kernel = dyn_cast<moe::KernelAttr>(entry.getValue());
    if (!kernel)
      return fail() << "not a #moe.kernel";
    // What the attribute's own verifier checks, for entries built in C++.
    if (failed(moe::KernelAttr::verify(
            fail, kernel.getKind(), kernel.getArgs(), kernel.getBlock(),
            kernel.getGrid(), kernel.getLaunches(), kernel.getBytesRead(),
            kernel.getBytesWritten(), kernel.getFloorBytes(), kernel.getFlops(),
            kernel.getTailBytes(), kernel.getInstructions(), kernel.getInfo())))
      return failure();
    ArrayAttr args = kernel.getArgs();
    if (args.size() != func.getNumArguments() ||
        !llvm::all_of(llvm::zip(args, func.getArgumentTypes()), [](auto p) {
          return cast<TypeAttr>(std::get<0>(p)).getValue() == std::get<1>(p);
        }))
      return fail() << "'args' must list the kernel's argument types";
    if (!func.getKnownBlockSizeAttr() ||
        kernel.getBlock().asArrayRef() !=
            func.getKnownBlockSizeAttr().asArrayRef())
      return fail() << "'block' must be the kernel's known block size";
  }
  return success();
}

void usmoe::recordKernel(ModuleOp module, gpu::GPUFuncOp kernel, StringRef kind,
                         StringRef grid, ArrayRef<NamedAttribute> info,
                         const KernelCost &cost) {
  Builder b(module.getContext());
  SmallVector<Attribute> args;
  for (Type t : kernel.getArgumentTypes())
    args.push_back(TypeAttr::get(t));
  auto entry = moe::KernelAttr::get(
      module.getContext(), b.getStringAttr(kind), b.getArrayAttr(args),
      b.getDenseI32ArrayAttr(kernel.getKnownBlockSizeAttr().asArrayRef()),
      b.getStringAttr(grid), b.getStringAttr(cost.launches),
      b.getStringAttr(cost.bytesRead), b.getStringAttr(cost.bytesWritten),
      cost.floorBytes.empty() ? StringAttr() : b.getStringAttr(cost.floorBytes),
      cost.flops.empty() ? StringAttr() : b.getStringAttr(cost.flops),
      cost.tailBytes.empty() ? StringAttr() : b.getStringAttr(cost.tailBytes),
      cost.instructions.empty() ? StringAttr()
                                : b.getStringAttr(cost.instructions),
      b.getDictionaryAttr(info));
  NamedAttrList all;
  if (auto existing = module->getAttrOfType<DictionaryAttr>(kKernelTableAttr))
    all.append(existing.getValue());
  all.set(kernel.getName(), entry);
  module->setAttr(kKernelTableAttr, all.getDictionary(module.getContext()));
}

int64_t usmoe::elementBytes(Type type) {
  return std::max<int64_t>(1, type.getIntOrFloatBitWidth() / 8);
}
