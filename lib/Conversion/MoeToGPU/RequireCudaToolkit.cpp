//===- RequireCudaToolkit.cpp - check the CUDA toolkit up front -----------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "mlir/IR/BuiltinOps.h"
#include "usmoe/Conversion/Passes.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

namespace mlir::usmoe {
#define GEN_PASS_DEF_USMOEREQUIRECUDATOOLKITPASS
#include "usmoe/Conversion/Passes.h.inc"
} // namespace mlir::usmoe

using namespace mlir;

namespace {
struct UsmoeRequireCudaToolkitPass
    : usmoe::impl::UsmoeRequireCudaToolkitPassBase<
          UsmoeRequireCudaToolkitPass> {
  using Base::Base;

  void runOnOperation() override {
    auto require = [&](StringRef relative, StringRef what) {
      llvm::SmallString<256> path(cudaRoot);
      llvm::sys::path::append(path, relative);
      if (llvm::sys::fs::exists(path))
        return true;
      getOperation().emitError()
          << "the CUDA toolkit is not usable: " << what << " not found at '"
          << path << "'; install the toolkit or pass its root with "
          << "cuda-root=<dir> (or set CUDA_ROOT)";
      return false;
    };
    if (cudaRoot.empty()) {
      getOperation().emitError()
          << "no CUDA toolkit: pass cuda-root=<dir> or set CUDA_ROOT";
      return signalPassFailure();
    }
    if (!require("nvvm/libdevice/libdevice.10.bc", "libdevice") ||
        (needPtxas && !require("bin/ptxas", "ptxas")))
      signalPassFailure();
  }
};
} // namespace
