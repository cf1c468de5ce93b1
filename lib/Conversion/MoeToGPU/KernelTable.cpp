//===- KernelTable.cpp - the usmoe.kernels description of a module --------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "KernelTable.h"
#include "usmoe/Conversion/MoeToGPU/ShapeExpr.h"

#include "llvm/ADT/StringExtras.h"

using namespace mlir;

/// Whether `text` parses as a shape expression (every name bound to 1).
static bool parsesAsShapeExpr(StringRef text, std::string &error) {
  llvm::StringMap<int64_t> symbols;
  for (size_t i = 0; i < text.size();) {
    if (!llvm::isAlpha(text[i]) && text[i] != '_') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && (llvm::isAlnum(text[j]) || text[j] == '_'))
      ++j;
    symbols[text.slice(i, j)] = 1;
    i = j;
  }
  return usmoe::evaluateShapeExpr(text, symbols, error).has_value();
}

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
    auto fail = [&](const Twine &what) {
      return module.emitError() << "'" << kKernelTableAttr << "' entry '"
                                << entry.getName().getValue() << "': " << what;
    };
    auto func = kernels.lookupSymbol<gpu::GPUFuncOp>(entry.getName());
    if (!func || !func.isKernel())
      return fail("no such kernel in @" + kernelModule);
    auto info = dyn_cast<DictionaryAttr>(entry.getValue());
    if (!info)
      return fail("not a dictionary");
    if (!info.getAs<StringAttr>("kind"))
      return fail("'kind' must be a string");
    auto args = info.getAs<ArrayAttr>("args");
    if (!args || args.size() != func.getNumArguments() ||
        !llvm::all_of(llvm::zip(args, func.getArgumentTypes()), [](auto p) {
          auto t = dyn_cast<TypeAttr>(std::get<0>(p));
          return t && t.getValue() == std::get<1>(p);
        }))
      return fail("'args' must list the kernel's argument types");
    auto block = info.getAs<DenseI32ArrayAttr>("block");
    if (!block || !func.getKnownBlockSizeAttr() ||
        block.asArrayRef() != func.getKnownBlockSizeAttr().asArrayRef())
      return fail("'block' must be the kernel's known block size");
    for (StringRef key :
         {"grid", "launches", "bytes_read", "bytes_written", "floor_bytes"}) {
      auto text = info.getAs<StringAttr>(key);
      if (!text) {
        if (key == "floor_bytes" && !info.get(key))
          continue;
        return fail("'" + key + "' must be a shape expression string");
      }
      std::string error;
      if (!parsesAsShapeExpr(text.getValue(), error))
        return fail("'" + key + "' = \"" + text.getValue() + "\": " + error);
    }
  }
  return success();
}

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
