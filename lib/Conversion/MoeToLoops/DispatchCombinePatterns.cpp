//===- DispatchCombinePatterns.cpp - lower dispatch, experts, combine -----===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "PlanChecks.h"
#include "PopulatePatterns.h"
#include "RoutingKernels.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::usmoe::loops;

/// Rounds an f32 value to `type` (a no-op for f32).
static Value fromF32(LoopBuilder &b, Value v, Type type) {
  if (type.isF32())
    return v;
  return arith::TruncFOp::create(b, type, v);
}

/// dst[i, j] = convert(src[i, j]) over a [rows, cols] memref pair, rows in
/// parallel.
static void copyConverting(LoopBuilder &b, Value src, Value dst,
                           function_ref<Value(LoopBuilder &, Value)> convert) {
  Value zero = indexConst(b, 0), one = indexConst(b, 1);
  Value rows = dim(b, src, 0), cols = dim(b, src, 1);
  forParallel2D(b, one, rows, muli(b, rows, cols),
                [&](LoopBuilder &b, Value, Value i) {
                  forRange(b, zero, cols, [&](LoopBuilder &b, Value j) {
                    store(b, convert(b, load(b, src, {i, j})), dst, {i, j});
                  });
                });
}

/// Combine accumulates each column chunk of this many elements on one
/// thread: chunks never share an output element, and each element still
/// sums its rows in ascending order, so results do not depend on threads.
constexpr int64_t kCombineColumns = 64;

/// Run-time checks of the plan contract the dialect documents (dispatch,
/// expert_ffn and combine take what moe.plan writes): a caller that passes
/// other ids or offsets gets the failed check, not an out-of-bounds access.
void mlir::usmoe::loops::checkIdsBelow(LoopBuilder &b, Value ids, Value limit,
                                       StringRef message) {
  forRange(b, indexConst(b, 0), dim(b, ids, 0), [&](LoopBuilder &b, Value m) {
    Value id = load(b, ids, {m});
    Value ok =
        andi(b, cmpi(b, arith::CmpIPredicate::sge, id, i32Const(b, 0)),
             cmpi(b, arith::CmpIPredicate::slt, i32ToIndex(b, id), limit));
    cf::AssertOp::create(b, ok, message);
  });
}

void mlir::usmoe::loops::checkOffsets(LoopBuilder &b, Value offsets, Value rows,
                                      StringRef message) {
  Value zero = indexConst(b, 0), one = indexConst(b, 1);
  Value last = subi(b, dim(b, offsets, 0), one);
  Value ok = andi(b,
                  cmpi(b, arith::CmpIPredicate::eq, load(b, offsets, {zero}),
                       i32Const(b, 0)),
                  cmpi(b, arith::CmpIPredicate::eq,
                       i32ToIndex(b, load(b, offsets, {last})), rows));
  cf::AssertOp::create(b, ok, message);
  forRange(b, zero, last, [&](LoopBuilder &b, Value e) {
    Value step = cmpi(b, arith::CmpIPredicate::sle, load(b, offsets, {e}),
                      load(b, offsets, {addi(b, e, one)}));
    cf::AssertOp::create(b, step, message);
  });
}

namespace {

/// result[m, :] = hidden[token_ids[m], :], rows in parallel.
struct DispatchLowering : OpRewritePattern<moe::DispatchOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(moe::DispatchOp op,
                                PatternRewriter &rewriter) const override {
    LoopBuilder b(op.getLoc(), rewriter);
    Value hidden = toBuffer(b, op.getHidden());
    Value ids = toBuffer(b, op.getTokenIds());
    auto type = cast<RankedTensorType>(op.getType());
    SmallVector<Value> dynSizes;
    if (type.isDynamicDim(0))
      dynSizes.push_back(dim(b, ids, 0));
    if (type.isDynamicDim(1))
      dynSizes.push_back(dim(b, hidden, 1));
    Value out = alloc(
        b, MemRefType::get(type.getShape(), type.getElementType()), dynSizes);
    Value zero = indexConst(b, 0);
    Value width = dim(b, hidden, 1);
    checkIdsBelow(b, ids, dim(b, hidden, 0),
                  "moe: dispatch: a token id is outside [0, tokens)");
    Value rows = dim(b, ids, 0);
    forParallel2D(b, indexConst(b, 1), rows, muli(b, rows, width),
                  [&](LoopBuilder &b, Value, Value m) {
                    Value g = i32ToIndex(b, load(b, ids, {m}));
                    forRange(b, zero, width, [&](LoopBuilder &b, Value d) {
                      store(b, load(b, hidden, {g, d}), out, {m, d});
                    });
                  });
    rewriter.replaceOp(op, toTensor(b, out, type));
    return success();
  }
};

