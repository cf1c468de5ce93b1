//===- ExpertGemmKernel.cpp - grouped expert GEMMs on tensor cores --------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// One kernel shape serves both halves of an f16/bf16 expert MLP:
//   gate/up: h[m, f] = silu(x W1[e])[m, f] * (x W3[e])[m, f]  (h in x's type)
//   down:    y[m, d] = (h W2[e])[m, d]                          (y in f32)
// A block computes a kGemmTileRows x kGemmTileCols tile of one expert's rows
// (the plan's segments cut into row tiles, as moe_align_block_size pads
// them), its four warps 16 rows each with m16n8k16 tensor-core products
// (nvgpu.mma.sync, f32 accumulators). Per K step the block stages the row
// tile and the weight tiles in shared memory (zeros past the segment, past
// K and past N, so no size needs to be a multiple of a tile), weights as
// [n][k] so that a lane's B fragment is two k-consecutive pairs whatever the
// stored layout. Each output element sums its K in increasing order of
// 16-wide steps in every layout, so the layout does not change results.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using namespace mlir::usmoe::gpu_kernels;
using arith::CmpIPredicate;

namespace {
constexpr int64_t kMmaK = 16, kMmaN = 8;
constexpr int64_t kFragmentsN = kGemmTileCols / kMmaN;
/// Registers per thread the GEMM kernels may use (4 blocks per SM).
constexpr int32_t kGemmMaxRegisters = 128;
/// Shared tiles are kGemmTileK wide plus 8 elements, so that the rows a
/// warp's lanes read start in different banks.
constexpr int64_t kSharedStride = kGemmTileK + 8;

MemRefType sharedTile(Type element, int64_t rows) {
  MLIRContext *ctx = element.getContext();
  return MemRefType::get(
      {rows, kSharedStride}, element, MemRefLayoutAttrInterface(),
      gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup));
}

/// Indices of a source element, built where the element is read (so that a
/// gathered row's token id is loaded only for rows that exist).
using SourceIndices =
    function_ref<SmallVector<Value>(LoopBuilder &, Value major, Value minor)>;

/// cond ? src[at(major, minor)] : 0, without touching memory when !cond.
Value loadOrZero(LoopBuilder &b, Value cond, Value src, SourceIndices at,
                 Value major, Value minor) {
  Type element = cast<MemRefType>(src.getType()).getElementType();
  return ifThenOrZero(b, cond, element, [&](LoopBuilder &b) {
    return load(b, src, at(b, major, minor));
  });
}

/// Elements per 16-byte global load of the staging.
constexpr int64_t kChunk = 8;

/// A slab of `majors` x `minors` source elements (minor: the source's
/// contiguous dimension), global minor indices minorBase + [0, minors)
/// below minorLimit, a major's elements existing where `majorOk`.
struct Slab {
  int64_t majors, minors;
  Value minorBase, minorLimit;
  function_ref<Value(LoopBuilder &, Value major)> majorOk;
  SourceIndices at;
  /// The shared tile is [minor][major] (a weight stored k-major) instead of
  /// [major][minor].
  bool transposed;
};

/// Copies `slab` of `src` into the shared `tile` (zeros where an element
/// does not exist), a chunk of kChunk minor-consecutive elements per step
/// of the block's threads: one 16-byte load where the chunk exists whole
/// and `aligned` says the source's rows start on 16 bytes, else element by
/// element.
void stageSlab(LoopBuilder &b, Value tid, Value src, Value tile, Value aligned,
               const Slab &slab) {
  Type element = cast<MemRefType>(src.getType()).getElementType();
  auto chunkType = VectorType::get({kChunk}, element);
  int64_t chunksPerMajor = slab.minors / kChunk;
  Value perMajor = indexConst(b, chunksPerMajor);
  forStrided(b, tid, indexConst(b, slab.majors * chunksPerMajor),
             indexConst(b, kGemmThreads), [&](LoopBuilder &b, Value i) {
               Value m = arith::DivUIOp::create(b, i, perMajor);
               Value c = muli(b, arith::RemUIOp::create(b, i, perMajor),
                              indexConst(b, kChunk));
               Value minor = addi(b, slab.minorBase, c);
               Value majorOk = slab.majorOk(b, m);
               Value whole =
                   cmpi(b, CmpIPredicate::ule,
                        addi(b, minor, indexConst(b, kChunk)), slab.minorLimit);
               auto put = [&](LoopBuilder &b, Value v, int64_t j) {
                 Value cj = addi(b, c, indexConst(b, j));
                 store(b, v, tile,
                       slab.transposed ? ValueRange{cj, m} : ValueRange{m, cj});
               };
               ifThenElse(
                   b, andi(b, andi(b, majorOk, whole), aligned),
                   [&](LoopBuilder &b) {
                     Value v = vector::LoadOp::create(
                         b, chunkType, src, slab.at(b, m, minor),
                         /*nontemporal=*/false, llvm::MaybeAlign(16));
                     if (!slab.transposed) {
                       vector::StoreOp::create(b, v, tile, ValueRange{m, c},
                                               /*nontemporal=*/false,
                                               llvm::MaybeAlign(16));
                       return;
                     }
                     for (int64_t j = 0; j < kChunk; ++j)
                       put(b, vector::ExtractOp::create(b, v, j), j);
                   },
                   [&](LoopBuilder &b) {
                     for (int64_t j = 0; j < kChunk; ++j) {
                       Value mj = addi(b, minor, indexConst(b, j));
                       Value ok = andi(
                           b, majorOk,
                           cmpi(b, CmpIPredicate::ult, mj, slab.minorLimit));
                       put(b, loadOrZero(b, ok, src, slab.at, m, mj), j);
                     }
                   });
             });
}

