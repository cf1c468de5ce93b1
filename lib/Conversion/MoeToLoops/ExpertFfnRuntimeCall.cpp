//===- ExpertFfnRuntimeCall.cpp - expert_ffn as a oneDNN runtime call -----===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The expert GEMMs are where a MoE layer spends its time; generated scalar
// loops reach a tenth of what a tuned GEMM does on the same core (see
// docs/Design.md). With expert-gemm=onednn, f32 and bf16 moe.expert_ffn
// become one call of usmoe_cpu_expert_ffn_<type> (libusmoe_cpu_runtime.so,
// include/usmoe/Runtime/CpuRuntime.h), which runs oneDNN matmuls per expert
// on every core. The operands are erased to dynamic shapes so that one
// declaration serves every layer; the weights go as strided views, so a
// checkpoint's layout and fused halves reach the library without copies.
//
//===----------------------------------------------------------------------===//

#include "PlanChecks.h"
#include "PopulatePatterns.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"
#include "usmoe/Dialect/Moe/IR/MoeOps.h"

using namespace mlir;
using namespace mlir::usmoe::loops;

namespace {

/// `type` with every size dynamic (same element type and layout).
MemRefType withDynamicSizes(MemRefType type) {
  SmallVector<int64_t> sizes(type.getRank(), ShapedType::kDynamic);
  return MemRefType::get(sizes, type.getElementType(), type.getLayout());
}

/// The runtime function `name(x, offsets, w1, w3, w2, out, layout) -> i32`
/// with MLIR's C interface, declared once per module.
func::FuncOp lookupOrDeclare(PatternRewriter &rewriter, Operation *from,
                             StringRef name, FunctionType type) {
  auto module = from->getParentOfType<ModuleOp>();
  if (auto existing = module.lookupSymbol<func::FuncOp>(name))
    return existing;
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPointToStart(module.getBody());
  auto decl = func::FuncOp::create(rewriter, from->getLoc(), name, type);
  decl.setPrivate();
  decl->setAttr("llvm.emit_c_interface", rewriter.getUnitAttr());
  return decl;
}

struct ExpertFfnToRuntimeCall : OpRewritePattern<moe::ExpertFfnOp> {
  ExpertFfnToRuntimeCall(MLIRContext *context)
      : OpRewritePattern(context, /*benefit=*/2) {}

  LogicalResult matchAndRewrite(moe::ExpertFfnOp op,
                                PatternRewriter &rewriter) const override {
    Type element = op.getInput().getType().getElementType();
    StringRef name = element.isF32()    ? "usmoe_cpu_expert_ffn_f32"
                     : element.isBF16() ? "usmoe_cpu_expert_ffn_bf16"
                                        : "";
    if (name.empty())
      return rewriter.notifyMatchFailure(op, "f16 experts stay on loops");
    if (!op->getParentOfType<ModuleOp>())
      return rewriter.notifyMatchFailure(op, "needs a module to declare in");
    LoopBuilder b(op.getLoc(), rewriter);
    Value x = toBuffer(b, op.getInput());
    Value offsets = toBuffer(b, op.getExpertOffsets());
    checkOffsets(b, offsets, dim(b, x, 0), kExpertFfnOffsetsCheck);
    Value out = allocResult(b, op.getType(), x);
    SmallVector<Value> operands = {x,
                                   offsets,
                                   toStridedBuffer(b, op.getW1()),
                                   toStridedBuffer(b, op.getW3()),
                                   toStridedBuffer(b, op.getW2()),
                                   out};
    for (Value &operand : operands)
      operand = memref::CastOp::create(
          b, withDynamicSizes(cast<MemRefType>(operand.getType())), operand);
    operands.push_back(i32Const(b, int32_t(op.getLayout())));
    auto type = FunctionType::get(
        op.getContext(), ValueRange(operands).getTypes(), {b.getI32Type()});
    func::FuncOp callee = lookupOrDeclare(rewriter, op, name, type);
    Value status = func::CallOp::create(b, callee, operands).getResult(0);
    cf::AssertOp::create(
        b, cmpi(b, arith::CmpIPredicate::eq, status, i32Const(b, 0)),
        "moe: expert_ffn: the oneDNN GEMMs of libusmoe_cpu_runtime.so failed "
        "(it printed why on stderr)");
    rewriter.replaceOp(op, toTensor(b, out, op.getType()));
    return success();
  }
};

} // namespace

void mlir::usmoe::loops::populateExpertFfnRuntimeCallPatterns(
    RewritePatternSet &patterns) {
  patterns.add<ExpertFfnToRuntimeCall>(patterns.getContext());
}