/// y = init; y[ids[m], :] += w[m] * out[m, :] for ascending m, accumulated
/// in f32 and rounded once to the element type at the end; column chunks
/// in parallel.
struct CombineLowering : OpRewritePattern<moe::CombineOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(moe::CombineOp op,
                                PatternRewriter &rewriter) const override {
    LoopBuilder b(op.getLoc(), rewriter);
    Value expertOut = toBuffer(b, op.getExpertOut());
    Value ids = toBuffer(b, op.getTokenIds());
    Value weights = toBuffer(b, op.getWeights());
    Value init = toBuffer(b, op.getInit());
    auto type = cast<RankedTensorType>(op.getType());
    Type element = type.getElementType();
    Value zero = indexConst(b, 0);
    Value width = dim(b, init, 1);

    Value acc = allocResult(
        b, RankedTensorType::get(type.getShape(), b.getF32Type()), init);
    copyConverting(b, init, acc, [](LoopBuilder &b, Value v) {
      return v.getType().isF32() ? v
                                 : arith::ExtFOp::create(b, b.getF32Type(), v);
    });
    checkIdsBelow(b, ids, dim(b, init, 0),
                  "moe: combine: a token id is outside [0, tokens)");
    if (Value offsetsTensor = op.getExpertOffsets()) {
      // The GPU lowering finds a token's rows by binary search: the rows of
      // each expert must list ascending token ids, as moe.plan writes them.
      Value offsets = toBuffer(b, offsetsTensor);
      checkOffsets(b, offsets, dim(b, ids, 0),
                   "moe: combine: expert_offsets must go from 0 to the number "
                   "of rows without decreasing");
      Value one = indexConst(b, 1);
      forRange(
          b, zero, subi(b, dim(b, offsets, 0), one),
          [&](LoopBuilder &b, Value e) {
            Value lo = i32ToIndex(b, load(b, offsets, {e}));
            Value hi = i32ToIndex(b, load(b, offsets, {addi(b, e, one)}));
            forRange(b, addi(b, lo, one), hi, [&](LoopBuilder &b, Value m) {
              Value ascending =
                  cmpi(b, arith::CmpIPredicate::slt,
                       load(b, ids, {subi(b, m, one)}), load(b, ids, {m}));
              cf::AssertOp::create(
                  b, ascending,
                  "moe: combine: token ids must ascend inside each expert's "
                  "rows (as moe.plan writes them)");
            });
          });
    }
    // Rows scatter into shared tokens: split the columns, not the rows.
    Value rows = dim(b, ids, 0);
    Value chunk = indexConst(b, kCombineColumns);
    Value chunks = arith::CeilDivUIOp::create(b, width, chunk);
    forParallel2D(
        b, indexConst(b, 1), chunks, muli(b, rows, width),
        [&](LoopBuilder &b, Value, Value c) {
          Value first = muli(b, c, chunk);
          Value last = arith::MinUIOp::create(b, addi(b, first, chunk), width);
          forRange(b, zero, rows, [&](LoopBuilder &b, Value m) {
            Value g = i32ToIndex(b, load(b, ids, {m}));
            Value w = load(b, weights, {m});
            forRange(b, first, last, [&](LoopBuilder &b, Value d) {
              Value term = mulf(b, w, loadAsF32(b, expertOut, {m, d}));
              store(b, addf(b, load(b, acc, {g, d}), term), acc, {g, d});
            });
          });
        });
    Value result = acc;
    if (!element.isF32()) {
      result = allocResult(b, type, init);
      copyConverting(b, acc, result, [&](LoopBuilder &b, Value v) {
        return fromF32(b, v, element);
      });
    }
    rewriter.replaceOp(op, toTensor(b, result, type));
    return success();
  }
};

/// For each expert e and each of its rows x:
///   h = silu(x W1[e]) * (x W3[e]);  y = h W2[e]
/// Rows are taken in tiles of kFfnRowTile: each weight row is read from
/// memory once per tile and reused from cache for every row of it, instead
/// of once per row (a GEMV per row streams all of the expert's weights each
/// time). The innermost loops walk the weights contiguously in either
/// layout: `in_out` accumulates whole rows (axpy over f, then over d),
/// `out_in` takes dot products (over d, then over f). Every output element
/// sums over d (or f) in increasing order from 0 in both, so results depend
/// neither on the tiling nor on the layout.
constexpr int64_t kFfnRowTile = 16;

/// silu(g) * u with silu(g) = g / (1 + exp(-g)).
static Value swiglu(LoopBuilder &b, Value g, Value u) {
  Value silu = divf(b, g,
                    addf(b, f32Const(b, 1.0),
                         math::ExpOp::create(b, arith::NegFOp::create(b, g))));
  return mulf(b, silu, u);
}

