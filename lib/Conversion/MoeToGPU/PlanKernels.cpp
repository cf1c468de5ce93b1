//===- PlanKernels.cpp - CSR plan, dispatch and combine on the GPU --------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
//  plan:     count   one block per tile of kPlanTileRows rows, a thread per
//                    row: each row sets its bit in its experts' bitsets of
//                    the tile (shared memory); counts are popcounts;
//            scan    one block: a flat scan of the expert-major counts of
//                    chunks of kPlanChunkTiles tiles gives each (expert,
//                    chunk) its first plan row, and the expert offsets
//                    (E + 1 values);
//            fill    the tiles again: a tile's first row of each expert is
//                    its chunk's start plus the chunk's earlier tiles'
//                    counts; the expert's rows of the tile follow in token
//                    order: ascending ids, stable;
//            A plan of a route's selection (M known from the budget) takes
//            two launches: count_scan (the tile and chunk counts, and the
//            scan by the tile that finishes last) and fill; or one,
//            single, when B * T fits one tile (the three phases on one
//            block).
//            Walks (a row's mask bytes, a chunk's counts) load kPlanBatch
//            values before using them, so a thread waits for one memory
//            latency per batch, not per value.
//  dispatch: one block per plan row copies hidden[ids[m], :] (f16/bf16
//            layers gather in their first expert GEMM instead).
//  combine:  one block per token; a thread per expert binary-searches the
//            token in that expert's (sorted) ids, thread 0 lists the rows
//            found in ascending expert order, and the threads over d sum
//            them in that order: deterministic, no float atomics, the same
//            order as the CPU path; an empty plan reads no ids.
//
//===----------------------------------------------------------------------===//

#include "Conversion/Common/GivenSelection.h"
#include "Kernels.h"
#include "WarpReduce.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using namespace mlir::usmoe::gpu_kernels;
using arith::CmpIPredicate;

namespace {

Value threadId(LoopBuilder &b) {
  return gpu::ThreadIdOp::create(b, gpu::Dimension::x);
}
Value blockId(LoopBuilder &b) {
  return gpu::BlockIdOp::create(b, gpu::Dimension::x);
}

} // namespace

Value gpu_kernels::lowerBound(LoopBuilder &b, Value lo, Value hi,
                              function_ref<Value(LoopBuilder &, Value)> below) {
  auto search = scf::WhileOp::create(
      b, TypeRange{b.getIndexType(), b.getIndexType()}, ValueRange{lo, hi},
      [&](OpBuilder &nb, Location l, ValueRange range) {
        LoopBuilder ib(l, nb);
        Value more = cmpi(ib, CmpIPredicate::ult, range[0], range[1]);
        scf::ConditionOp::create(ib, more, range);
      },
      [&](OpBuilder &nb, Location l, ValueRange range) {
        LoopBuilder ib(l, nb);
        Value mid =
            addi(ib, range[0],
                 arith::DivUIOp::create(ib, subi(ib, range[1], range[0]),
                                        indexConst(ib, 2)));
        Value isBelow = below(ib, mid);
        scf::YieldOp::create(
            ib, ValueRange{select(ib, isBelow, addi(ib, mid, indexConst(ib, 1)),
                                  range[0]),
                           select(ib, isBelow, range[1], mid)});
      });
  return search.getResult(0);
}

Value gpu_kernels::rowsAligned(LoopBuilder &b, Value memref, int64_t bytes) {
  auto type = cast<MemRefType>(memref.getType());
  int64_t width = type.getElementTypeBitWidth() / 8;
  auto metadata = memref::ExtractStridedMetadataOp::create(b, memref);
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, memref);
  Value alignment = indexConst(b, bytes), zeroIdx = indexConst(b, 0);
  auto isMultiple = [&](Value v) {
    return cmpi(b, CmpIPredicate::eq, arith::RemUIOp::create(b, v, alignment),
                zeroIdx);
  };
  Value elementBytes = indexConst(b, width);
  Value ok =
      isMultiple(addi(b, base, muli(b, metadata.getOffset(), elementBytes)));
  ValueRange strides = metadata.getStrides();
  for (Value stride : strides.drop_back())
    ok = andi(b, ok, isMultiple(muli(b, stride, elementBytes)));
  return ok;
}

PlanCountLayout::PlanCountLayout(LoopBuilder &b, Value numTiles,
                                 int64_t experts)
    : experts(experts) {
  tiles = arith::MaxUIOp::create(b, numTiles, indexConst(b, 1));
  chunks = arith::CeilDivUIOp::create(b, tiles, indexConst(b, kPlanChunkTiles));
  chunkBase = muli(b, indexConst(b, experts), tiles);
  doneSlot = addi(b, chunkBase, startWords(b));
}

Value PlanCountLayout::tileSlot(LoopBuilder &b, Value expert,
                                Value tile) const {
  return addi(b, muli(b, expert, tiles), tile);
}

