//===- EmulatorCalls.h - calls into the GPU emulator runtime ----*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// What the pieces of convert-gpu-to-emulator share: declarations of the
// runtime's functions (names and codes from usmoe/Runtime/GpuEmulator.h),
// site strings for reports, and the packed layout of kernel operands.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_GPUTOEMULATOR_EMULATORCALLS_H
#define USMOE_LIB_CONVERSION_GPUTOEMULATOR_EMULATORCALLS_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"

namespace mlir::usmoe::emulator {

/// Builds calls of the runtime, declaring each function once per module,
/// and NUL-terminated string constants, one global per distinct text.
class EmulatorCalls {
public:
  explicit EmulatorCalls(ModuleOp module) : module(module) {}

  /// `name(args)` returning `result` (none if null).
  Value call(OpBuilder &b, Location loc, StringRef name, ValueRange args,
             Type result = {});
  /// The address of a constant string.
  Value string(OpBuilder &b, Location loc, StringRef text);
  /// "file:line:col: op-name", the site that reports name for `op` (with
  /// "#i in kernel" when ops of that kind share the location, as generated
  /// kernels' ops do).
  Value site(OpBuilder &b, Operation *op);
  /// Numbers the ops under `root` whose site text would not be unique.
  void numberSharedSites(Operation *root, StringRef kernel);

  Type ptrType() { return LLVM::LLVMPointerType::get(module.getContext()); }
  Type i64Type() { return IntegerType::get(module.getContext(), 64); }
  Value i64(OpBuilder &b, Location loc, int64_t value);
  Value i32(OpBuilder &b, Location loc, int32_t value);
  /// index -> i64.
  Value toI64(OpBuilder &b, Location loc, Value index);

  /// The function type of an emulated kernel: (thread, args) -> ().
  FunctionType kernelType();

private:
  std::string siteText(Operation *op);

  ModuleOp module;
  llvm::StringMap<LLVM::GlobalOp> strings;
  llvm::DenseMap<Operation *, std::string> siteSuffix;
};

/// The LLVM type one kernel operand is packed as: a memref as its
/// descriptor struct, an index as i64, anything else as itself.
Type packedType(Type type);

/// Byte size of one element of `type` in memory (i1 takes a byte).
int64_t storageBytes(Type type);

/// The memref type without its memory space (workgroup buffers live in
/// plain host memory on the emulator).
Type withoutMemorySpace(Type type);

/// Host side: rewrites the gpu ops of `module`'s host code (launch_func,
/// alloc, dealloc, wait); fails on any other.
LogicalResult convertHostCode(ModuleOp module, EmulatorCalls &calls);

/// Kernel side: turns `kernel` into a func.func named `name` in `module`;
/// fails (with a diagnostic naming the op) on what the emulator cannot run.
LogicalResult convertKernel(gpu::GPUFuncOp kernel, StringRef name,
                            EmulatorCalls &calls);

/// The byte offset of each workgroup buffer of `kernel` in the block's
/// shared memory (16-byte aligned); `totalBytes` is what a block needs.
SmallVector<int64_t> workgroupOffsets(gpu::GPUFuncOp kernel,
                                      int64_t &totalBytes);

/// The name of the host function that emulates `kernel` of `moduleName`.
std::string emulatedKernelName(StringRef moduleName, StringRef kernel);

/// Bounds checks and checker calls for one memory access op (load, store,
/// atomic_rmw, vector.load / store) at `b`'s insertion point.
void instrumentAccess(OpBuilder &b, Operation *op, Value thread,
                      EmulatorCalls &calls);

} // namespace mlir::usmoe::emulator

#endif // USMOE_LIB_CONVERSION_GPUTOEMULATOR_EMULATORCALLS_H
