//===- Kernels.h - the GPU routing kernels ----------------------*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_CONVERSION_MOETOGPU_KERNELS_H
#define USMOE_LIB_CONVERSION_MOETOGPU_KERNELS_H

#include "Conversion/Common/LoopBuilder.h"
#include "Conversion/Common/RoutingMath.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinTypes.h"
#include "usmoe/Conversion/MoeToGPU/MoeToGPU.h"
#include "usmoe/Dialect/Moe/IR/MoeDialect.h"

#include <optional>

namespace mlir::usmoe::gpu_kernels {

/// An empty kernel `name(args)` (marked `gpu.kernel`) with a known 1-D block
/// of `threads` and the given workgroup (shared memory) buffers, at
/// `builder`'s insertion point inside a gpu.module.
gpu::GPUFuncOp createKernel(OpBuilder &builder, Location loc, StringRef name,
                            ArrayRef<Type> args, int32_t threads,
                            ArrayRef<Type> workgroup = {});

/// What builds a kernel's body: a builder at its start, the kernel's
/// arguments and its workgroup (shared memory) buffers.
using KernelBody = function_ref<void(loops::LoopBuilder &, ArrayRef<Value> args,
                                     ArrayRef<Value> workgroup)>;

/// createKernel, with the body made by `body` and closed by gpu.return.
gpu::GPUFuncOp buildKernel(OpBuilder &builder, Location loc, StringRef name,
                           ArrayRef<Type> args, int32_t threads,
                           KernelBody body, ArrayRef<Type> workgroup = {});

/// Launch shape of the Token Choice kernel: 4 warps a block, a token per
/// warp, or per segment of tokenChoiceRowLanes(E) lanes.
inline constexpr int64_t kTokenChoiceWarpsPerBlock = 4;

/// Lanes that route one token in the Token Choice kernel: the warp, or for
/// E <= 16 (no group limit) E rounded up to a power of two, so that a warp
/// routes 32 / lanes tokens instead of leaving most lanes idle.
inline int64_t tokenChoiceRowLanes(int64_t experts, bool groupLimited) {
  if (groupLimited || experts > 16)
    return 32;
  return int64_t(llvm::PowerOf2Ceil(uint64_t(std::max<int64_t>(experts, 1))));
}
/// Tokens a block of the Token Choice kernel routes.
inline int64_t tokenChoiceRowsPerBlock(int64_t experts, bool groupLimited) {
  return kTokenChoiceWarpsPerBlock * 32 /
         tokenChoiceRowLanes(experts, groupLimited);
}

/// Experts a warp can hold in registers (64 per lane): the GPU limit on E.
inline constexpr int64_t kMaxExperts = 2048;

/// DeepSeek-V3 group-limited selection: the k experts come from the `kept`
/// best of `groups` groups of consecutive experts.
struct GroupLimit {
  int64_t groups = 0, kept = 0;
};
/// Groups a Token Choice kernel can limit to (a bit per group in a lane).
inline constexpr int64_t kMaxGroups = 64;

/// Builds, at `builder`'s insertion point inside a gpu.module, the kernel
/// `name(logits, gates, mask[, bias])` for memrefs of the given types
/// ([B, T, E]). With a `bias` type it is the sigmoid_bias variant: gates are
/// sigmoid(L), experts ranked by sigmoid(L) + bias. With `groupLimit`, the
/// group-limited selection (group scores by warp all-reduce of per-lane
/// top-2 pairs). With `listIds` / `listWeights` types ([B*T, k], k <=
/// kMaxFusedListK, no bias) it also writes moe.topk_list's lists as two
/// more arguments: the picks by descending gate, ties to the lower expert.
/// `zeroed` (1-D i32 types): more arguments, last, that the kernel clears
/// (workspaces of later launches, see zeroFromEveryThread). With
/// `unifiedAlpha` it routes sequences of one token of a unified router
/// (the spec: their selection is Token Choice's): scores and gates are U,
/// k the sequence's budget N (no bias, groups or renormalization).
gpu::GPUFuncOp buildTokenChoiceKernel(
    OpBuilder &builder, Location loc, StringRef name, MemRefType logits,
    MemRefType gates, MemRefType mask, int64_t k, bool renormalize,
    MemRefType bias, std::optional<GroupLimit> groupLimit,
    const loops::ModelOptions &model, MemRefType listIds = nullptr,
    MemRefType listWeights = nullptr, ArrayRef<MemRefType> zeroed = {},
    std::optional<double> unifiedAlpha = std::nullopt);

/// The largest k whose top-k lists the Token Choice kernel writes itself
/// (a pick per lane).
inline constexpr int64_t kMaxFusedListK = 32;

/// `name(gates, mask, ids, weights)`: moe.topk_list, one warp per token
/// (the Token Choice launch shape): ids / weights [B*T, k] by descending
/// gate, ties to the lower expert, padded with (-1, 0).
gpu::GPUFuncOp buildTopKListKernel(OpBuilder &builder, Location loc,
                                   StringRef name, MemRefType gates,
                                   MemRefType mask, MemRefType ids,
                                   MemRefType weights);

/// Row scores: 4 tokens (warps) per 128-thread block.
inline constexpr int64_t kRowsPerScoreBlock = 4;
/// Column kernels: 128 threads per block (select_given: a thread per row;
/// the softmax_tokens mix: a block per (sequence, expert) column).
inline constexpr int64_t kColumnBlock = 128;
/// Select kernels: one 1024-thread block per selection set.
inline constexpr int64_t kSelectBlock = 1024;

/// `name(logits, scores)`: scores[b, t, :] = P, or, with `alpha`,
/// U = (1 - alpha) * P + alpha * (2/E) * sigmoid(L) (one warp per token).
/// With `statsOnly`, `name(logits, stats)` instead: each row's softmax max
/// and sum go to stats[2 r], stats[2 r + 1] (r = b * T + t, f32) for a
/// select that recomputes the scores (RecomputedScores), and no scores.
/// `zeroed` (1-D i32 types): more arguments the kernel clears (workspaces
/// of later launches, see zeroFromEveryThread).
gpu::GPUFuncOp buildRowScoreKernel(OpBuilder &builder, Location loc,
                                   StringRef name, MemRefType logits,
                                   MemRefType scores,
                                   std::optional<double> alpha,
                                   const loops::ModelOptions &model,
                                   ArrayRef<MemRefType> zeroed = {},
                                   bool statsOnly = false);

/// 1-D f32 buffer in global memory: the row softmax statistics.
inline MemRefType statsBufferType(MLIRContext *ctx) {
  return MemRefType::get({ShapedType::kDynamic}, Float32Type::get(ctx));
}

/// A select that reads its scores from the logits instead of a score
/// buffer: the row score of buildRowScoreKernel (P, or U with `alpha`)
/// recomputed per element from the logit and its row's stats, by the same
/// code (recomputeRowScore), so the bits are the score kernel's. For bf16
/// logits a pass reads 2 bytes an element instead of 4, and the score
/// kernel writes no scores.
struct RecomputedScores {
  MemRefType logits;
  std::optional<double> alpha;