Value PlanCountLayout::startSlot(LoopBuilder &b, Value expert,
                                 Value chunk) const {
  return addi(b, muli(b, expert, chunks), chunk);
}

Value PlanCountLayout::chunkSlot(LoopBuilder &b, Value expert,
                                 Value chunk) const {
  return addi(b, chunkBase, startSlot(b, expert, chunk));
}

Value PlanCountLayout::chunkOf(LoopBuilder &b, Value tile) const {
  return arith::DivUIOp::create(b, tile, indexConst(b, kPlanChunkTiles));
}

Value PlanCountLayout::chunkFirstTile(LoopBuilder &b, Value tile) const {
  return muli(b, chunkOf(b, tile), indexConst(b, kPlanChunkTiles));
}

Value PlanCountLayout::countWords(LoopBuilder &b) const {
  return addi(b, doneSlot, indexConst(b, 1));
}

Value PlanCountLayout::startWords(LoopBuilder &b) const {
  return muli(b, indexConst(b, experts), chunks);
}

/// Visits [begin, end) in batches of kPlanBatch: `load(i)` for every index
/// of a batch first (clamped into range, so independent loads are in flight
/// together instead of one latency per element), then `use(i, valid,
/// loaded, acc)` in order. Returns the final accumulators.
static SmallVector<Value>
forBatches(LoopBuilder &b, Value begin, Value end, ValueRange init,
           function_ref<Value(LoopBuilder &, Value)> load,
           function_ref<SmallVector<Value>(LoopBuilder &, Value i, Value valid,
                                           Value loaded, ValueRange acc)>
               use) {
  Value batches = arith::CeilDivUIOp::create(
      b, subi(b, arith::MaxUIOp::create(b, end, begin), begin),
      indexConst(b, kPlanBatch));
  Value last = subi(b, arith::MaxUIOp::create(b, end, indexConst(b, 1)),
                    indexConst(b, 1));
  return forRangeAcc(
      b, zero(b), batches, init,
      [&](LoopBuilder &b, Value batch, ValueRange acc) {
        Value first = addi(b, begin, muli(b, batch, indexConst(b, kPlanBatch)));
        SmallVector<Value> index, valid, loaded;
        for (int64_t j = 0; j < kPlanBatch; ++j) {
          index.push_back(addi(b, first, indexConst(b, j)));
          valid.push_back(cmpi(b, CmpIPredicate::ult, index.back(), end));
          loaded.push_back(
              load(b, arith::MinUIOp::create(b, index.back(), last)));
        }
        SmallVector<Value> values(acc);
        for (int64_t j = 0; j < kPlanBatch; ++j)
          values = use(b, index[j], valid[j], loaded[j], values);
        return values;
      });
}

/// `init` plus the i32 counts read at [begin, end) (`read`: a load, or an
/// atomic read), kPlanBatch loads in flight.
static Value sumCounts(LoopBuilder &b, Value begin, Value end, Value init,
                       function_ref<Value(LoopBuilder &, Value)> read) {
  return forBatches(
      b, begin, end, {init}, read,
      [&](LoopBuilder &b, Value, Value valid, Value n, ValueRange acc) {
        return SmallVector<Value>{
            addi(b, acc[0], select(b, valid, n, i32Const(b, 0)))};
      })[0];
}

