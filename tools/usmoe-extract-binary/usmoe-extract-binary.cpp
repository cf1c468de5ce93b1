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
// `<name>.json`: the kernels, their launch shapes and their parameter list,
// everything a runtime without MLIR needs to launch them.
//
//===----------------------------------------------------------------------===//

#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "usmoe/InitAll.h"
#include "usmoe/Target/GpuArtifacts.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;

static llvm::cl::opt<std::string> inputFile(llvm::cl::Positional,
                                            llvm::cl::desc("<input>"),
                                            llvm::cl::init("-"));
static llvm::cl::opt<std::string>
    outputDir("o", llvm::cl::desc("Output directory"), llvm::cl::init("."));

static bool writeFile(StringRef name, StringRef bytes) {
  llvm::SmallString<256> path(outputDir);
  llvm::sys::path::append(path, name);
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

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  llvm::cl::ParseCommandLineOptions(argc, argv,
                                    "usmoe GPU artifact extractor\n");
  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  usmoe::registerAllDialects(registry);
  MLIRContext context(registry);

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

  std::vector<usmoe::GpuObject> objects = usmoe::collectGpuObjects(*module);
  if (objects.empty()) {
    llvm::errs() << "usmoe-extract-binary: no gpu.binary in the input (run "
                    "usmoe-opt -usmoe-to-nvvm first)\n";
    return 1;
  }
  if (std::error_code ec = llvm::sys::fs::create_directories(outputDir)) {
    llvm::errs() << "usmoe-extract-binary: cannot create '" << outputDir
                 << "': " << ec.message() << "\n";
    return 1;
  }
  llvm::StringMap<size_t> perBinary;
  for (const usmoe::GpuObject &o : objects)
    ++perBinary[o.binary];
  for (const usmoe::GpuObject &o : objects)
    if (!writeFile(usmoe::gpuObjectFileName(o, perBinary[o.binary]), o.bytes))
      return 1;
  for (const auto &binary : perBinary)
    if (!writeFile(binary.getKey().str() + ".json",
                   usmoe::gpuMetadataJson(*module, binary.getKey())))
      return 1;
  return 0;
}
