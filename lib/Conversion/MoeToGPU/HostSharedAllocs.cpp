//===- HostSharedAllocs.cpp - managed memory for the host's buffers -------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "usmoe/Conversion/Passes.h"

namespace mlir::usmoe {
#define GEN_PASS_DEF_USMOEHOSTSHAREDALLOCSPASS
#include "usmoe/Conversion/Passes.h.inc"
} // namespace mlir::usmoe

using namespace mlir;

namespace {
/// Frees `memref` (gpu.alloc'ed) at `b`'s insertion point. gpu-to-llvm only
/// lowers the asynchronous form of gpu.dealloc, so it goes on a stream of
/// its own that is waited for right away.
void emitFree(OpBuilder &b, Location loc, Value memref) {
  Type token = gpu::AsyncTokenType::get(b.getContext());
  Value start =
      gpu::WaitOp::create(b, loc, token, ValueRange()).getAsyncToken();
  Value done = gpu::DeallocOp::create(b, loc, token, ValueRange{start}, memref)
                   .getAsyncToken();
  gpu::WaitOp::create(b, loc, Type(), ValueRange{done});
}

/// Whether `value` or a view of it reaches a func.return.
bool escapes(Value value) {
  for (Operation *user : value.getUsers()) {
    if (isa<func::ReturnOp>(user))
      return true;
    if (auto view = dyn_cast<ViewLikeOpInterface>(user))
      if (view.getViewSource() == value &&
          llvm::any_of(user->getResults(), escapes))
        return true;
  }
  return false;
}

struct UsmoeHostSharedAllocsPass
    : usmoe::impl::UsmoeHostSharedAllocsPassBase<UsmoeHostSharedAllocsPass> {
  /// Frees a buffer the function allocates in its entry block and does not
  /// return (gates and mask behind a plan, a layer's scratch) just before
  /// the return: the launches are synchronous, so every kernel that used it
  /// is done by then. (Bufferization's deallocation pipeline cannot do this:
  /// it rejects gpu.launch_func.)
  static void freeIfTemporary(gpu::AllocOp alloc) {
    auto func = dyn_cast<func::FuncOp>(alloc->getParentOp());
    if (!func || escapes(alloc.getMemref()) ||
        llvm::any_of(alloc.getMemref().getUsers(),
                     [](Operation *u) { return isa<gpu::DeallocOp>(u); }))
      return;
    auto ret = dyn_cast<func::ReturnOp>(func.getBody().front().getTerminator());
    if (!ret || !func.getBody().hasOneBlock())
      return;
    OpBuilder b(ret);
    emitFree(b, alloc.getLoc(), alloc.getMemref());
  }

  void runOnOperation() override {
    SmallVector<memref::AllocOp> allocs;
    SmallVector<memref::DeallocOp> deallocs;
    getOperation().walk<WalkOrder::PreOrder>([&](Operation *op) {
      // Kernels keep their own (shared / private) memory.
      if (isa<gpu::GPUModuleOp>(op))
        return WalkResult::skip();
      if (auto alloc = dyn_cast<memref::AllocOp>(op))
        allocs.push_back(alloc);
      else if (auto dealloc = dyn_cast<memref::DeallocOp>(op))
        deallocs.push_back(dealloc);
      return WalkResult::advance();
    });
    SmallVector<gpu::AllocOp> shared;
    for (memref::AllocOp alloc : allocs) {
      OpBuilder b(alloc);
      auto replacement = gpu::AllocOp::create(
          b, alloc.getLoc(), alloc.getType(), /*asyncToken=*/Type(),
          /*asyncDependencies=*/ValueRange(), alloc.getDynamicSizes(),
          alloc.getSymbolOperands(), /*hostShared=*/true);
      alloc.replaceAllUsesWith(replacement.getMemref());
      alloc.erase();
      shared.push_back(replacement);
    }
    for (memref::DeallocOp dealloc : deallocs) {
      OpBuilder b(dealloc);
      emitFree(b, dealloc.getLoc(), dealloc.getMemref());
      dealloc.erase();
    }
    for (gpu::AllocOp alloc : shared)
      freeIfTemporary(alloc);
  }
};
} // namespace
