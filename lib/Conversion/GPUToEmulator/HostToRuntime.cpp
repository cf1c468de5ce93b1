//===- HostToRuntime.cpp - launches as calls of the emulator --------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// A launch packs its kernel operands into one LLVM struct on the stack (a
// memref goes as its descriptor, through a cast that folds away once the
// host code reaches LLVM) and calls usmoe_emu_launch with the address of the
// emulated kernel. Host allocations are ordinary heap memory: on the
// emulator the host and the "device" share one address space.
//
//===----------------------------------------------------------------------===//

#include "EmulatorCalls.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::usmoe::emulator;

namespace {
/// Fills the fresh allocation `buffer` with the emulator's poison bytes.
void poison(OpBuilder &b, Location loc, TypedValue<MemRefType> buffer,
            EmulatorCalls &calls) {
  MemRefType type = buffer.getType();
  Value bytes = arith::ConstantIndexOp::create(
      b, loc, storageBytes(type.getElementType()));
  for (int64_t d = 0; d < type.getRank(); ++d)
    bytes = arith::MulIOp::create(b, loc, bytes,
                                  memref::DimOp::create(b, loc, buffer, d));
  Value address =
      memref::ExtractAlignedPointerAsIndexOp::create(b, loc, buffer);
  calls.call(b, loc, "usmoe_emu_poison",
             {calls.toI64(b, loc, address), calls.toI64(b, loc, bytes)});
}

LogicalResult convertLaunch(gpu::LaunchFuncOp launch, EmulatorCalls &calls) {
  auto module = launch->getParentOfType<ModuleOp>();
  auto kernel = SymbolTable::lookupNearestSymbolFrom<gpu::GPUFuncOp>(
      module, launch.getKernel());
  if (!kernel)
    return launch.emitOpError("launches a kernel the module does not define");
  if (launch.hasClusterSize())
    return launch.emitOpError(
        "with a cluster size is not modeled by the GPU emulator");
  OpBuilder b(launch);
  Location loc = launch.getLoc();

  SmallVector<Type> fields;
  for (Value operand : launch.getKernelOperands())
    fields.push_back(packedType(operand.getType()));
  auto structType = LLVM::LLVMStructType::getLiteral(b.getContext(), fields);
  Value packed = LLVM::PoisonOp::create(b, loc, structType);
  for (auto [i, operand] : llvm::enumerate(launch.getKernelOperands())) {
    Value field = operand;
    if (isa<MemRefType>(operand.getType()))
      field = UnrealizedConversionCastOp::create(b, loc, fields[i], operand)
                  .getResult(0);
    else if (operand.getType().isIndex())
      field = calls.toI64(b, loc, operand);
    packed = LLVM::InsertValueOp::create(b, loc, packed, field,
                                         ArrayRef<int64_t>{int64_t(i)});
  }
  // One stack slot per launch, in the entry block (not in a loop).
  Value slot;
  {
    OpBuilder::InsertionGuard guard(b);
    auto func = launch->getParentOfType<FunctionOpInterface>();
    b.setInsertionPointToStart(&func.getFunctionBody().front());
    Value one = LLVM::ConstantOp::create(b, loc, b.getI64Type(),
                                         b.getI64IntegerAttr(1));
    slot = LLVM::AllocaOp::create(b, loc, calls.ptrType(), structType, one);
  }
  LLVM::StoreOp::create(b, loc, packed, slot);

  int64_t staticShared = 0;
  (void)workgroupOffsets(kernel, staticShared);
  Value shared = calls.i64(b, loc, staticShared);
  if (Value dynamic = launch.getDynamicSharedMemorySize())
    shared = arith::AddIOp::create(
        b, loc, shared,
        arith::ExtSIOp::create(b, loc, b.getI64Type(), dynamic));
  std::string name =
      emulatedKernelName(launch.getKernelModuleName(), launch.getKernelName());
  Value function = func::ConstantOp::create(b, loc, calls.kernelType(), name);
  calls.call(b, loc, "usmoe_emu_launch",
             {function, slot,
              calls.string(b, loc, launch.getKernelName().getValue()),
              calls.site(b, launch), calls.toI64(b, loc, launch.getGridSizeX()),
              calls.toI64(b, loc, launch.getGridSizeY()),
              calls.toI64(b, loc, launch.getGridSizeZ()),
              calls.toI64(b, loc, launch.getBlockSizeX()),
              calls.toI64(b, loc, launch.getBlockSizeY()),
              calls.toI64(b, loc, launch.getBlockSizeZ()), shared});
  return success();
}
} // namespace

LogicalResult mlir::usmoe::emulator::convertHostCode(ModuleOp module,
                                                     EmulatorCalls &calls) {
  SmallVector<Operation *> gpuOps;
  WalkResult walk = module.walk<WalkOrder::PreOrder>([&](Operation *op) {
    if (isa<gpu::GPUModuleOp>(op))
      return WalkResult::skip();
    if (op->getName().getDialectNamespace() != "gpu")
      return WalkResult::advance();
    if (!isa<gpu::LaunchFuncOp, gpu::AllocOp, gpu::DeallocOp, gpu::WaitOp>(
            op)) {
      op->emitOpError("is not modeled by the GPU emulator");
      return WalkResult::interrupt();
    }
    gpuOps.push_back(op);
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();

  for (Operation *op : gpuOps) {
    OpBuilder b(op);
    if (auto launch = dyn_cast<gpu::LaunchFuncOp>(op)) {
      if (failed(convertLaunch(launch, calls)))
        return failure();
    } else if (auto alloc = dyn_cast<gpu::AllocOp>(op)) {
      auto heap = memref::AllocOp::create(
          b, alloc.getLoc(), alloc.getMemref().getType(),
          alloc.getDynamicSizes(), alloc.getSymbolOperands());
      alloc.getMemref().replaceAllUsesWith(heap.getResult());
      poison(b, alloc.getLoc(), heap, calls);
    } else if (auto dealloc = dyn_cast<gpu::DeallocOp>(op)) {
      memref::DeallocOp::create(b, dealloc.getLoc(), dealloc.getMemref());
    }
  }
  // Launches are synchronous here: async tokens only chain gpu ops, which
  // all go away.
  for (Operation *op : llvm::reverse(gpuOps)) {
    for (Value result : op->getResults())
      if (isa<gpu::AsyncTokenType>(result.getType()))
        result.dropAllUses();
    op->erase();
  }
  return success();
}
