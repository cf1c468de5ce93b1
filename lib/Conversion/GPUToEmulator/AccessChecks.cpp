//===- AccessChecks.cpp - bounds and race checks of kernel accesses -------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Before each access: every index is checked against the accessed memref's
// size in its dimension (a vector access needs room for the whole vector),
// and the address, width and kind go to the runtime's race checker. Bounds
// are those of the memref, not of its allocation: a read past the end of a
// view is caught even when the bytes happen to exist.
//
//===----------------------------------------------------------------------===//

#include "EmulatorCalls.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "usmoe/Runtime/GpuEmulator.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::usmoe::emulator;

namespace {
/// What an access op touches.
struct Access {
  Value memref;
  SmallVector<Value> indices;
  Type accessed; ///< element or vector type
  int kind = 0;  ///< UsmoeEmuAccess flags
};

Access describe(Operation *op) {
  return llvm::TypeSwitch<Operation *, Access>(op)
      .Case([](memref::LoadOp o) {
        return Access{o.getMemRef(), llvm::to_vector(o.getIndices()),
                      o.getType(), USMOE_EMU_READ};
      })
      .Case([](memref::StoreOp o) {
        return Access{o.getMemRef(), llvm::to_vector(o.getIndices()),
                      o.getValueToStore().getType(), USMOE_EMU_WRITE};
      })
      .Case([](memref::AtomicRMWOp o) {
        return Access{o.getMemref(), llvm::to_vector(o.getIndices()),
                      o.getValue().getType(),
                      USMOE_EMU_READ | USMOE_EMU_WRITE | USMOE_EMU_ATOMIC};
      })
      .Case([](vector::LoadOp o) {
        return Access{o.getBase(), llvm::to_vector(o.getIndices()),
                      o.getVectorType(), USMOE_EMU_READ};
      })
      .Case([](vector::StoreOp o) {
        return Access{o.getBase(), llvm::to_vector(o.getIndices()),
                      o.getVectorType(), USMOE_EMU_WRITE};
      });
}
} // namespace

void mlir::usmoe::emulator::instrumentAccess(OpBuilder &b, Operation *op,
                                             Value thread,
                                             EmulatorCalls &calls) {
  Location loc = op->getLoc();
  Access access = describe(op);
  auto type = cast<MemRefType>(access.memref.getType());
  int64_t rank = type.getRank();
  int kind = access.kind;
  if (gpu::GPUDialect::hasWorkgroupMemoryAddressSpace(type))
    kind |= USMOE_EMU_SHARED;

  // A vector covers the trailing dimensions of the memref.
  SmallVector<int64_t> extents(rank, 1);
  if (auto vector = dyn_cast<VectorType>(access.accessed)) {
    int64_t lead = rank - vector.getRank();
    for (int64_t d = 0; d < vector.getRank(); ++d)
      extents[lead + d] = vector.getDimSize(d);
  }

  Value site = calls.site(b, op);
  auto metadata =
      memref::ExtractStridedMetadataOp::create(b, loc, access.memref);
  for (int64_t d = 0; d < rank; ++d) {
    Value index = access.indices[d];
    Value size = metadata.getSizes()[d];
    Value zero = arith::ConstantIndexOp::create(b, loc, 0);
    Value end = arith::AddIOp::create(
        b, loc, index, arith::ConstantIndexOp::create(b, loc, extents[d]));
    Value bad = arith::OrIOp::create(
        b, loc,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, index, zero),
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sgt, end, size));
    auto ifBad = scf::IfOp::create(b, loc, bad, /*withElseRegion=*/false);
    OpBuilder inside = ifBad.getThenBodyBuilder();
    calls.call(inside, loc, "usmoe_emu_out_of_bounds",
               {thread, calls.toI64(inside, loc, index),
                calls.toI64(inside, loc, size), calls.i64(inside, loc, d),
                site});
  }

  Value linear = metadata.getOffset();
  for (int64_t d = 0; d < rank; ++d)
    linear =
        arith::AddIOp::create(b, loc, linear,
                              arith::MulIOp::create(b, loc, access.indices[d],
                                                    metadata.getStrides()[d]));
  int64_t elementBytes = storageBytes(type.getElementType());
  Value base =
      memref::ExtractAlignedPointerAsIndexOp::create(b, loc, access.memref);
  Value address = arith::AddIOp::create(
      b, loc, base,
      arith::MulIOp::create(
          b, loc, linear,
          arith::ConstantIndexOp::create(b, loc, elementBytes)));
  calls.call(b, loc, "usmoe_emu_access",
             {thread, calls.toI64(b, loc, address),
              calls.i64(b, loc, storageBytes(access.accessed)),
              calls.i32(b, loc, kind), site});
}