/// One flat exclusive scan over the E * n expert-major counts at
/// counts[countBase...] by a block of `threads` (a contiguous segment per
/// thread: sum, block scan of the sums, rewrite), so starts[e * n + c]
/// becomes the plan row of expert e's first row in chunk c, and offsets[e]
/// its first row overall. `counts` and `starts` may be one buffer
/// (rewritten in place, countBase 0); with `atomicReads` the counts are read
/// with atomics (other blocks of the launch wrote them so). `workgroup`: a
/// slot per warp and one more.
static void scanExpertMajor(LoopBuilder &b, Value counts, Value countBase,
                            Value starts, Value offsets, Value n,
                            int64_t experts, int64_t threads,
                            ArrayRef<Value> workgroup, bool atomicReads) {
  Value tid = threadId(b);
  Value lane = arith::RemUIOp::create(b, tid, indexConst(b, kWarpSize));
  Value warp = arith::DivUIOp::create(b, tid, indexConst(b, kWarpSize));
  Value numExperts = indexConst(b, experts);
  Value perExpert = n;
  n = muli(b, numExperts, perExpert);
  Value per = arith::CeilDivUIOp::create(b, n, indexConst(b, threads));
  Value begin = arith::MinUIOp::create(b, muli(b, tid, per), n);
  Value end = arith::MinUIOp::create(b, addi(b, begin, per), n);
  auto read = [&](LoopBuilder &b, Value i) -> Value {
    Value at = addi(b, countBase, i);
    if (!atomicReads)
      return load(b, counts, {at});
    return memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addi,
                                       i32Const(b, 0), counts, ValueRange{at});
  };
  Value sum = sumCounts(b, begin, end, i32Const(b, 0), read);
  std::pair<Value, Value> scanned =
      blockExclusiveScan(b, sum, lane, warp, workgroup[0], workgroup[1], 0);
  Value before = scanned.first, total = scanned.second;
  forBatches(
      b, begin, end, {before}, read,
      [&](LoopBuilder &b, Value i, Value valid, Value c, ValueRange acc) {
        ifThen(b, valid,
               [&](LoopBuilder &b) { store(b, acc[0], starts, {i}); });
        return SmallVector<Value>{
            addi(b, acc[0], select(b, valid, c, i32Const(b, 0)))};
      });
  gpu::BarrierOp::create(b);
  // offsets[e] = the scanned value of (e, chunk 0); offsets[E] = M.
  Value hasTiles = cmpi(b, CmpIPredicate::ugt, perExpert, zero(b));
  forStrided(
      b, tid, numExperts, indexConst(b, threads), [&](LoopBuilder &b, Value e) {
        Value first = arith::MinUIOp::create(
            b, muli(b, e, perExpert),
            subi(b, arith::MaxUIOp::create(b, n, indexConst(b, 1)),
                 indexConst(b, 1)));
        Value start = load(b, starts, {first});
        store(b, select(b, hasTiles, start, i32Const(b, 0)), offsets, {e});
      });
  ifThen(b, cmpi(b, CmpIPredicate::eq, tid, zero(b)),
         [&](LoopBuilder &b) { store(b, total, offsets, {numExperts}); });
}

/// The last-block scan of chunk counts written with atomics by the launch's
/// blocks (see PlanCounter::scanIfLast).
static void scanPlanCountsIfLast(LoopBuilder &b, const PlanCountLayout &layout,
                                 Value counts, Value starts, Value offsets,
                                 int64_t threads, ArrayRef<Value> workgroup) {
  Value tid = threadId(b), c0 = zero(b);
  Value isLast = workgroup[2];
  gpu::BarrierOp::create(b);
  ifThen(b, cmpi(b, CmpIPredicate::eq, tid, c0), [&](LoopBuilder &b) {
    fenceDevice(b);
    Value done = memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addi,
                                             i32Const(b, 1), counts,
                                             ValueRange{layout.doneSlot});
    fenceDevice(b);
    Value blocks = gpu::GridDimOp::create(b, gpu::Dimension::x);
    Value last = cmpi(b, CmpIPredicate::eq, done,
                      indexToI32(b, subi(b, blocks, indexConst(b, 1))));
    store(b, arith::ExtUIOp::create(b, b.getI32Type(), last), isLast, {c0});
  });
  gpu::BarrierOp::create(b);
  // Uniform per block: the scan's barriers are reached by all threads.
  ifThen(b, cmpi(b, CmpIPredicate::ne, load(b, isLast, {c0}), i32Const(b, 0)),
         [&](LoopBuilder &b) {
           scanExpertMajor(b, counts, layout.chunkBase, starts, offsets,
                           layout.chunks, layout.experts, threads,
                           workgroup.take_front(2), /*atomicReads=*/true);
         });
}

/// ceildiv(B * T, kPlanTileRows) of a [B, T, E] buffer.
static Value tilesOf(LoopBuilder &b, Value rowsByExperts) {
  return arith::CeilDivUIOp::create(
      b, muli(b, dim(b, rowsByExperts, 0), dim(b, rowsByExperts, 1)),
      indexConst(b, kPlanTileRows));
}

PlanCounter::PlanCounter(LoopBuilder &b, Value gates, Value counts,
                         Value starts, Value offsets)
    : gates(gates), counts(counts), starts(starts), offsets(offsets),
      layout(b, tilesOf(b, gates),
             cast<MemRefType>(gates.getType()).getDimSize(2)) {
  several = cmpi(b, CmpIPredicate::ugt, layout.tiles, indexConst(b, 1));
}

void PlanCounter::count(LoopBuilder &b, Value selected, ArrayRef<Value> idx) {
  ifThen(b, andi(b, selected, several), [&](LoopBuilder &b) {
    Value row = addi(b, muli(b, idx[0], dim(b, gates, 1)), idx[1]);
    Value tile = arith::DivUIOp::create(b, row, indexConst(b, kPlanTileRows));
    for (Value slot : {layout.tileSlot(b, idx[2], tile),
                       layout.chunkSlot(b, idx[2], layout.chunkOf(b, tile))})
      memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addi, i32Const(b, 1),
                                  counts, ValueRange{slot});
  });
}

