//===- Bf16MmaSyncToNVVM.cpp - bf16 nvgpu.mma.sync as nvvm.mma.sync -------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The expert GEMMs multiply bf16 fragments with nvgpu.mma.sync (the op the
// GPU emulator models); upstream's nvgpu -> nvvm lowering only knows f16
// fragments, so bf16 ones are packed into i32 registers here.
//
//===----------------------------------------------------------------------===//

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "usmoe/Conversion/Passes.h"

namespace mlir::usmoe {
#define GEN_PASS_DEF_USMOEBF16MMASYNCTONVVMPASS
#include "usmoe/Conversion/Passes.h.inc"
} // namespace mlir::usmoe

using namespace mlir;

namespace {
/// nvgpu.mma.sync m16n8k16, bf16 x bf16 + f32 -> nvvm.mma.sync.
struct Bf16MmaSyncToNVVM : OpRewritePattern<nvgpu::MmaSyncOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(nvgpu::MmaSyncOp op,
                                PatternRewriter &rewriter) const override {
    auto aType = cast<VectorType>(op.getMatrixA().getType());
    auto cType = cast<VectorType>(op.getMatrixC().getType());
    if (!aType.getElementType().isBF16() || !cType.getElementType().isF32() ||
        op.getMmaShapeAsArray() != std::array<int64_t, 3>{16, 8, 16})
      return rewriter.notifyMatchFailure(op, "not m16n8k16 bf16 -> f32");
    Location loc = op.getLoc();
    Type i32 = rewriter.getI32Type(), f32 = rewriter.getF32Type();
    auto packedRegister = VectorType::get({1}, i32);
    // Row r of a vector<Nx2xbf16> fragment is register r.
    auto registers = [&](Value fragment) {
      SmallVector<Value> regs;
      int64_t rows = cast<VectorType>(fragment.getType()).getDimSize(0);
      for (int64_t r = 0; r < rows; ++r) {
        Value pair = vector::ExtractOp::create(rewriter, loc, fragment,
                                               ArrayRef<int64_t>{r});
        Value bits =
            vector::BitCastOp::create(rewriter, loc, packedRegister, pair);
        regs.push_back(vector::ExtractOp::create(rewriter, loc, bits,
                                                 ArrayRef<int64_t>{0}));
      }
      return regs;
    };
    SmallVector<Value> c;
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t j = 0; j < 2; ++j)
        c.push_back(vector::ExtractOp::create(rewriter, loc, op.getMatrixC(),
                                              ArrayRef<int64_t>{r, j}));
    auto resultType = LLVM::LLVMStructType::getLiteral(
        rewriter.getContext(), SmallVector<Type>(4, f32));
    Value d = NVVM::MmaOp::create(
        rewriter, loc, resultType, registers(op.getMatrixA()),
        registers(op.getMatrixB()), c, {16, 8, 16},
        /*b1Op=*/std::nullopt, /*intOverflow=*/std::nullopt,
        std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16,
                                      NVVM::MMATypes::bf16},
        std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                       NVVM::MMALayout::col});
    SmallVector<Value> elements;
    for (int64_t i = 0; i < 4; ++i)
      elements.push_back(LLVM::ExtractValueOp::create(rewriter, loc, d, i));
    rewriter.replaceOpWithNewOp<vector::FromElementsOp>(op, cType, elements);
    return success();
  }
};

struct UsmoeBf16MmaSyncToNVVMPass
    : usmoe::impl::UsmoeBf16MmaSyncToNVVMPassBase<UsmoeBf16MmaSyncToNVVMPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<Bf16MmaSyncToNVVM>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
