//===- KernelToFunction.cpp - a gpu.func as an emulated thread's code -----===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The kernel body moves, unchanged but for the GPU-specific ops, into
// `func.func @__usmoe_emu_<module>_<kernel>(%thread, %args)`: the entry block
// unpacks the operands (LLVM struct load, descriptor casts that fold away
// once memrefs reach LLVM), places the workgroup buffers in the block's
// shared memory and allocates private buffers on the fiber's stack.
//
//===----------------------------------------------------------------------===//

#include "EmulatorCalls.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "usmoe/Runtime/GpuEmulator.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::usmoe::emulator;

namespace {
bool isAccess(Operation *op) {
  return isa<memref::LoadOp, memref::StoreOp, memref::AtomicRMWOp,
             vector::LoadOp, vector::StoreOp>(op);
}

bool isModeledGpuOp(Operation *op) {
  return isa<gpu::ThreadIdOp, gpu::BlockIdOp, gpu::BlockDimOp, gpu::GridDimOp,
             gpu::LaneIdOp, gpu::GlobalIdOp, gpu::BarrierOp, gpu::ShuffleOp,
             gpu::ReturnOp, nvgpu::MmaSyncOp, NVVM::MembarOp>(op);
}

/// The one warp-level matrix op the emulator runs: m16n8k16 with f16 or
/// bf16 operands and f32 accumulators (what the expert GEMMs use).
LogicalResult checkModeledMma(nvgpu::MmaSyncOp mma) {
  std::array<int64_t, 3> shape = mma.getMmaShapeAsArray();
  auto a = cast<VectorType>(mma.getMatrixA().getType());
  auto b = cast<VectorType>(mma.getMatrixB().getType());
  auto c = cast<VectorType>(mma.getMatrixC().getType());
  Type element = a.getElementType();
  bool modeled = shape == std::array<int64_t, 3>{16, 8, 16} &&
                 (element.isF16() || element.isBF16()) &&
                 b.getElementType() == element && c.getElementType().isF32() &&
                 !mma.getTf32Enabled() &&
                 a.getShape() == ArrayRef<int64_t>{4, 2} &&
                 b.getShape() == ArrayRef<int64_t>{2, 2} &&
                 c.getShape() == ArrayRef<int64_t>{2, 2};
  if (modeled)
    return success();
  return mma.emitOpError("is not modeled by the GPU emulator (it runs "
                         "m16n8k16 with f16 or bf16 operands and f32 "
                         "accumulators)");
}

/// Rejects what the emulator would run unchecked or differently.
LogicalResult checkModeled(gpu::GPUFuncOp kernel) {
  WalkResult result = kernel.walk([&](Operation *op) {
    if (op == kernel)
      return WalkResult::advance();
    StringRef dialect = op->getName().getDialectNamespace();
    if (auto mma = dyn_cast<nvgpu::MmaSyncOp>(op))
      return failed(checkModeledMma(mma)) ? WalkResult::interrupt()
                                          : WalkResult::advance();
    if (isa<NVVM::MembarOp>(op))
      return WalkResult::advance();
    if ((dialect == "gpu" && !isModeledGpuOp(op)) || dialect == "nvvm" ||
        dialect == "nvgpu" || dialect == "rocdl" || dialect == "amdgpu") {
      op->emitOpError("is not modeled by the GPU emulator");
      return WalkResult::interrupt();
    }
    if (auto shuffle = dyn_cast<gpu::ShuffleOp>(op)) {
      Type type = shuffle.getValue().getType();
      if (!type.isInteger(32) && !type.isF32()) {
        op->emitOpError("of ")
            << type << " is not modeled by the GPU emulator (i32 and f32 are)";
        return WalkResult::interrupt();
      }
    }
    if (isAccess(op) || isModeledGpuOp(op) ||
        op->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
      return WalkResult::advance();
    auto effects = dyn_cast<MemoryEffectOpInterface>(op);
    if (!effects || effects.hasEffect<MemoryEffects::Read>() ||
        effects.hasEffect<MemoryEffects::Write>()) {
      op->emitOpError("touches memory in a way the GPU emulator does not "
                      "check (supported: memref.load/store/atomic_rmw, "
                      "vector.load/store)");
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (result.wasInterrupted())
    return failure();
  for (BlockArgument buffer : kernel.getWorkgroupAttributions())
    if (!cast<MemRefType>(buffer.getType()).hasStaticShape())
      return kernel.emitOpError(
          "has a dynamically sized workgroup buffer, which the GPU emulator "
          "does not model");
  return success();
}

/// A descriptor of a static, identity-layout memref at `ptr`.
Value descriptorAt(OpBuilder &b, Location loc, Value ptr, MemRefType type) {
  auto structType = cast<LLVM::LLVMStructType>(packedType(type));
  Type i64 = b.getI64Type();
  auto constant = [&](int64_t v) {
    return LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(v));
  };
  Value d = LLVM::PoisonOp::create(b, loc, structType);
  d = LLVM::InsertValueOp::create(b, loc, d, ptr, ArrayRef<int64_t>{0});
  d = LLVM::InsertValueOp::create(b, loc, d, ptr, ArrayRef<int64_t>{1});
  d = LLVM::InsertValueOp::create(b, loc, d, constant(0), ArrayRef<int64_t>{2});
  int64_t stride = 1;
  for (int64_t i = type.getRank() - 1; i >= 0; --i) {
    d = LLVM::InsertValueOp::create(b, loc, d, constant(type.getDimSize(i)),
                                    ArrayRef<int64_t>{3, i});
    d = LLVM::InsertValueOp::create(b, loc, d, constant(stride),
                                    ArrayRef<int64_t>{4, i});
    stride *= type.getDimSize(i);
  }
  return UnrealizedConversionCastOp::create(b, loc, type, d).getResult(0);
}

/// `gpu.*_id` / `*_dim` as a call of usmoe_emu_id.
Value emulatedId(OpBuilder &b, Location loc, EmulatorCalls &calls, Value thread,
                 int32_t kind) {
  Value id = calls.call(b, loc, "usmoe_emu_id",
                        {thread, calls.i32(b, loc, kind)}, calls.i64Type());
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), id);
}

int32_t shuffleMode(gpu::ShuffleMode mode) {
  switch (mode) {
  case gpu::ShuffleMode::XOR:
    return USMOE_EMU_SHFL_XOR;
  case gpu::ShuffleMode::UP:
    return USMOE_EMU_SHFL_UP;
  case gpu::ShuffleMode::DOWN:
    return USMOE_EMU_SHFL_DOWN;
  case gpu::ShuffleMode::IDX:
    return USMOE_EMU_SHFL_IDX;
  }
  llvm_unreachable("unknown shuffle mode");
}

/// Replaces one GPU op of the moved body by its emulation.
void emulate(Operation *op, Value thread, EmulatorCalls &calls) {
  OpBuilder b(op);
  Location loc = op->getLoc();
  auto id = [&](int32_t base, gpu::Dimension dim) {
    return emulatedId(b, loc, calls, thread, base + int32_t(dim));
  };
  llvm::TypeSwitch<Operation *>(op)
      .Case([&](gpu::ThreadIdOp o) {
        o.replaceAllUsesWith(id(USMOE_EMU_THREAD_X, o.getDimension()));
        o.erase();
      })
      .Case([&](gpu::BlockIdOp o) {
        o.replaceAllUsesWith(id(USMOE_EMU_BLOCK_X, o.getDimension()));
        o.erase();
      })
      .Case([&](gpu::BlockDimOp o) {
        o.replaceAllUsesWith(id(USMOE_EMU_BLOCK_DIM_X, o.getDimension()));
        o.erase();
      })
      .Case([&](gpu::GridDimOp o) {
        o.replaceAllUsesWith(id(USMOE_EMU_GRID_DIM_X, o.getDimension()));
        o.erase();
      })
      .Case([&](gpu::LaneIdOp o) {
        o.replaceAllUsesWith(emulatedId(b, loc, calls, thread, USMOE_EMU_LANE));
        o.erase();
      })
      .Case([&](gpu::GlobalIdOp o) {
        Value global = arith::AddIOp::create(
            b, loc,
            arith::MulIOp::create(b, loc,
                                  id(USMOE_EMU_BLOCK_X, o.getDimension()),
                                  id(USMOE_EMU_BLOCK_DIM_X, o.getDimension())),
            id(USMOE_EMU_THREAD_X, o.getDimension()));
        o.replaceAllUsesWith(global);
        o.erase();
      })
      .Case([&](gpu::BarrierOp o) {
        calls.call(b, loc, "usmoe_emu_barrier", {thread, calls.site(b, o)});
        o.erase();
      })
      .Case([&](NVVM::MembarOp o) {
        // Blocks run one after another and every access is performed at
        // once: a fence has nothing left to order.
        o.erase();
      })
      .Case([&](gpu::ShuffleOp o) {
        Type i32 = b.getI32Type();
        Value value = o.getValue();
        bool isFloat = value.getType().isF32();
        if (isFloat)
          value = arith::BitcastOp::create(b, loc, i32, value);
        Value packed = calls.call(b, loc, "usmoe_emu_shuffle",
                                  {thread, value, o.getOffset(), o.getWidth(),
                                   calls.i32(b, loc, shuffleMode(o.getMode())),
                                   calls.site(b, o)},
                                  calls.i64Type());
        Value result = arith::TruncIOp::create(b, loc, i32, packed);
        if (isFloat)
          result = arith::BitcastOp::create(b, loc, b.getF32Type(), result);
        Value valid = arith::TruncIOp::create(
            b, loc, b.getI1Type(),
            arith::ShRUIOp::create(b, loc, packed, calls.i64(b, loc, 32)));
        o.replaceAllUsesWith(ValueRange{result, valid});
        o.erase();
      })
      .Case([&](nvgpu::MmaSyncOp o) {
        // Fragments in (as f32: exact for f16/bf16), the warp's product out.
        Type f32 = b.getF32Type();
        int32_t index = 0;
        for (Value operand : {o.getMatrixA(), o.getMatrixB(), o.getMatrixC()}) {
          auto type = cast<VectorType>(operand.getType());
          for (int64_t r = 0; r < type.getDimSize(0); ++r)
            for (int64_t j = 0; j < type.getDimSize(1); ++j) {
              Value element = vector::ExtractOp::create(
                  b, loc, operand, ArrayRef<int64_t>{r, j});
              if (!element.getType().isF32())
                element = arith::ExtFOp::create(b, loc, f32, element);
              calls.call(b, loc, "usmoe_emu_mma_operand",
                         {thread, calls.i32(b, loc, index++), element});
            }
        }
        calls.call(b, loc, "usmoe_emu_mma_sync", {thread, calls.site(b, o)});
        SmallVector<Value> d;
        for (int32_t i = 0; i < 4; ++i)
          d.push_back(calls.call(b, loc, "usmoe_emu_mma_result",
                                 {thread, calls.i32(b, loc, i)}, f32));
        Value product = vector::FromElementsOp::create(
            b, loc, cast<VectorType>(o.getType()), d);
        o.getResult().replaceAllUsesWith(product);
        o.erase();
      })
      .Case([&](gpu::ReturnOp o) {
        func::ReturnOp::create(b, loc);
        o.erase();
      })
      .Default([&](Operation *access) {
        instrumentAccess(b, access, thread, calls);
      });
}
} // namespace

LogicalResult mlir::usmoe::emulator::convertKernel(gpu::GPUFuncOp kernel,
                                                   StringRef name,
                                                   EmulatorCalls &calls) {
  if (failed(checkModeled(kernel)))
    return failure();
  Location loc = kernel.getLoc();
  OpBuilder b(kernel->getParentOfType<gpu::GPUModuleOp>());
  auto func = func::FuncOp::create(b, loc, name, calls.kernelType());
  func.setPrivate();
  Block *entry = func.addEntryBlock();
  Value thread = entry->getArgument(0);
  b.setInsertionPointToStart(entry);

  // Operands, as packed by the launch.
  SmallVector<Value> replacements;
  SmallVector<Type> fields;
  for (Type t : kernel.getArgumentTypes())
    fields.push_back(packedType(t));
  auto packedStruct = LLVM::LLVMStructType::getLiteral(b.getContext(), fields);
  Value packed =
      LLVM::LoadOp::create(b, loc, packedStruct, entry->getArgument(1));
  for (auto [i, type] : llvm::enumerate(kernel.getArgumentTypes())) {
    Value field = LLVM::ExtractValueOp::create(b, loc, packed,
                                               ArrayRef<int64_t>{int64_t(i)});
    if (isa<MemRefType>(type))
      field =
          UnrealizedConversionCastOp::create(b, loc, type, field).getResult(0);
    else if (type.isIndex())
      field = arith::IndexCastOp::create(b, loc, type, field);
    replacements.push_back(field);
  }
  // Workgroup buffers at 16-byte aligned offsets of the shared memory.
  // They keep their memory space until the accesses are instrumented (it
  // tells shared from global accesses).
  Value shared =
      calls.call(b, loc, "usmoe_emu_shared_memory", {thread}, calls.ptrType());
  int64_t sharedBytes = 0;
  SmallVector<int64_t> offsets = workgroupOffsets(kernel, sharedBytes);
  for (auto [buffer, offset] :
       llvm::zip(kernel.getWorkgroupAttributions(), offsets)) {
    Value ptr = LLVM::GEPOp::create(b, loc, calls.ptrType(), b.getI8Type(),
                                    shared, ArrayRef<LLVM::GEPArg>{offset});
    replacements.push_back(
        descriptorAt(b, loc, ptr, cast<MemRefType>(buffer.getType())));
  }
  for (BlockArgument buffer : kernel.getPrivateAttributions())
    replacements.push_back(
        memref::AllocaOp::create(b, loc, cast<MemRefType>(buffer.getType())));

  // Move the body in.
  Region &body = kernel.getBody();
  Block *old = &body.front();
  for (auto [arg, value] : llvm::zip(old->getArguments(), replacements))
    arg.replaceAllUsesWith(value);
  entry->getOperations().splice(entry->end(), old->getOperations());
  old->erase();
  func.getBody().getBlocks().splice(func.getBody().end(), body.getBlocks());

  calls.numberSharedSites(func, kernel.getName());
  SmallVector<Operation *> toEmulate;
  func.walk([&](Operation *op) {
    if (isModeledGpuOp(op) || isAccess(op))
      toEmulate.push_back(op);
  });
  for (Operation *op : toEmulate)
    emulate(op, thread, calls);

  // Workgroup memory is plain host memory here.
  func.walk([](Operation *op) {
    for (Value result : op->getResults())
      result.setType(withoutMemorySpace(result.getType()));
    for (Region &region : op->getRegions())
      for (Block &block : region)
        for (BlockArgument arg : block.getArguments())
          arg.setType(withoutMemorySpace(arg.getType()));
  });
  return success();
}

SmallVector<int64_t>
mlir::usmoe::emulator::workgroupOffsets(gpu::GPUFuncOp kernel,
                                        int64_t &totalBytes) {
  SmallVector<int64_t> offsets;
  totalBytes = 0;
  for (BlockArgument buffer : kernel.getWorkgroupAttributions()) {
    auto type = cast<MemRefType>(buffer.getType());
    offsets.push_back(totalBytes);
    int64_t bytes = type.getNumElements() * storageBytes(type.getElementType());
    totalBytes += (bytes + 15) / 16 * 16;
  }
  return offsets;
}