void PlanCounter::scanIfLast(LoopBuilder &b, int64_t threads,
                             ArrayRef<Value> workgroup) {
  ifThen(b, several, [&](LoopBuilder &b) {
    scanPlanCountsIfLast(b, layout, counts, starts, offsets, threads,
                         workgroup);
  });
}

void gpu_kernels::fenceDevice(LoopBuilder &b) {
  NVVM::MembarOp::create(b, NVVM::MemScopeKind::GPU);
}

void gpu_kernels::zeroFromEveryThread(LoopBuilder &b, ValueRange buffers) {
  Value threads = gpu::BlockDimOp::create(b, gpu::Dimension::x);
  Value first = addi(b, muli(b, blockId(b), threads), threadId(b));
  Value step = muli(b, gpu::GridDimOp::create(b, gpu::Dimension::x), threads);
  for (Value buffer : buffers)
    forStrided(b, first, dim(b, buffer, 0), step, [&](LoopBuilder &b, Value i) {
      store(b, i32Const(b, 0), buffer, {i});
    });
}

PlanKernels
gpu_kernels::buildPlanKernels(OpBuilder &builder, Location loc, StringRef name,
                              MemRefType gatesType, MemRefType maskType,
                              MemRefType offsetsType, MemRefType idsType,
                              MemRefType weightsType, PlanSource source) {
  MLIRContext *ctx = builder.getContext();
  const int64_t experts = gatesType.getDimSize(2);
  MemRefType tilesType = wordBufferType(ctx);
  PlanKernels kernels;

  // A tile: rows [begin, end) of the numTiles tiles, the one at `index`.
  struct Tile {
    Value begin, end, tokens, count, index;
  };
  // The tile of this block (`whole`: the single-tile kernel's only tile).
  auto tileOf = [](LoopBuilder &b, Value mask, bool whole) {
    Value tokens = dim(b, mask, 1);
    Value rows = muli(b, dim(b, mask, 0), tokens);
    if (whole)
      return Tile{zero(b), rows, tokens, indexConst(b, 1), zero(b)};
    Value begin = muli(b, blockId(b), indexConst(b, kPlanTileRows));
    return Tile{
        begin,
        arith::MinUIOp::create(b, addi(b, begin, indexConst(b, kPlanTileRows)),
                               rows),
        tokens,
        arith::CeilDivUIOp::create(b, rows, indexConst(b, kPlanTileRows)),
        blockId(b)};
  };
  auto at = [](LoopBuilder &b, const Tile &tile, Value g, Value e) {
    return SmallVector<Value>{arith::DivUIOp::create(b, g, tile.tokens),
                              arith::RemUIOp::create(b, g, tile.tokens), e};
  };
  auto layoutOf = [&](LoopBuilder &b, const Tile &tile) {
    return PlanCountLayout(b, tile.count, experts);
  };
  // A thread per expert (E / kPlanTileRows each when E is larger).
  auto forEachExpert = [&](LoopBuilder &b, LoopBody body) {
    forStrided(b, threadId(b), indexConst(b, experts),
               indexConst(b, kPlanTileRows), body);
  };
  // A thread per row of the tile (the single kernel's tile has at most
  // kPlanTileRows rows too).
  auto forEachRow =
      [&](LoopBuilder &b, const Tile &tile,
          function_ref<void(LoopBuilder &, Value r, Value g)> body) {
        forStrided(b, threadId(b), subi(b, tile.end, tile.begin),
                   indexConst(b, kPlanTileRows), [&](LoopBuilder &b, Value r) {
                     body(b, r, addi(b, tile.begin, r));
                   });
      };
  // Word w of expert e's row bitset, and its popcount.
  auto bitsWord = [&](LoopBuilder &b, Value e, Value w) {
    return addi(b, muli(b, e, indexConst(b, kPlanTileWords)), w);
  };
  auto popcount = [](LoopBuilder &b, Value word) -> Value {
    return math::CtPopOp::create(b, word);
  };

  // Row-parallel marking: each thread reads its rows' mask bytes (a row's
  // E bytes are contiguous) and sets the row's bit in each selected
  // expert's bitset of the tile (E x kPlanTileWords shared words, OR
  // atomics); no walk of the mask per expert. Afterwards (a barrier in
  // between) an expert's count in the tile is the popcount of its words,
  // and a row's rank among the expert's rows of the tile the popcount of
  // the bits below its own: stable, in token order.
  auto markRows = [&](LoopBuilder &b, Value mask, const Tile &tile,
                      Value bits) {
    forStrided(b, threadId(b), indexConst(b, experts * kPlanTileWords),
               indexConst(b, kPlanTileRows), [&](LoopBuilder &b, Value i) {
                 store(b, i32Const(b, 0), bits, {i});
               });
    gpu::BarrierOp::create(b);
    forEachRow(b, tile, [&](LoopBuilder &b, Value r, Value g) {
      SmallVector<Value> row = at(b, tile, g, zero(b));
      Value w = arith::DivUIOp::create(b, r, indexConst(b, kWarpSize));
      Value bit = arith::ShLIOp::create(
          b, i32Const(b, 1),
          indexToI32(b,
                     arith::RemUIOp::create(b, r, indexConst(b, kWarpSize))));
      forBatches(
          b, zero(b), indexConst(b, experts), {},
          [&](LoopBuilder &b, Value e) {
            return load(b, mask, {row[0], row[1], e});
          },
          [&](LoopBuilder &b, Value e, Value valid, Value on, ValueRange) {
            ifThen(b, andi(b, valid, on), [&](LoopBuilder &b) {
              memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::ori, bit,
                                          bits, ValueRange{bitsWord(b, e, w)});
            });
            return SmallVector<Value>{};
          });
    });
    gpu::BarrierOp::create(b);
  };
  // Expert e's rows in the marked tile.
  auto tileCount = [&](LoopBuilder &b, Value bits, Value e) {
    Value n = i32Const(b, 0);
    for (int64_t w = 0; w < kPlanTileWords; ++w)
      n = addi(b, n,
               popcount(b, load(b, bits, {bitsWord(b, e, indexConst(b, w))})));
    return n;
  };

  // The marked tile's count of e, stored at its tile slot.
  auto count = [&](LoopBuilder &b, Value counts, const Tile &tile, Value bits) {
    PlanCountLayout layout = layoutOf(b, tile);
    forEachExpert(b, [&](LoopBuilder &b, Value e) {
      store(b, tileCount(b, bits, e), counts,
            {layout.tileSlot(b, e, tile.index)});
    });
  };

  // Each expert's rows of the tile, in token order, from the tile's first
  // row in that expert (`first[e]`: its chunk's start plus the chunk's
  // earlier tiles), row-parallel: a row's plan row in expert e is that
  // plus its rank in e's bitset. With `marked`, the bits are already set.
  auto fill = [&](LoopBuilder &b, Value gates, Value mask, Value counts,
                  Value starts, Value ids, Value weights, const Tile &tile,
                  Value bits, Value first, bool marked) {
    PlanCountLayout layout = layoutOf(b, tile);
    Value chunk = layout.chunkOf(b, tile.index);
    Value firstTile = layout.chunkFirstTile(b, tile.index);
    forEachExpert(b, [&](LoopBuilder &b, Value e) {
      Value start = sumCounts(
          b, layout.tileSlot(b, e, firstTile),
          layout.tileSlot(b, e, tile.index),
          load(b, starts, {layout.startSlot(b, e, chunk)}),
          [&](LoopBuilder &b, Value i) { return load(b, counts, {i}); });
      store(b, start, first, {e});
    });
    // markRows begins and ends with a barrier: `first` is visible after it.
    if (marked)
      gpu::BarrierOp::create(b);
    else
      markRows(b, mask, tile, bits);
    forEachRow(b, tile, [&](LoopBuilder &b, Value r, Value g) {
      SmallVector<Value> row = at(b, tile, g, zero(b));
      Value w = arith::DivUIOp::create(b, r, indexConst(b, kWarpSize));
      Value lane =
          indexToI32(b, arith::RemUIOp::create(b, r, indexConst(b, kWarpSize)));
      Value one = i32Const(b, 1);
      Value below = subi(b, arith::ShLIOp::create(b, one, lane), one);
      Value gI32 = indexToI32(b, g);
      forRange(
          b, zero(b), indexConst(b, experts), [&](LoopBuilder &b, Value e) {
            Value word = load(b, bits, {bitsWord(b, e, w)});
            Value on = cmpi(b, CmpIPredicate::ne,
                            arith::AndIOp::create(
                                b, arith::ShRUIOp::create(b, word, lane), one),
                            i32Const(b, 0));
            ifThen(b, on, [&](LoopBuilder &b) {
              Value pos =
                  addi(b, load(b, first, {e}),
                       popcount(b, arith::AndIOp::create(b, word, below)));
              for (int64_t v = 0; v + 1 < kPlanTileWords; ++v) {
                Value earlier =
                    cmpi(b, CmpIPredicate::ult, indexConst(b, v), w);
                Value n = popcount(
                    b, load(b, bits, {bitsWord(b, e, indexConst(b, v))}));
                pos = addi(b, pos, select(b, earlier, n, i32Const(b, 0)));
              }
              Value at = i32ToIndex(b, pos);
              store(b, gI32, ids, {at});
              store(b, load(b, gates, {row[0], row[1], e}), weights, {at});
            });
          });
    });
  };

  // Shared memory of the tile kernels: the bitsets and first rows.
  auto tileBuffers = [&] {
    return SmallVector<Type>{workgroupBuffer(ctx, experts * kPlanTileWords),
                             workgroupBuffer(ctx, experts)};
  };
  auto scanScratch = [&] {
    return SmallVector<Type>{workgroupBuffer(ctx, kPlanTileRows / kWarpSize),
                             workgroupBuffer(ctx, 1)};
  };
  if (source == PlanSource::Mask) {
    kernels.count = buildKernel(
        builder, loc, (name + "_count").str(), {maskType, tilesType},
        int32_t(kPlanTileRows),
        [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value> shared) {
          Tile tile = tileOf(b, args[0], false);
          markRows(b, args[0], tile, shared[0]);
          count(b, args[1], tile, shared[0]);
        },
        {workgroupBuffer(ctx, experts * kPlanTileWords)});
    // scan(counts, starts, offsets, numTiles): each (expert, chunk)'s
    // tiles summed into starts, then scanned there in place.
    kernels.scan = buildKernel(
        builder, loc, (name + "_scan").str(),
        {tilesType, tilesType, offsetsType, builder.getIndexType()},
        int32_t(kPlanBlock),
        [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value> workgroup) {
          Value counts = args[0], starts = args[1], numTiles = args[3];
          PlanCountLayout layout(b, numTiles, experts);
          Value chunkTiles = indexConst(b, kPlanChunkTiles);
          forStrided(
              b, threadId(b), layout.startWords(b), indexConst(b, kPlanBlock),
              [&](LoopBuilder &b, Value slot) {
                Value e = arith::DivUIOp::create(b, slot, layout.chunks);
                Value first =
                    muli(b, arith::RemUIOp::create(b, slot, layout.chunks),
                         chunkTiles);
                Value end = arith::MinUIOp::create(
                    b, addi(b, first, chunkTiles), numTiles);
                Value sum =
                    sumCounts(b, layout.tileSlot(b, e, first),
                              layout.tileSlot(
                                  b, e, arith::MaxUIOp::create(b, end, first)),
                              i32Const(b, 0), [&](LoopBuilder &b, Value i) {
                                return load(b, counts, {i});
                              });
                store(b, sum, starts, {slot});
              });
          gpu::BarrierOp::create(b);
          scanExpertMajor(b, starts, zero(b), starts, args[2], layout.chunks,
                          experts, kPlanBlock, workgroup,
                          /*atomicReads=*/false);
        },
        {workgroupBuffer(ctx, kPlanBlock / kWarpSize),
         workgroupBuffer(ctx, 1)});
  }
  if (source == PlanSource::Budgeted) {
    // count_scan(mask, counts, starts, offsets): the tile marked
    // row-parallel, its counts stored at its tile slots (atomics: the last
    // block reads with atomics) and added to its chunk's; the tile to
    // finish last (the chunk counts and done counter zeroed by the route's
    // first kernel) scans the chunk counts.
    SmallVector<Type> scratch = scanScratch();
    scratch.push_back(workgroupBuffer(ctx, 1));
    scratch.push_back(workgroupBuffer(ctx, experts * kPlanTileWords));
    kernels.countScan = buildKernel(
        builder, loc, (name + "_count_scan").str(),
        {maskType, tilesType, tilesType, offsetsType}, int32_t(kPlanTileRows),
        [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value> workgroup) {
          Value mask = args[0], counts = args[1], starts = args[2],
                offsets = args[3];
          Value bits = workgroup[3];
          Tile tile = tileOf(b, mask, false);
          PlanCountLayout layout = layoutOf(b, tile);
          markRows(b, mask, tile, bits);
          Value chunk = layout.chunkOf(b, tile.index);
          forEachExpert(b, [&](LoopBuilder &b, Value e) {
            Value n = tileCount(b, bits, e);
            memref::AtomicRMWOp::create(
                b, arith::AtomicRMWKind::assign, n, counts,
                ValueRange{layout.tileSlot(b, e, tile.index)});
            ifThen(b, cmpi(b, CmpIPredicate::ne, n, i32Const(b, 0)),
                   [&](LoopBuilder &b) {
                     memref::AtomicRMWOp::create(
                         b, arith::AtomicRMWKind::addi, n, counts,
                         ValueRange{layout.chunkSlot(b, e, chunk)});
                   });
          });
          scanPlanCountsIfLast(b, layout, counts, starts, offsets,
                               kPlanTileRows,
                               {workgroup[0], workgroup[1], workgroup[2]});
        },
        scratch);
  }
  if (source != PlanSource::Mask) {
    // All three on one block when the rows are a single tile (its own
    // chunk): the barriers order the global counts between the phases.
    SmallVector<Type> shared = tileBuffers();
    shared.append(scanScratch());
    kernels.single = buildKernel(
        builder, loc, (name + "_single").str(),
        {gatesType, maskType, tilesType, tilesType, offsetsType, idsType,
         weightsType},
        int32_t(kPlanTileRows),
        [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value> workgroup) {
          Value gates = args[0], mask = args[1], counts = args[2],
                starts = args[3];
          Tile tile = tileOf(b, mask, true);
          markRows(b, mask, tile, workgroup[0]);
          count(b, counts, tile, workgroup[0]);
          gpu::BarrierOp::create(b);
          scanExpertMajor(b, counts, zero(b), starts, args[4], tile.count,
                          experts, kPlanTileRows, workgroup.drop_front(2),
                          /*atomicReads=*/false);
          gpu::BarrierOp::create(b);
          fill(b, gates, mask, counts, starts, args[5], args[6], tile,
               workgroup[0], workgroup[1], /*marked=*/true);
        },
        shared);
  }

  kernels.fill = buildKernel(
      builder, loc, (name + "_fill").str(),
      {gatesType, maskType, tilesType, tilesType, idsType, weightsType},
      int32_t(kPlanTileRows),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value> shared) {
        fill(b, args[0], args[1], args[2], args[3], args[4], args[5],
             tileOf(b, args[1], false), shared[0], shared[1],
             /*marked=*/false);
      },
      tileBuffers());
  return kernels;
}