  /// PTX instructions per element of a select pass that recomputes the
  /// scores: U (two exps, a division and a reciprocal besides the softmax),
  /// or a softmax probability. The cost model's arithmetic term; counted
  /// in the element loops of the select_histogram and select_mark kernels
  /// (2026-12-01: U 100-142, P 64-103 with the loop, key and stores), and
  /// test/Pipelines/usmoe-to-nvvm.mlir checks those loops within 30%.
  int64_t instructionsPerElement() const { return alpha ? 120 : 85; }
};

/// PTX instructions per key of a digit pass over compacted candidates.
inline constexpr int64_t kCandidateKeyInstructions = 14;

/// The row score of logits[idx] (idx = [b, t, e]) from the row's stats
/// (see buildRowScoreKernel).
Value recomputeRowScore(loops::LoopBuilder &b, const RecomputedScores &how,
                        Value logits, Value stats, ArrayRef<Value> idx,
                        const loops::ModelOptions &model);
/// Where row (bi, ti)'s max is in the stats buffer (its sum follows).
Value statsSlot(loops::LoopBuilder &b, Value logits, Value bi, Value ti);

/// Where a select kernel reads an element's score: the gate buffer, or
/// (with `recompute`) the logits and stats, which the kernel then takes
/// as its first two arguments.
struct ScoreSource {
  std::optional<RecomputedScores> recompute;
  const loops::ModelOptions &model;

