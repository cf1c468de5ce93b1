//===- ScoreKernels.cpp - score kernels for the selecting kernels ---------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Expert Choice and Unified routing select over a whole sequence, so what
// their scores need goes to memory first:
//
//  - row softmax, one warp per token: the row's max and sum (the select
//    kernels recompute P, or U = c1 * P + c2 * (2/E) sigmoid(L), from the
//    logit and them: recomputeRowScore), or, before a softmax_tokens mix,
//    the row scores into the gate buffer;
//  - the softmax_tokens expert score, one block per (sequence, expert)
//    column, its threads over the tokens (block max and sum), mixed into U.
//
//===----------------------------------------------------------------------===//

#include "Conversion/Common/RoutingMath.h"
#include "Kernels.h"
#include "WarpReduce.h"
#include "WarpRow.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using namespace mlir::usmoe::gpu_kernels;
using arith::CmpFPredicate;
using arith::CmpIPredicate;

gpu::GPUFuncOp gpu_kernels::createKernel(OpBuilder &builder, Location loc,
                                         StringRef name, ArrayRef<Type> args,
                                         int32_t threads,
                                         ArrayRef<Type> workgroup) {
  auto func = gpu::GPUFuncOp::create(
      builder, loc, name, builder.getFunctionType(args, {}), workgroup);
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                builder.getUnitAttr());
  func.setKnownBlockSizeAttr(builder.getDenseI32ArrayAttr({threads, 1, 1}));
  return func;
}

gpu::GPUFuncOp gpu_kernels::buildKernel(OpBuilder &builder, Location loc,
                                        StringRef name, ArrayRef<Type> args,
                                        int32_t threads, KernelBody body,
                                        ArrayRef<Type> workgroup) {
  auto func = createKernel(builder, loc, name, args, threads, workgroup);
  Block &entry = func.getBody().front();
  LoopBuilder b(loc, builder);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&entry);
  SmallVector<Value> values(
      entry.getArguments().take_front(func.getNumArguments()));
  SmallVector<Value> shared(func.getWorkgroupAttributions());
  body(b, values, shared);
  gpu::ReturnOp::create(b);
  return func;
}

gpu::GPUFuncOp gpu_kernels::buildRowScoreKernel(
    OpBuilder &builder, Location loc, StringRef name, MemRefType logitsType,
    MemRefType scoresType, std::optional<double> alpha,
    const ModelOptions &model, ArrayRef<MemRefType> zeroed, bool statsOnly) {
  const int64_t experts = logitsType.getDimSize(2);
  SmallVector<Type> argTypes = {
      logitsType,
      statsOnly ? statsBufferType(builder.getContext()) : scoresType};
  argTypes.append(zeroed.begin(), zeroed.end());
  return buildKernel(
      builder, loc, name, argTypes, int32_t(kRowsPerScoreBlock * kWarpSize),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value>) {
        Value logits = args[0], out = args[1];
        zeroFromEveryThread(b, args.drop_front(2));
        forWarpRow(b, logits, kRowsPerScoreBlock,
                   [&](LoopBuilder &b, Value bi, Value ti,
                       const RowLanes &lanes, Value) {
                     WarpRow row =
                         emitWarpRowSoftmax(b, logits, bi, ti, lanes, model);
                     if (statsOnly) {
                       // From the lane holding expert 0 (the row's first lane).
                       Value first = cmpi(b, CmpIPredicate::eq, row.expert[0],
                                          indexConst(b, 0));
                       ifThen(b, first, [&](LoopBuilder &b) {
                         Value r = statsSlot(b, logits, bi, ti);
                         store(b, row.max, out, {r});
                         store(b, row.sum, out, {addi(b, r, indexConst(b, 1))});
                       });
                       return;
                     }
                     for (int64_t v = 0; v < row.perLane; ++v) {
                       Value s = row.score[v];
                       if (alpha)
                         s = unifiedScore(b, s, row.logit[v], *alpha, experts);
                       auto write = [&](LoopBuilder &b) {
                         store(b, s, out, {bi, ti, row.expert[v]});
                       };
                       if (row.alwaysInBounds(v, experts))
                         write(b);
                       else
                         ifThen(b, row.inBounds[v], write);
                     }
                   });
      });
}

Value gpu_kernels::recomputeRowScore(LoopBuilder &b,
                                     const RecomputedScores &how, Value logits,
                                     Value stats, ArrayRef<Value> idx,
                                     const ModelOptions &model) {
  const int64_t experts = how.logits.getDimSize(2);
  Value x = model.logit(b, loadAsF32(b, logits, idx));
  Value r = statsSlot(b, logits, idx[0], idx[1]);
  Value max = load(b, stats, {r});
  Value sum = load(b, stats, {addi(b, r, indexConst(b, 1))});
  Value valid = softmaxHasRow(b, max);
  Value s = softmaxScore(b, softmaxNumerator(b, x, max, valid), sum, valid);
  if (how.alpha)
    s = unifiedScore(b, s, x, *how.alpha, experts);
  return s;
}

Value gpu_kernels::statsSlot(LoopBuilder &b, Value logits, Value bi, Value ti) {
  return muli(b, addi(b, muli(b, bi, dim(b, logits, 1)), ti), indexConst(b, 2));
}