struct ExpertFfnLowering : OpRewritePattern<moe::ExpertFfnOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(moe::ExpertFfnOp op,
                                PatternRewriter &rewriter) const override {
    LoopBuilder b(op.getLoc(), rewriter);
    Value x = toBuffer(b, op.getInput());
    Value offsets = toBuffer(b, op.getExpertOffsets());
    Value w1 = toStridedBuffer(b, op.getW1()),
          w3 = toStridedBuffer(b, op.getW3()),
          w2 = toStridedBuffer(b, op.getW2());
    bool inOut = op.getLayout() == moe::WeightLayout::in_out;
    auto type = cast<RankedTensorType>(op.getType());
    Type element = type.getElementType();
    Value zero = indexConst(b, 0), one = indexConst(b, 1);
    Value tile = indexConst(b, kFfnRowTile);
    Value width = dim(b, w1, inOut ? 1 : 2), ffn = dim(b, w1, inOut ? 2 : 1);

    Value out = allocResult(b, type, x);
    auto tileType =
        MemRefType::get({kFfnRowTile, ShapedType::kDynamic}, b.getF32Type());
    Value gate = alloc(b, tileType, {ffn}), up = alloc(b, tileType, {ffn});
    Value y = alloc(b, tileType, {width});
    Value fzero = f32Const(b, 0.0);

    checkOffsets(b, offsets, dim(b, x, 0), kExpertFfnOffsetsCheck);
    forRange(b, zero, dim(b, w1, 0), [&](LoopBuilder &b, Value e) {
      Value lo = i32ToIndex(b, load(b, offsets, {e}));
      Value hi = i32ToIndex(b, load(b, offsets, {addi(b, e, one)}));
      forStrided(b, lo, hi, tile, [&](LoopBuilder &b, Value m0) {
        Value rows = arith::MinUIOp::create(b, tile, subi(b, hi, m0));
        auto row = [&](LoopBuilder &b, Value r) { return addi(b, m0, r); };
        if (inOut) {
          forRange(b, zero, rows, [&](LoopBuilder &b, Value r) {
            forRange(b, zero, ffn, [&](LoopBuilder &b, Value f) {
              store(b, fzero, gate, {r, f});
              store(b, fzero, up, {r, f});
            });
            forRange(b, zero, width, [&](LoopBuilder &b, Value d) {
              store(b, fzero, y, {r, d});
            });
          });
          forRange(b, zero, width, [&](LoopBuilder &b, Value d) {
            forRange(b, zero, rows, [&](LoopBuilder &b, Value r) {
              Value xv = loadAsF32(b, x, {row(b, r), d});
              forRange(b, zero, ffn, [&](LoopBuilder &b, Value f) {
                Value g = addf(b, load(b, gate, {r, f}),
                               mulf(b, xv, loadAsF32(b, w1, {e, d, f})));
                Value u = addf(b, load(b, up, {r, f}),
                               mulf(b, xv, loadAsF32(b, w3, {e, d, f})));
                store(b, g, gate, {r, f});
                store(b, u, up, {r, f});
              });
            });
          });
          forRange(b, zero, ffn, [&](LoopBuilder &b, Value f) {
            forRange(b, zero, rows, [&](LoopBuilder &b, Value r) {
              Value h = swiglu(b, load(b, gate, {r, f}), load(b, up, {r, f}));
              forRange(b, zero, width, [&](LoopBuilder &b, Value d) {
                Value v = addf(b, load(b, y, {r, d}),
                               mulf(b, h, loadAsF32(b, w2, {e, f, d})));
                store(b, v, y, {r, d});
              });
            });
          });
        } else {
          forRange(b, zero, ffn, [&](LoopBuilder &b, Value f) {
            forRange(b, zero, rows, [&](LoopBuilder &b, Value r) {
              SmallVector<Value> acc = forRangeAcc(
                  b, zero, width, {fzero, fzero},
                  [&](LoopBuilder &b, Value d, ValueRange a) {
                    Value xv = loadAsF32(b, x, {row(b, r), d});
                    return SmallVector<Value>{
                        addf(b, a[0], mulf(b, xv, loadAsF32(b, w1, {e, f, d}))),
                        addf(b, a[1],
                             mulf(b, xv, loadAsF32(b, w3, {e, f, d})))};
                  });
              store(b, swiglu(b, acc[0], acc[1]), gate, {r, f});
            });
          });
          forRange(b, zero, width, [&](LoopBuilder &b, Value d) {
            forRange(b, zero, rows, [&](LoopBuilder &b, Value r) {
              Value v = forRangeAcc(b, zero, ffn, {fzero},
                                    [&](LoopBuilder &b, Value f, ValueRange a) {
                                      return SmallVector<Value>{addf(
                                          b, a[0],
                                          mulf(b, load(b, gate, {r, f}),
                                               loadAsF32(b, w2, {e, d, f})))};
                                    })[0];
              store(b, v, y, {r, d});
            });
          });
        }
        forRange(b, zero, rows, [&](LoopBuilder &b, Value r) {
          forRange(b, zero, width, [&](LoopBuilder &b, Value d) {
            store(b, fromF32(b, load(b, y, {r, d}), element), out,
                  {row(b, r), d});
          });
        });
      });
    });
    rewriter.replaceOp(op, toTensor(b, out, type));
    return success();
  }
};

} // namespace

void mlir::usmoe::loops::populateDispatchCombinePatterns(
    RewritePatternSet &patterns, ExpertGemm expertGemm) {
  if (expertGemm == ExpertGemm::OneDnn)
    populateExpertFfnRuntimeCallPatterns(patterns);
  patterns.add<DispatchLowering, CombineLowering, ExpertFfnLowering>(
      patterns.getContext());
}