  /// The leading argument types: (logits, stats), or none.
  SmallVector<Type> argTypes(MLIRContext *ctx) const;
  size_t numArgs() const { return recompute ? 2 : 0; }
  /// The score at idx = [b, t, e]; `args`: the kernel's arguments.
  Value scoreAt(loops::LoopBuilder &b, ArrayRef<Value> args, Value gates,
                ArrayRef<Value> idx) const;
};

/// `name(logits, scores)`: scores = (1 - alpha) * scores + alpha * F with F
/// the softmax of each (sequence, expert) column over the tokens; one block
/// per column, its threads over the tokens (max and sum by block
/// all-reduces: the same bits in every thread).
/// With a `seqlens` type the logits are one packed batch and the kernel
/// takes the offsets as a third argument: column (i, e) of sequence i.
gpu::GPUFuncOp buildTokenSoftmaxMixKernel(OpBuilder &builder, Location loc,
                                          StringRef name, MemRefType logits,
                                          MemRefType scores, double alpha,
                                          const loops::ModelOptions &model,
                                          MemRefType seqlens = nullptr);

/// A 1-D i32 buffer of `size` elements in workgroup (shared) memory.
MemRefType workgroupBuffer(MLIRContext *ctx, int64_t size);

/// memref<?xi32> in global memory: the kernels' workspaces (tile counts,
/// select histograms and counters).
inline MemRefType wordBufferType(MLIRContext *ctx) {
  return MemRefType::get({ShapedType::kDynamic}, IntegerType::get(ctx, 32));
}

/// The buffers through which a selection kernel counts its picks for a
/// route's plan (i32 counts laid out as PlanCountLayout says, zeroed by an
/// earlier launch; starts: E * chunks; the plan's offsets): it adds each
/// selected pair with PlanCounter::count and ends with
/// PlanCounter::scanIfLast, so the plan only fills.
struct PlanCountTypes {
  MemRefType counts, starts, offsets;
};

/// What one block of a select kernel selects over.
enum class SelectionSet {
  Sequence, ///< the T * E pairs of sequence b (Unified); grid = B
  Column,   ///< the T tokens of (b, e) (Expert Choice); grid = B * E
};

/// The budget of one select set of T tokens (index), built in a kernel.
using SetBudgetFn = function_ref<Value(loops::LoopBuilder &, Value tokens)>;

/// `name(gates, mask, budget: index)`: in place, keeps the `budget` best
/// scores of each set (ties to the lower flat / token index), zeroes the
/// rest, writes the mask and scales the kept gates by `model.gate`. With a
/// `seqlens` type, `name(gates, mask, seqlens)` over one packed batch: the
/// sets are sequence i's pairs (or its (i, e) columns), and each set's
/// budget is `budgetOf(T_i)`. With `plan` (not packed), three more
/// arguments (counts, starts, offsets): the kernel counts its selection for
/// a route's plan (see PlanCountTypes) when B * T spans several tiles. With
/// `recompute`, (logits, stats) come first and the scores are recomputed
/// from them (see RecomputedScores): `gates` is only written.
gpu::GPUFuncOp
buildSelectKernel(OpBuilder &builder, Location loc, StringRef name,
                  MemRefType gates, MemRefType mask, SelectionSet set,
                  const loops::ModelOptions &model,
                  MemRefType seqlens = nullptr, SetBudgetFn budgetOf = nullptr,
                  std::optional<PlanCountTypes> plan = std::nullopt,
                  std::optional<RecomputedScores> recompute = std::nullopt);

/// Radix select: 8-bit digits of the 32-bit score key, from the top.
inline constexpr int64_t kRadixBins = 256;
inline constexpr int64_t kRadixPasses = 4;
/// Keys the one-block select keeps in shared memory (32 KB): a set of at
/// most this many elements computes each score once; larger sets keep the
/// keys matching the prefix once they fit. As many as the largest set that
/// stays on one block by default.
inline constexpr int64_t kSharedKeys = kDefaultSelectSpread;

/// Thread 0's scan of a kRadixBins histogram (workgroup i32s) from the top:
/// the digit of the `remaining`-th best key among those counted, and how
/// many keys of that digit are still to take (i32 values).
std::pair<Value, Value> pickDigit(loops::LoopBuilder &b, Value hist,
                                  Value remaining);

/// The per-set i32 workspace of the multi-block select (word offsets).
struct SelectWorkspace {
  static constexpr int64_t kHist = 0;         ///< kRadixBins global counts
  static constexpr int64_t kCounters = 256;   ///< blocks done, per pass
  static constexpr int64_t kState = 260;      ///< (prefix, still to take)
                                              ///< after each pass
  static constexpr int64_t kTieEnd = 268;     ///< ties taken below this index
  static constexpr int64_t kCandidates = 269; ///< keys compacted so far
  static constexpr int64_t kMatches = 272;    ///< keys matching the prefix
                                              ///< after each pass
  static constexpr int64_t kWords = 276;
};

/// Candidate compaction (AIR top-k): once the keys matching the prefix
/// chosen so far number at most 1 / kCandidateShare of the set, the next
/// full pass appends them to the set's candidate buffer and the passes
/// after it read those keys instead of recomputing every score. A quarter
/// of the set: random unified scores (E >= 64, k = 1.5) put 1-8% of a
/// set under the first digit of the threshold, 0.01-0.1% under two.
inline constexpr int64_t kCandidateShare = 4;

/// The candidate buffer's words per set of `setSize` keys (index values).
inline Value candidateCapacity(loops::LoopBuilder &b, Value setSize) {
  return arith::CeilDivUIOp::create(b, setSize,
                                    loops::indexConst(b, kCandidateShare));
}

/// The launches of a multi-block select over dense [B, T, E] gates (see
/// MultiBlockSelect.cpp), after a zeroed workspace:
/// `histogram(gates, workspace, candidates, budget, pass)` for pass 0..3
/// (`candidates`: sets * candidateCapacity words, need not be zeroed) and
/// `mark(gates, mask, workspace)`, each on sets * ceildiv(count, chunk)
/// blocks of kSelectBlock threads.
struct MultiBlockSelectKernels {
  gpu::GPUFuncOp histogram, mark;
};
/// With `plan`, mark takes (counts, starts, offsets) too and counts the
/// selection for a route's plan (see PlanCountTypes). With `recompute`,
/// both kernels take (logits, stats) first and compute each element's score
/// instead of reading it from `gates` (which mark only writes).
MultiBlockSelectKernels buildMultiBlockSelectKernels(
    OpBuilder &builder, Location loc, StringRef name, MemRefType gates,
    MemRefType mask, SelectionSet set, const loops::ModelOptions &model,
    int64_t chunk, std::optional<PlanCountTypes> plan = std::nullopt,
    std::optional<RecomputedScores> recompute = std::nullopt);

/// Plan: the scan kernel's block (the plan of a given mask); rows per tile
/// of the tile kernels (count, count_scan, fill, single), whose blocks have
/// a thread per row, and the 32-bit words of a tile's per-expert row bitset.
inline constexpr int64_t kPlanBlock = 1024;
inline constexpr int64_t kPlanTileRows = 128;
inline constexpr int64_t kPlanTileWords = kPlanTileRows / 32;
/// Tiles per chunk of the plan's two-level scan. One block scans the E x
/// chunks sums (at 65536 rows x 256 experts 8192 words instead of 131072:
/// the single-SM tail that dominated a large plan) and each fill block adds
/// the counts of its chunk's earlier tiles (at most 15 words per expert).
inline constexpr int64_t kPlanChunkTiles = 16;
/// Loads a plan kernel issues before it uses the first of them.
inline constexpr int64_t kPlanBatch = 8;
/// Dispatch and combine: one 256-thread block per row / token.
inline constexpr int64_t kRowBlock = 256;
/// Elements of d a combine thread sums at once (vector loads) where the
/// rows allow.
inline constexpr int64_t kCombineVector = 4;

/// Where a plan's tile counts come from.
enum class PlanSource {
  /// Any selection: counted from the mask, scanned on one block, and M read
  /// back by the host.
  Mask,
  /// A route's selection (M from its budget): counted from the mask, the
  /// tile done last scans.
  Budgeted,
  /// A route whose select kernels count and scan (see PlanCountTypes).
  CountedBySelection,
};

/// Where a plan's i32 counts live: expert-major counts of each (expert,
/// tile of kPlanTileRows rows), then of each (expert, chunk of
/// kPlanChunkTiles tiles), then a done counter. The scan turns the chunk
/// counts into `starts` (E * chunks words: each (expert, chunk)'s first
/// plan row); a tile's first row of an expert is its chunk's start plus
/// the counts of the chunk's earlier tiles. `numTiles` = ceildiv(B * T,
/// kPlanTileRows); an empty input still has one (empty) tile.
struct PlanCountLayout {
  PlanCountLayout(loops::LoopBuilder &b, Value numTiles, int64_t experts);
  Value tileSlot(loops::LoopBuilder &b, Value expert, Value tile) const;
  /// (expert, chunk) in `starts`; in `counts`, after chunkBase.
  Value startSlot(loops::LoopBuilder &b, Value expert, Value chunk) const;
  Value chunkSlot(loops::LoopBuilder &b, Value expert, Value chunk) const;
  Value chunkOf(loops::LoopBuilder &b, Value tile) const;
  /// The first tile of `tile`'s chunk.
  Value chunkFirstTile(loops::LoopBuilder &b, Value tile) const;
  /// Words of the counts buffer, and of starts.
  Value countWords(loops::LoopBuilder &b) const;
  Value startWords(loops::LoopBuilder &b) const;