gpu::GPUFuncOp gpu_kernels::buildSelectGivenKernel(
    OpBuilder &builder, Location loc, StringRef name, MemRefType idsType,
    MemRefType weightsType, MemRefType gatesType, MemRefType maskType) {
  const int64_t experts = gatesType.getDimSize(2);
  return buildKernel(
      builder, loc, name, {idsType, weightsType, gatesType, maskType},
      int32_t(kColumnBlock),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value>) {
        Value ids = args[0], weights = args[1], gates = args[2], mask = args[3];
        Value r = addi(b, muli(b, blockId(b), indexConst(b, kColumnBlock)),
                       threadId(b));
        ifThen(b, cmpi(b, CmpIPredicate::ult, r, dim(b, ids, 0)),
               [&](LoopBuilder &b) {
                 emitGivenRow(b, ids, weights, gates, mask, r, experts,
                              /*checked=*/false);
               });
      });
}

gpu::GPUFuncOp gpu_kernels::buildDispatchKernel(OpBuilder &builder,
                                                Location loc, StringRef name,
                                                MemRefType hiddenType,
                                                MemRefType idsType,
                                                MemRefType outType) {
  return buildKernel(
      builder, loc, name, {hiddenType, idsType, outType}, int32_t(kRowBlock),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value>) {
        Value hidden = args[0], ids = args[1], out = args[2];
        Value m = blockId(b);
        Value g = i32ToIndex(b, load(b, ids, {m}));
        forStrided(b, threadId(b), dim(b, hidden, 1), indexConst(b, kRowBlock),
                   [&](LoopBuilder &b, Value d) {
                     store(b, load(b, hidden, {g, d}), out, {m, d});
                   });
      });
}