SmallVector<Type> ScoreSource::argTypes(MLIRContext *ctx) const {
  if (!recompute)
    return {};
  return {recompute->logits, statsBufferType(ctx)};
}

Value ScoreSource::scoreAt(LoopBuilder &b, ArrayRef<Value> args, Value gates,
                           ArrayRef<Value> idx) const {
  if (!recompute)
    return load(b, gates, idx);
  return recomputeRowScore(b, *recompute, args[0], args[1], idx, model);
}

gpu::GPUFuncOp gpu_kernels::buildTokenSoftmaxMixKernel(
    OpBuilder &builder, Location loc, StringRef name, MemRefType logitsType,
    MemRefType scoresType, double alpha, const ModelOptions &model,
    MemRefType seqlensType) {
  const int64_t experts = logitsType.getDimSize(2);
  SmallVector<Type> argTypes = {logitsType, scoresType};
  if (seqlensType)
    argTypes.push_back(seqlensType);
  const int64_t warps = kColumnBlock / kWarpSize;
  MLIRContext *ctx = builder.getContext();
  auto perWarpOf = [&](Type element) {
    return MemRefType::get(
        {warps}, element, MemRefLayoutAttrInterface(),
        gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup));
  };
  return buildKernel(
      builder, loc, name, argTypes, int32_t(kColumnBlock),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value> shared) {
        Value logits = args[0], scores = args[1];
        Value seqlens = seqlensType ? args[2] : Value();
        Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
        Value column = gpu::BlockIdOp::create(b, gpu::Dimension::x);
        Value lane = arith::RemUIOp::create(b, tid, indexConst(b, kWarpSize));
        Value warp = arith::DivUIOp::create(b, tid, indexConst(b, kWarpSize));
        Value threads = indexConst(b, kColumnBlock);
        Value one = indexConst(b, 1);
        // One block per column (sequence, expert) of the batch, or of the
        // packed sequences; its threads take every kColumnBlock-th token.
        {
          {
            Value sequence =
                arith::DivUIOp::create(b, column, indexConst(b, experts));
            Value ei =
                arith::RemUIOp::create(b, column, indexConst(b, experts));
            // The column's rows [zero, tokens) of batch entry bi.
            Value bi = sequence, zero = indexConst(b, 0),
                  tokens = dim(b, logits, 1);
            if (seqlens) {
              bi = zero;
              zero = i32ToIndex(b, load(b, seqlens, {sequence}));
              tokens =
                  i32ToIndex(b, load(b, seqlens, {addi(b, sequence, one)}));
            }
            auto x = [&](LoopBuilder &b, Value t) {
              return model.logit(b, loadAsF32(b, logits, {bi, t, ei}));
            };
            Value first = addi(b, zero, tid);
            auto maxOf = [](LoopBuilder &b, Value p, Value q) -> Value {
              return arith::MaximumFOp::create(b, p, q);
            };
            auto sumOf = [](LoopBuilder &b, Value p, Value q) {
              return addi(b, p, q);
            };
            Value partialMax = forStridedAcc(
                b, first, tokens, threads, {f32Const(b, kNegInf)},
                [&](LoopBuilder &b, Value t, ValueRange acc) {
                  return SmallVector<Value>{maxOf(b, acc[0], x(b, t))};
                })[0];
            Value max = blockAllReduce(b, partialMax, lane, warp, warps,
                                       shared[0], maxOf);
            Value valid =
                cmpf(b, CmpFPredicate::ONE, max, f32Const(b, kNegInf));
            auto expOf = [&](LoopBuilder &b, Value t) {
              Value xt = x(b, t);
              Value atMax = cmpf(b, CmpFPredicate::OEQ, xt, max);
              Value shifted =
                  select(b, atMax, f32Const(b, 0.0), subf(b, xt, max));
              return select(b, valid, math::ExpOp::create(b, shifted),
                            f32Const(b, 0.0));
            };
            // The column's sum in SoftmaxSum's integer units (the CPU's
            // bits, whatever the threads' order).
            SoftmaxSum units = SoftmaxSum::forTerms(b, subi(b, tokens, zero));
            Value partialSum =
                forStridedAcc(b, first, tokens, threads, {SoftmaxSum::zero(b)},
                              [&](LoopBuilder &b, Value t, ValueRange acc) {
                                return SmallVector<Value>{addi(
                                    b, acc[0], units.term(b, expOf(b, t)))};
                              })[0];
            Value sum = units.total(b, blockAllReduce(b, partialSum, lane, warp,
                                                      warps, shared[1], sumOf));
            forStrided(b, first, tokens, threads, [&](LoopBuilder &b, Value t) {
              Value f =
                  select(b, valid, divf(b, expOf(b, t), sum), f32Const(b, 0.0));
              Value p = load(b, scores, {bi, t, ei});
              Value u = addf(b, mulf(b, f32Const(b, 1.0 - alpha), p),
                             mulf(b, f32Const(b, alpha), f));
              store(b, u, scores, {bi, t, ei});
            });
          }
        }
      },
      {perWarpOf(Float32Type::get(ctx)), perWarpOf(IntegerType::get(ctx, 64))});
}