  int64_t experts;
  Value tiles, chunks;
  /// Index of the first chunk count; of the done counter.
  Value chunkBase, doneSlot;
};

/// The kernels of moe.plan (see PlanKernels.cpp): counts and starts as
/// PlanCountLayout says, and every source ends with fill(gates, mask,
/// counts, starts, ids, weights) on numTiles blocks.
///  - Mask: count(mask, counts) on numTiles blocks (tile counts only),
///    scan(counts, starts, offsets) on one (sums the chunks, then scans).
///  - Budgeted: count_scan(mask, counts, starts, offsets) on numTiles blocks
///    (chunk counts and done counter zeroed
///    beforehand), the block done last scanning.
///  - Budgeted and CountedBySelection: when numTiles <= 1, single(gates,
///    mask, counts, starts, offsets, ids, weights) on one block does it all
///    instead.
struct PlanKernels {
  gpu::GPUFuncOp count, scan, fill, single, countScan;
};
PlanKernels buildPlanKernels(OpBuilder &builder, Location loc, StringRef name,
                             MemRefType gates, MemRefType mask,
                             MemRefType offsets, MemRefType ids,
                             MemRefType weights, PlanSource source);

/// How a selection kernel counts its picks for a route's plan (the
/// buffers of PlanCountTypes), when the selection's B * T rows span several
/// tiles (one tile is the plan's single-block kernel's job).
class PlanCounter {
public:
  /// `gates`: the selection's [B, T, E] buffer (for B and T).
  PlanCounter(loops::LoopBuilder &b, Value gates, Value counts, Value starts,
              Value offsets);
  /// The pair's tile count and chunk count += 1 (atomics) when `selected`;
  /// `idx` = [b, t, e].
  void count(loops::LoopBuilder &b, Value selected, ArrayRef<Value> idx);
  /// After the counts, by every thread of each block: the block adds itself
  /// to the done counter (between fences) and the launch's last block scans
  /// the chunk counts into starts and offsets. `workgroup`: i32 buffers of
  /// threads / 32 slots, one slot, and one slot.
  void scanIfLast(loops::LoopBuilder &b, int64_t threads,
                  ArrayRef<Value> workgroup);

private:
  Value gates, counts, starts, offsets, several;
  PlanCountLayout layout;
};

/// A device-scope memory fence (PTX membar.gl, CUDA's __threadfence()).
/// The last-block-done pattern needs one in thread 0 between the block's
/// results (after a barrier) and its increment of the done counter, and one
/// after that increment in the block that finds itself last: the atomics
/// the kernels use are relaxed on the GPU, so nothing else orders them.
void fenceDevice(loops::LoopBuilder &b);

/// Stores 0 into every word of each 1-D i32 buffer, spread over all threads
/// of the grid: a kernel that runs before another clears its workspace
/// instead of a launch of its own.
void zeroFromEveryThread(loops::LoopBuilder &b, ValueRange buffers);

/// `name(ids, weights, gates, mask)`: moe.select_given, one thread per row
/// (kColumnBlock per block): the row zeroed, then its given pairs set; ids
/// outside [0, E) are skipped.
gpu::GPUFuncOp buildSelectGivenKernel(OpBuilder &builder, Location loc,
                                      StringRef name, MemRefType ids,
                                      MemRefType weights, MemRefType gates,
                                      MemRefType mask);

/// `name(hidden, ids, out)`: out[m, :] = hidden[ids[m], :]; grid = M.
gpu::GPUFuncOp buildDispatchKernel(OpBuilder &builder, Location loc,
                                   StringRef name, MemRefType hidden,
                                   MemRefType ids, MemRefType out);

/// `name(out, ids, weights, offsets, init, result)`: one block per token,
/// which finds its rows once (a binary search per expert, a thread each),
/// then sums its experts' rows in ascending expert order over d.
gpu::GPUFuncOp buildCombineKernel(OpBuilder &builder, Location loc,
                                  StringRef name, MemRefType out,
                                  MemRefType ids, MemRefType weights,
                                  MemRefType offsets, MemRefType init,
                                  MemRefType result);

/// `name(x, offsets, w1, w3, w2, scratch, out)`: SwiGLU of plan row m with
/// its expert's weights (stored as `layout` says), one block per row (f32
/// accumulation); `scratch` ([M, F] f32) holds the row's hidden activations
/// between the two halves.
gpu::GPUFuncOp buildExpertFfnKernel(OpBuilder &builder, Location loc,
                                    StringRef name, MemRefType x,
                                    MemRefType offsets, MemRefType w1,
                                    MemRefType w3, MemRefType w2,
                                    MemRefType scratch, MemRefType out,
                                    moe::WeightLayout layout);

/// Tiles of the tensor-core expert GEMMs: kGemmTileRows plan rows (four
/// warps of 16) by kGemmTileCols output columns, kGemmTileK deep per step.
inline constexpr int64_t kGemmTileRows = 64;
inline constexpr int64_t kGemmTileCols = 64;
inline constexpr int64_t kGemmTileK = 32;
inline constexpr int64_t kGemmThreads = 128;
/// Row tiles a group of consecutive blocks shares (see the grid order).
inline constexpr int64_t kGemmGroupRows = 16;
/// Column tiles the cost model assumes such a group has on the chip at once
/// (about four 128-thread blocks per SM of an H100: 16 x 32 blocks).
inline constexpr int64_t kGemmWaveCols = 32;

/// What an expert GEMM does with its f32 accumulators.
enum class ExpertGemmEpilogue {
  SwiGlu, ///< two weights: silu(acc0) * acc1, rounded to out's type
  Store,  ///< one weight: acc0 (rounded to out's type)
};

/// `name(a, offsets, w..., out)`: for the plan rows of each expert e (rows
/// offsets[e] .. offsets[e+1] of a: [M, K] f16/bf16), the product with each
/// weight w[e] ([E, K, N] for in_out, [E, N, K] for out_in) on tensor cores,
/// finished by `epilogue` into out [M, N]. With a `gather` type the kernel
/// is `name(a, ids, offsets, w..., out)` and plan row m is a[ids[m]] (a:
/// [T, K], the token rows of moe.dispatch). Grid: row tiles (at most
/// min(ceildiv(M, kGemmTileRows) + E, M)) times ceildiv(N, kGemmTileCols)
/// blocks of kGemmThreads, in groups of kGemmGroupRows row tiles by all
/// column tiles; blocks past the last row tile exit.
gpu::GPUFuncOp buildExpertGemmKernel(OpBuilder &builder, Location loc,
                                     StringRef name, MemRefType a,
                                     MemRefType gather, MemRefType offsets,
                                     ArrayRef<MemRefType> weights,
                                     MemRefType out, moe::WeightLayout layout,
                                     ExpertGemmEpilogue epilogue);

/// Whether every row of `memref` (identity or strided, unit innermost
/// stride) starts on a multiple of `bytes`: its base, offset and outer
/// strides (a run-time check: views and sizes vary), so that vector loads
/// of `bytes` along a row may claim that alignment.
Value rowsAligned(loops::LoopBuilder &b, Value memref, int64_t bytes);

/// The first index in [lo, hi) where `below` is false (binary search over a
/// range on which `below` is true then false); hi if none.
Value lowerBound(loops::LoopBuilder &b, Value lo, Value hi,
                 function_ref<Value(loops::LoopBuilder &, Value)> below);

} // namespace mlir::usmoe::gpu_kernels

#endif // USMOE_LIB_CONVERSION_MOETOGPU_KERNELS_H
