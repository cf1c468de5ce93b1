//===- GpuArtifacts.cpp - serialized kernels and their metadata -----------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "usmoe/Target/GpuArtifacts.h"
#include "mlir/Dialect/GPU/IR/CompilationInterfaces.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "usmoe/Dialect/Moe/IR/MoeOps.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

using namespace mlir;
using namespace mlir::usmoe;

static StringRef extensionOf(gpu::CompilationTarget format) {
  switch (format) {
  case gpu::CompilationTarget::Assembly:
    return "ptx";
  case gpu::CompilationTarget::Binary:
    return "cubin";
  case gpu::CompilationTarget::Fatbin:
    return "fatbin";
  default:
    return "bin";
  }
}

/// The kernel parameters, in launch order, as (name, C type) pairs.
static llvm::json::Array parameters(ArrayAttr args) {
  llvm::json::Array params;
  for (auto [i, attr] : llvm::enumerate(args)) {
    Type type = cast<TypeAttr>(attr).getValue();
    std::string base = "arg" + std::to_string(i);
    auto memref = dyn_cast<MemRefType>(type);
    if (!memref) {
      std::string s;
      llvm::raw_string_ostream os(s);
      type.print(os);
      params.push_back(llvm::json::Array{base, s});
      continue;
    }
    params.push_back(llvm::json::Array{base + ".allocated", "ptr"});
    params.push_back(llvm::json::Array{base + ".aligned", "ptr"});
    params.push_back(llvm::json::Array{base + ".offset", "i64"});
    for (int64_t d = 0; d < memref.getRank(); ++d)
      params.push_back(
          llvm::json::Array{base + ".size" + std::to_string(d), "i64"});
    for (int64_t d = 0; d < memref.getRank(); ++d)
      params.push_back(
          llvm::json::Array{base + ".stride" + std::to_string(d), "i64"});
  }
  return params;
}

std::vector<GpuObject> mlir::usmoe::collectGpuObjects(ModuleOp module) {
  std::vector<GpuObject> objects;
  for (auto binary : module.getOps<gpu::BinaryOp>())
    for (Attribute attr : binary.getObjectsAttr()) {
      auto object = dyn_cast<gpu::ObjectAttr>(attr);
      if (!object)
        continue;
      GpuObject o;
      o.binary = binary.getName().str();
      if (auto target = dyn_cast<NVVM::NVVMTargetAttr>(object.getTarget()))
        o.chip = target.getChip().str();
      o.extension = extensionOf(object.getFormat()).str();
      o.bytes = object.getObject().getValue().str();
      objects.push_back(std::move(o));
    }
  return objects;
}

std::string mlir::usmoe::gpuObjectFileName(const GpuObject &object,
                                           size_t objectsInBinary) {
  std::string name = object.binary;
  if (objectsInBinary > 1)
    name += "." + object.chip;
  return name + "." + object.extension;
}

std::string mlir::usmoe::gpuMetadataJson(ModuleOp module,
                                         StringRef binaryName) {
  std::vector<GpuObject> all = collectGpuObjects(module);
  size_t count = 0;
  for (const GpuObject &o : all)
    count += o.binary == binaryName;
  llvm::json::Array objects;
  for (const GpuObject &o : all)
    if (o.binary == binaryName)
      objects.push_back(llvm::json::Object{
          {"file", gpuObjectFileName(o, count)}, {"chip", o.chip}});
  auto table = module->getAttrOfType<DictionaryAttr>("usmoe.kernels");
  llvm::json::Object kernels;
  if (table)
    for (NamedAttribute entry : table) {
      auto kernel = cast<moe::KernelAttr>(entry.getValue());
      llvm::json::Object k;
      // What a kind adds first, so that the entry's own fields win.
      for (NamedAttribute field : kernel.getInfo()) {
        Attribute v = field.getValue();
        if (auto s = dyn_cast<StringAttr>(v))
          k[field.getName().str()] = s.getValue().str();
        else if (auto bl = dyn_cast<BoolAttr>(v)) // before IntegerAttr: an i1
          k[field.getName().str()] = bl.getValue();
        else if (auto i = dyn_cast<IntegerAttr>(v))
          k[field.getName().str()] = i.getInt();
      }
      k["kind"] = kernel.getKind().getValue().str();
      for (auto [key, text] : kernel.getExpressions())
        if (!text.empty())
          k[key.str()] = text.str();
      k["block"] = llvm::json::Array(kernel.getBlock().asArrayRef());
      llvm::json::Array printed;
      for (Attribute t : kernel.getArgs()) {
        std::string s;
        llvm::raw_string_ostream os(s);
        cast<TypeAttr>(t).getValue().print(os);
        printed.push_back(s);
      }
      k["args"] = std::move(printed);
      k["params"] = parameters(kernel.getArgs());
      kernels[entry.getName().str()] = std::move(k);
    }
  llvm::json::Object meta{{"module", binaryName.str()},
                          {"objects", std::move(objects)},
                          {"kernels", std::move(kernels)}};
  std::string json;
  llvm::raw_string_ostream os(json);
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(meta))) << "\n";
  return json;
}