/// The fragment of `rows` registers, register r holding the element pair
/// tile[row(r), col(r)], tile[row(r), col(r) + 1].
Value loadFragment(LoopBuilder &b, Value tile, int64_t rows,
                   function_ref<std::pair<Value, Value>(int64_t)> at) {
  Type element = cast<MemRefType>(tile.getType()).getElementType();
  auto pairType = VectorType::get({2}, element);
  auto fragmentType = VectorType::get({rows, 2}, element);
  Value fragment =
      arith::ConstantOp::create(b, b.getZeroAttr(fragmentType)).getResult();
  for (int64_t r = 0; r < rows; ++r) {
    auto [row, col] = at(r);
    Value pair =
        vector::LoadOp::create(b, pairType, tile, ValueRange{row, col});
    fragment =
        vector::InsertOp::create(b, pair, fragment, ArrayRef<int64_t>{r});
  }
  return fragment;
}
} // namespace

gpu::GPUFuncOp gpu_kernels::buildExpertGemmKernel(
    OpBuilder &builder, Location loc, StringRef name, MemRefType aType,
    MemRefType gatherType, MemRefType offsetsType,
    ArrayRef<MemRefType> weightTypes, MemRefType outType,
    moe::WeightLayout layout, ExpertGemmEpilogue epilogue) {
  Type element = aType.getElementType();
  int64_t numWeights = weightTypes.size();
  SmallVector<Type> args = {aType};
  if (gatherType)
    args.push_back(gatherType);
  args.push_back(offsetsType);
  args.append(weightTypes.begin(), weightTypes.end());
  args.push_back(outType);
  SmallVector<Type> workgroup = {sharedTile(element, kGemmTileRows)};
  for (int64_t i = 0; i < numWeights; ++i)
    workgroup.push_back(sharedTile(element, kGemmTileCols));
  bool kMajor = layout == moe::WeightLayout::in_out;

  gpu::GPUFuncOp kernel = buildKernel(
      builder, loc, name, args, int32_t(kGemmThreads),
      [&](LoopBuilder &b, ArrayRef<Value> argv, ArrayRef<Value> shared) {
        size_t first = gatherType ? 2 : 1;
        Value a = argv[0], offsets = argv[first], out = argv.back();
        Value ids = gatherType ? argv[1] : Value();
        ArrayRef<Value> weights = argv.slice(first + 1, numWeights);
        Value aTile = shared[0];
        ArrayRef<Value> wTiles = shared.drop_front();
        Value c0 = indexConst(b, 0), c1 = indexConst(b, 1);
        Value tileRows = indexConst(b, kGemmTileRows),
              tileCols = indexConst(b, kGemmTileCols),
              tileK = indexConst(b, kGemmTileK);
        Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
        Value warp = arith::DivUIOp::create(b, tid, indexConst(b, 32));
        Value lane = arith::RemUIOp::create(b, tid, indexConst(b, 32));
        Value group = arith::DivUIOp::create(b, lane, indexConst(b, 4));
        Value pairCol =
            muli(b, arith::RemUIOp::create(b, lane, indexConst(b, 4)),
                 indexConst(b, 2));
        Value experts = dim(b, weights[0], 0);
        Value inner = dim(b, a, 1), cols = dim(b, out, 1);
        Value colTiles = arith::CeilDivUIOp::create(b, cols, tileCols);
        // Grouped order: consecutive blocks take kGemmGroupRows row tiles
        // for one column tile, then the next column tile, so that the blocks
        // on the chip at once share their rows and weight slabs in L2.
        Value bid = gpu::BlockIdOp::create(b, gpu::Dimension::x);
        Value rowTiles = arith::DivUIOp::create(
            b, gpu::GridDimOp::create(b, gpu::Dimension::x), colTiles);
        Value groupRows = indexConst(b, kGemmGroupRows);
        Value groupBlocks = muli(b, groupRows, colTiles);
        Value blockGroup = arith::DivUIOp::create(b, bid, groupBlocks);
        Value within = arith::RemUIOp::create(b, bid, groupBlocks);
        Value firstTile = muli(b, blockGroup, groupRows);
        Value rowsHere =
            arith::MinUIOp::create(b, groupRows, subi(b, rowTiles, firstTile));
        Value tile =
            addi(b, firstTile, arith::RemUIOp::create(b, within, rowsHere));
        Value col0 =
            muli(b, arith::DivUIOp::create(b, within, rowsHere), tileCols);

        // Row tile `tile` of the padded segments: its expert, first row and
        // the segment's end (expert = E past the last tile).
        Value none = experts;
        SmallVector<Value> found = forRangeAcc(
            b, c0, experts, {c0, none, c0, c0},
            [&](LoopBuilder &b, Value e, ValueRange acc) {
              Value begin = i32ToIndex(b, load(b, offsets, {e}));
              Value end = i32ToIndex(b, load(b, offsets, {addi(b, e, c1)}));
              Value tiles =
                  arith::CeilDivUIOp::create(b, subi(b, end, begin), tileRows);
              Value next = addi(b, acc[0], tiles);
              Value here = andi(b, cmpi(b, CmpIPredicate::uge, tile, acc[0]),
                                cmpi(b, CmpIPredicate::ult, tile, next));
              Value first =
                  addi(b, begin, muli(b, subi(b, tile, acc[0]), tileRows));
              return SmallVector<Value>{next, select(b, here, e, acc[1]),
                                        select(b, here, first, acc[2]),
                                        select(b, here, end, acc[3])};
            });
        Value expert = found[1], rowBegin = found[2], rowEnd = found[3];
        // 16-byte staging loads where every row starts on 16 bytes.
        Value aAligned = rowsAligned(b, a, 16);
        SmallVector<Value> weightsAligned;
        for (Value w : weights)
          weightsAligned.push_back(rowsAligned(b, w, 16));

        ifThen(
            b, cmpi(b, CmpIPredicate::ult, expert, experts),
            [&](LoopBuilder &b) {
              auto accType = VectorType::get({2, 2}, b.getF32Type());
              Value zeroAcc =
                  arith::ConstantOp::create(b, b.getZeroAttr(accType))
                      .getResult();
              SmallVector<Value> init(numWeights * kFragmentsN, zeroAcc);
              Value warpRow = muli(b, warp, indexConst(b, 16));

              SmallVector<Value> acc = forStridedAcc(
                  b, c0, inner, tileK, init,
                  [&](LoopBuilder &b, Value k0, ValueRange accIn) {
                    // Stage the row tile: aTile[r][c] = a[rowBegin + r,
                    // k0 + c] (with ids: the plan row's token row).
                    auto rowOk = [&](LoopBuilder &b, Value r) {
                      return cmpi(b, CmpIPredicate::ult, addi(b, rowBegin, r),
                                  rowEnd);
                    };
                    auto rowAt = [&](LoopBuilder &b, Value r, Value k) {
                      Value row = addi(b, rowBegin, r);
                      if (ids)
                        row = i32ToIndex(b, load(b, ids, {row}));
                      return SmallVector<Value>{row, k};
                    };
                    stageSlab(b, tid, a, aTile, aAligned,
                              Slab{kGemmTileRows, kGemmTileK, k0, inner, rowOk,
                                   rowAt, /*transposed=*/false});
                    // Each weight tile as [n][k], read along the stored
                    // layout's contiguous dimension (n for in_out, k for
                    // out_in).
                    for (auto [w, wTile, wAligned] :
                         llvm::zip(weights, wTiles, weightsAligned)) {
                      Value wv = w;
                      auto colOk = [&](LoopBuilder &b, Value n) {
                        return cmpi(b, CmpIPredicate::ult, addi(b, col0, n),
                                    cols);
                      };
                      auto kOk = [&](LoopBuilder &b, Value kk) {
                        return cmpi(b, CmpIPredicate::ult, addi(b, k0, kk),
                                    inner);
                      };
                      auto kMajorAt = [&](LoopBuilder &b, Value kk, Value n) {
                        return SmallVector<Value>{expert, addi(b, k0, kk), n};
                      };
                      auto nMajorAt = [&](LoopBuilder &b, Value n, Value k) {
                        return SmallVector<Value>{expert, addi(b, col0, n), k};
                      };
                      if (kMajor)
                        stageSlab(b, tid, wv, wTile, wAligned,
                                  Slab{kGemmTileK, kGemmTileCols, col0, cols,
                                       kOk, kMajorAt, /*transposed=*/true});
                      else
                        stageSlab(b, tid, wv, wTile, wAligned,
                                  Slab{kGemmTileCols, kGemmTileK, k0, inner,
                                       colOk, nMajorAt, /*transposed=*/false});
                    }
                    gpu::BarrierOp::create(b);

                    SmallVector<Value> accOut(accIn);
                    for (int64_t s = 0; s < kGemmTileK / kMmaK; ++s) {
                      Value kBase = addi(b, indexConst(b, s * kMmaK), pairCol);
                      // A register r: row g + 8 (r & 1), column 2q + 8 (r >>
                      // 1).
                      Value fragA = loadFragment(b, aTile, 4, [&](int64_t r) {
                        return std::make_pair(
                            addi(b, addi(b, warpRow, group),
                                 indexConst(b, 8 * (r & 1))),
                            addi(b, kBase, indexConst(b, 8 * (r >> 1))));
                      });
                      for (int64_t j = 0; j < kFragmentsN; ++j) {
                        for (int64_t wi = 0; wi < numWeights; ++wi) {
                          // B register r: rows 2q + 8 r of column g.
                          Value fragB =
                              loadFragment(b, wTiles[wi], 2, [&](int64_t r) {
                                return std::make_pair(
                                    addi(b, indexConst(b, j * kMmaN), group),
                                    addi(b, kBase, indexConst(b, 8 * r)));
                              });
                          Value &c = accOut[wi * kFragmentsN + j];
                          c = nvgpu::MmaSyncOp::create(
                              b, fragA, fragB, c,
                              ArrayRef<int64_t>{16, kMmaN, kMmaK});
                        }
                      }
                    }
                    // Nobody restages before every warp has read the tiles.
                    gpu::BarrierOp::create(b);
                    return accOut;
                  });

              // Epilogue: C/D register r holds row g + 8 r, columns 2q, 2q + 1.
              Type outElement = outType.getElementType();
              Value one = f32Const(b, 1.0);
              for (int64_t j = 0; j < kFragmentsN; ++j)
                for (int64_t r = 0; r < 2; ++r)
                  for (int64_t h = 0; h < 2; ++h) {
                    Value row =
                        addi(b, addi(b, rowBegin, addi(b, warpRow, group)),
                             indexConst(b, 8 * r));
                    Value col = addi(b, addi(b, col0, pairCol),
                                     indexConst(b, j * kMmaN + h));
                    Value ok = andi(b, cmpi(b, CmpIPredicate::ult, row, rowEnd),
                                    cmpi(b, CmpIPredicate::ult, col, cols));
                    auto element = [&](int64_t wi) {
                      return vector::ExtractOp::create(
                                 b, acc[wi * kFragmentsN + j],
                                 ArrayRef<int64_t>{r, h})
                          .getResult();
                    };
                    Value y = element(0);
                    if (epilogue == ExpertGemmEpilogue::SwiGlu) {
                      Value gate = y;
                      Value silu =
                          divf(b, gate,
                               addf(b, one,
                                    math::ExpOp::create(
                                        b, arith::NegFOp::create(b, gate))));
                      y = mulf(b, silu, element(1));
                    }
                    if (!outElement.isF32())
                      y = arith::TruncFOp::create(b, outElement, y);
                    ifThen(b, ok, [&](LoopBuilder &b) {
                      store(b, y, out, {row, col});
                    });
                  }
            });
      },
      workgroup);
  // The accumulators need about 100 registers; without a limit ptxas picks
  // 64 for some variants and spills (sm_80).
  kernel->setAttr("nvvm.maxnreg", builder.getI32IntegerAttr(kGemmMaxRegisters));
  return kernel;
}
