//===- NoAliasArgs.cpp - llvm.noalias from usmoe.noalias_args -------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "usmoe/Conversion/VectorFriendly/VectorFriendly.h"

namespace mlir::usmoe {
#define GEN_PASS_DEF_USMOENOALIASARGSPASS
#include "usmoe/Conversion/Passes.h.inc"
} // namespace mlir::usmoe

using namespace mlir;

namespace {
struct UsmoeNoAliasArgsPass
    : usmoe::impl::UsmoeNoAliasArgsPassBase<UsmoeNoAliasArgsPass> {
  void runOnOperation() override {
    auto noAlias =
        StringAttr::get(&getContext(), LLVM::LLVMDialect::getNoAliasAttrName());
    WalkResult result = getOperation().walk([&](LLVM::LLVMFuncOp func) {
      auto positions =
          func->getAttrOfType<DenseI64ArrayAttr>(usmoe::kNoAliasArgsAttrName);
      if (!positions)
        return WalkResult::advance();
      func->removeAttr(usmoe::kNoAliasArgsAttrName);
      for (int64_t position : positions.asArrayRef()) {
        if (position < 0 || position >= func.getNumArguments() ||
            !isa<LLVM::LLVMPointerType>(func.getArgument(position).getType())) {
          func.emitError() << usmoe::kNoAliasArgsAttrName << " lists "
                           << position << ", which is not a pointer parameter";
          return WalkResult::interrupt();
        }
        func.setArgAttr(position, noAlias, UnitAttr::get(&getContext()));
      }
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};
} // namespace
