//===- usmoe-extract-binary.cpp - write GPU artifacts out of lowered IR ---===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// usmoe-opt x.mlir -usmoe-to-nvvm=format=bin | usmoe-extract-binary -o out/
//
// writes, for each gpu.binary, one file per object (`<name>.ptx`, `.cubin`
// or `.fatbin`, with the chip in the name when there are several) and
// `<name>.json`: the kernels, their launch shapes and their parameter list
// (each memref argument expands to allocated ptr, aligned ptr, offset, sizes,
// strides), everything a runtime without MLIR needs to launch them.
//
//===----------------------------------------------------------------------===//

#include "mlir/Dialect/GPU/IR/CompilationInterfaces.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "usmoe/InitAll.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;

static llvm::cl::opt<std::string> inputFile(llvm::cl::Positional,
                                            llvm::cl::desc("<input>"),
                                            llvm::cl::init("-"));
static llvm::cl::opt<std::string>
    outputDir("o", llvm::cl::desc("Output directory"), llvm::cl::init("."));

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

static bool writeFile(StringRef path, StringRef bytes) {
  std::string error;
  auto file = openOutputFile(path, &error);
  if (!file) {
    llvm::errs() << "usmoe-extract-binary: " << error << "\n";
    return false;
  }
  file->os() << bytes;
  file->keep();
  return true;
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

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  llvm::cl::ParseCommandLineOptions(argc, argv,
                                    "usmoe GPU artifact extractor\n");
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  usmoe::registerAllDialects(registry);
  MLIRContext context(registry);
  context.allowUnregisteredDialects();

  std::string error;
  auto file = openInputFile(inputFile, &error);
  if (!file) {
    llvm::errs() << "usmoe-extract-binary: " << error << "\n";
    return 1;
  }
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return 1;
  if (std::error_code ec = llvm::sys::fs::create_directories(outputDir)) {
    llvm::errs() << "usmoe-extract-binary: cannot create '" << outputDir
                 << "': " << ec.message() << "\n";
    return 1;
  }

  auto info = (*module)->getAttrOfType<DictionaryAttr>("usmoe.kernels");
  unsigned binaries = 0;
  for (auto binary : module->getOps<gpu::BinaryOp>()) {
    ++binaries;
    StringRef name = binary.getName();
    llvm::json::Array objects;
    ArrayAttr all = binary.getObjectsAttr();
    for (Attribute attr : all) {
      auto object = dyn_cast<gpu::ObjectAttr>(attr);
      if (!object)
        continue;
      std::string chip;
      if (auto target = dyn_cast<NVVM::NVVMTargetAttr>(object.getTarget()))
        chip = target.getChip().str();
      std::string fileName = name.str();
      if (all.size() > 1)
        fileName += "." + chip;
      fileName += "." + extensionOf(object.getFormat()).str();
      llvm::SmallString<256> path(outputDir);
      llvm::sys::path::append(path, fileName);
      if (!writeFile(path, object.getObject().getValue()))
        return 1;
      objects.push_back(llvm::json::Object{{"file", fileName}, {"chip", chip}});
    }
    llvm::json::Object kernels;
    if (info)
      for (NamedAttribute kernel : info) {
        auto dict = cast<DictionaryAttr>(kernel.getValue());
        llvm::json::Object k;
        for (NamedAttribute field : dict) {
          Attribute v = field.getValue();
          if (auto s = dyn_cast<StringAttr>(v))
            k[field.getName().str()] = s.getValue().str();
          else if (auto i = dyn_cast<IntegerAttr>(v))
            k[field.getName().str()] = i.getInt();
          else if (auto bl = dyn_cast<BoolAttr>(v))
            k[field.getName().str()] = bl.getValue();
          else if (auto a = dyn_cast<DenseI32ArrayAttr>(v))
            k[field.getName().str()] = llvm::json::Array(a.asArrayRef());
          else if (auto types = dyn_cast<ArrayAttr>(v)) {
            llvm::json::Array printed;
            for (Attribute t : types) {
              std::string s;
              llvm::raw_string_ostream os(s);
              cast<TypeAttr>(t).getValue().print(os);
              printed.push_back(s);
            }
            k[field.getName().str()] = std::move(printed);
          }
        }
        k["params"] = parameters(dict.getAs<ArrayAttr>("args"));
        kernels[kernel.getName().str()] = std::move(k);
      }
    llvm::json::Object meta{{"module", name.str()},
                            {"objects", std::move(objects)},
                            {"kernels", std::move(kernels)}};
    llvm::SmallString<256> path(outputDir);
    llvm::sys::path::append(path, name.str() + ".json");
    std::string json;
    llvm::raw_string_ostream os(json);
    os << llvm::formatv("{0:2}", llvm::json::Value(std::move(meta))) << "\n";
    if (!writeFile(path, json))
      return 1;
  }
  if (binaries == 0) {
    llvm::errs() << "usmoe-extract-binary: no gpu.binary in the input (run "
                    "usmoe-opt -usmoe-to-nvvm first)\n";
    return 1;
  }
  return 0;
}