gpu::GPUFuncOp gpu_kernels::buildCombineKernel(
    OpBuilder &builder, Location loc, StringRef name, MemRefType outType,
    MemRefType idsType, MemRefType weightsType, MemRefType offsetsType,
    MemRefType initType, MemRefType resultType) {
  const int64_t experts = offsetsType.getDimSize(0) - 1;
  MLIRContext *ctx = builder.getContext();
  auto sharedF32 = MemRefType::get(
      {experts}, Float32Type::get(ctx), MemRefLayoutAttrInterface(),
      gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup));
  // rowOf[e]: token g's row in expert e's segment (-1: none); then the
  // found rows in ascending expert order, their gate weights and count.
  SmallVector<Type> workgroup = {workgroupBuffer(ctx, experts),
                                 workgroupBuffer(ctx, experts), sharedF32,
                                 workgroupBuffer(ctx, 1)};
  return buildKernel(
      builder, loc, name,
      {outType, idsType, weightsType, offsetsType, initType, resultType},
      int32_t(kRowBlock),
      [&](LoopBuilder &b, ArrayRef<Value> args, ArrayRef<Value> shared) {
        Value expertOut = args[0], ids = args[1], weights = args[2],
              offsets = args[3], init = args[4], result = args[5];
        Value rowOf = shared[0], rows = shared[1], gates = shared[2],
              count = shared[3];
        Type element = resultType.getElementType();
        Value g = blockId(b), tid = threadId(b);
        Value gI32 = indexToI32(b, g);
        Value c0 = zero(b), c1 = indexConst(b, 1);
        Value block = indexConst(b, kRowBlock);
        // A thread per expert: binary search of g in the expert's ids
        // (ascending inside a segment); reads nothing of an empty segment.
        forStrided(
            b, tid, indexConst(b, experts), block,
            [&](LoopBuilder &b, Value e) {
              Value lo = i32ToIndex(b, load(b, offsets, {e}));
              Value hi = i32ToIndex(b, load(b, offsets, {addi(b, e, c1)}));
              Value m = lowerBound(b, lo, hi, [&](LoopBuilder &b, Value mid) {
                return cmpi(b, CmpIPredicate::slt, load(b, ids, {mid}), gI32);
              });
              store(b, i32Const(b, -1), rowOf, {e});
              ifThen(
                  b, cmpi(b, CmpIPredicate::ult, m, hi), [&](LoopBuilder &b) {
                    ifThen(b,
                           cmpi(b, CmpIPredicate::eq, load(b, ids, {m}), gI32),
                           [&](LoopBuilder &b) {
                             store(b, indexToI32(b, m), rowOf, {e});
                           });
                  });
            });
        gpu::BarrierOp::create(b);
        // Thread 0 lists them in ascending expert order (the sum's order).
        ifThen(b, cmpi(b, CmpIPredicate::eq, tid, c0), [&](LoopBuilder &b) {
          Value n = forRangeAcc(
              b, c0, indexConst(b, experts), {c0},
              [&](LoopBuilder &b, Value e, ValueRange acc) {
                Value row = load(b, rowOf, {e});
                Value here = cmpi(b, CmpIPredicate::sge, row, i32Const(b, 0));
                ifThen(b, here, [&](LoopBuilder &b) {
                  store(b, row, rows, {acc[0]});
                  store(b, load(b, weights, {i32ToIndex(b, row)}), gates,
                        {acc[0]});
                });
                return SmallVector<Value>{
                    select(b, here, addi(b, acc[0], c1), acc[0])};
              })[0];
          store(b, indexToI32(b, n), count, {c0});
        });
        gpu::BarrierOp::create(b);
        Value n = i32ToIndex(b, load(b, count, {c0}));
        Value width = dim(b, init, 1);
        // d by d; or kCombineVector at a time where D allows and every row
        // starts aligned (the f32 expert rows, init and result).
        auto sumOver = [&](LoopBuilder &b, Value d, int64_t lanes) {
          auto wide = [&](Type t) -> Type {
            return lanes == 1 ? t : VectorType::get({lanes}, t);
          };
          auto read = [&](Value memref, ValueRange at) -> Value {
            Type t = cast<MemRefType>(memref.getType()).getElementType();
            if (lanes == 1)
              return load(b, memref, at);
            return vector::LoadOp::create(
                b, cast<VectorType>(wide(t)), memref, at,
                /*nontemporal=*/false,
                llvm::MaybeAlign(lanes * t.getIntOrFloatBitWidth() / 8));
          };
          auto toF32 = [&](Value v) -> Value {
            if (getElementTypeOrSelf(v.getType()).isF32())
              return v;
            return arith::ExtFOp::create(b, wide(b.getF32Type()), v);
          };
          Value acc = forRangeAcc(
              b, c0, n, {toF32(read(init, {g, d}))},
              [&](LoopBuilder &b, Value i, ValueRange a) {
                Value row = i32ToIndex(b, load(b, rows, {i}));
                Value gate = load(b, gates, {i});
                if (lanes > 1)
                  gate = vector::BroadcastOp::create(
                      b, VectorType::get({lanes}, b.getF32Type()), gate);
                Value term = mulf(b, gate, toF32(read(expertOut, {row, d})));
                return SmallVector<Value>{addf(b, a[0], term)};
              })[0];
          Value v = element.isF32()
                        ? acc
                        : arith::TruncFOp::create(b, wide(element), acc);
          if (lanes == 1) {
            store(b, v, result, {g, d});
            return;
          }
          vector::StoreOp::create(
              b, v, result, ValueRange{g, d}, /*nontemporal=*/false,
              llvm::MaybeAlign(lanes * element.getIntOrFloatBitWidth() / 8));
        };
        int64_t lanes = kCombineVector;
        int64_t bytes = lanes * element.getIntOrFloatBitWidth() / 8;
        int64_t outBytes =
            lanes * outType.getElementType().getIntOrFloatBitWidth() / 8;
        Value vectorized =
            cmpi(b, CmpIPredicate::eq,
                 arith::RemUIOp::create(b, width, indexConst(b, lanes)), c0);
        vectorized = andi(b, vectorized, rowsAligned(b, expertOut, outBytes));
        vectorized = andi(b, vectorized, rowsAligned(b, init, bytes));
        vectorized = andi(b, vectorized, rowsAligned(b, result, bytes));
        ifThenElse(
            b, vectorized,
            [&](LoopBuilder &b) {
              Value step = indexConst(b, kRowBlock * lanes);
              forStrided(
                  b, muli(b, tid, indexConst(b, lanes)), width, step,
                  [&](LoopBuilder &b, Value d) { sumOver(b, d, lanes); });
            },
            [&](LoopBuilder &b) {
              forStrided(b, tid, width, block,
                         [&](LoopBuilder &b, Value d) { sumOver(b, d, 1); });
            });
      },
      workgroup);
}
