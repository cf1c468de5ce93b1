//===- usmoe-fuzz.cpp - libFuzzer target: parse, verify, lower -----------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Each input is MLIR text. It is parsed and verified in a fresh context,
// then every module that verifies goes through each usmoe pipeline on a
// clone: usmoe-to-cpu, convert-moe-to-gpu, usmoe-to-gpu-emu, and
// usmoe-to-nvvm (PTX only) when USMOE_FUZZ_NVVM=1 and the CUDA toolkit is
// there. Diagnostics are the expected outcome for bad input; a signal, an
// abort or a sanitizer report is a bug (scripts/fuzz.sh keeps the input).
//
//===----------------------------------------------------------------------===//

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "usmoe/InitAll.h"
#include "usmoe/Support/InputLimits.h"

#include <cstdlib>

using namespace mlir;

namespace {

const DialectRegistry &registry() {
  static DialectRegistry *registry = [] {
    registerAllPasses();
    usmoe::registerAllPasses();
    auto *r = new DialectRegistry();
    registerAllDialects(*r);
    registerAllExtensions(*r);
    registerAllToLLVMIRTranslations(*r);
    usmoe::registerAllDialects(*r);
    return r;
  }();
  return *registry;
}

SmallVector<std::string> pipelines() {
  SmallVector<std::string> result = {"usmoe-to-cpu", "convert-moe-to-gpu",
                                     "usmoe-to-gpu-emu"};
  if (const char *nvvm = std::getenv("USMOE_FUZZ_NVVM"); nvvm && *nvvm == '1')
    result.push_back("usmoe-to-nvvm{format=isa}");
  return result;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // A std::string: MLIR's lexer reads up to a NUL terminator, as files and
  // Python strings have and libFuzzer's buffers do not.
  std::string text(reinterpret_cast<const char *>(data), size);
  if (!usmoe::checkNesting(text).empty())
    return 0;
  MLIRContext context(registry(), MLIRContext::Threading::DISABLED);
  // Bad input is expected to end in diagnostics: drop them.
  ScopedDiagnosticHandler quiet(&context,
                                [](Diagnostic &) { return success(); });
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(text, &context);
  if (!module || failed(verify(*module)))
    return 0;
  static const SmallVector<std::string> all = pipelines();
  for (const std::string &pipeline : all) {
    OwningOpRef<ModuleOp> copy = module->clone();
    PassManager pm(&context);
    if (failed(parsePassPipeline("builtin.module(" + pipeline + ")", pm)))
      abort(); // the pipeline names above are ours: a bug if they fail
    (void)pm.run(*copy);
  }
  return 0;
}
