//===- SetSelection.cpp - Expert Choice and Unified selection -------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The best `count` elements of each selection set (an Expert Choice
// (sequence, expert) column, a Unified sequence's pairs): a running top-k
// for small counts, ranks for small sets, a radix select otherwise; and
// the column-wise Expert Choice and the Unified global top-N built on them.
// (Small-capacity Expert Choice runs row-wise: ExpertChoiceByRows.cpp.)
//
//===----------------------------------------------------------------------===//

#include "Conversion/Common/RoutingMath.h"
#include "RoutingKernels.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;
using arith::CmpIPredicate;

/// Visits the elements of one selection set in tie-break order (lower rank
/// first), threading accumulators: for Expert Choice the tokens of one
/// (sequence, expert) column, for Unified the flat (t, e) pairs of one
/// sequence.
using ElementBody =
    function_ref<SmallVector<Value>(LoopBuilder &, ValueRange, ValueRange)>;
using SetVisitor =
    function_ref<SmallVector<Value>(LoopBuilder &, ValueRange, ElementBody)>;

/// A selection set by token ranges, for passes that split it in chunks:
/// `range(b, first, last, init, body)` visits the elements of tokens
/// [first, last) in visiting order, `perToken` of them a token (E for a
/// Unified sequence, 1 for an Expert Choice column).
struct SetWalk {
  Value tokens;
  int64_t perToken;
  function_ref<SmallVector<Value>(LoopBuilder &, Value, Value, ValueRange,
                                  ElementBody)>
      range;
};

/// Copies of each radix pass's 256-bin histogram, filled by turns.
constexpr int64_t kRadixCopies = 4;

/// Histogram entries of one chunk of a set: kRadixCopies x 256 bins.
constexpr int64_t kChunkBins = 256 * kRadixCopies;

/// Chunks a Unified sequence's radix passes split into when it is the only
/// set (B = 1) and has at least kChunkedSetSize elements: one core would
/// otherwise select while the others wait.
constexpr int64_t kMaxChunks = 8;
constexpr int64_t kChunkedSetSize = int64_t(1) << 16;

/// Clears the histograms of the chunk whose entries start at `base`.
static void clearHistogram(LoopBuilder &b, Value hist, Value base) {
  forRange(
      b, base, addi(b, base, indexConst(b, kChunkBins)),
      [&](LoopBuilder &b, Value d) { store(b, i32Const(b, 0), hist, {d}); });
}

/// Counts `key`'s digit at `shift` in copy (`position` % kRadixCopies):
/// runs of equal digits (scores cluster in few top bytes) do not wait on
/// one bin's previous store. With `counted` (i1), adds it instead of 1: a
/// count without a branch, for keys only some of which count.
static void countDigit(LoopBuilder &b, Value hist, Value base, Value key,
                       int shift, Value position, Value counted = nullptr) {
  Value digit = andi(b, arith::ShRUIOp::create(b, key, i32Const(b, shift)),
                     i32Const(b, 255));
  Value copy = andi(b, position, i32Const(b, kRadixCopies - 1));
  Value d =
      addi(b, base,
           i32ToIndex(b, ori(b, digit,
                             arith::ShLIOp::create(b, copy, i32Const(b, 8)))));
  Value increment = counted ? arith::ExtUIOp::create(b, b.getI32Type(), counted)
                            : i32Const(b, 1);
  store(b, addi(b, load(b, hist, {d}), increment), hist, {d});
}

/// How many keys of the first `chunks` chunks' histograms have digit `d`.
static Value binCount(LoopBuilder &b, Value hist, Value chunks, Value d) {
  return forRangeAcc(
      b, indexConst(b, 0), chunks, {i32Const(b, 0)},
      [&](LoopBuilder &b, Value c, ValueRange acc) {
        Value sum = acc[0];
        Value base = addi(b, muli(b, c, indexConst(b, kChunkBins)), d);
        for (int64_t copy = 0; copy < kRadixCopies; ++copy)
          sum = addi(b, sum,
                     load(b, hist, {addi(b, base, indexConst(b, 256 * copy))}));
        return SmallVector<Value>{sum};
      })[0];
}

/// A radix pass's outcome: the digit whose bin holds the remaining-th best
/// key, how many keys of that bin are still to take, and the bin's size.
struct DigitChoice {
  Value digit, remaining, population;
};

/// Scans the first `chunks` chunks' histograms from digit 255 down for the
/// bin holding the `remaining`-th key.
static DigitChoice chooseDigit(LoopBuilder &b, Value hist, Value chunks,
                               Value remaining) {
  SmallVector<Value> scan =
      forRangeAcc(b, indexConst(b, 0), indexConst(b, 256),
                  {i32Const(b, 0), i1Const(b, false), i32Const(b, 0), remaining,
                   i32Const(b, 0)},
                  [&](LoopBuilder &b, Value i, ValueRange acc) {
                    Value cum = acc[0], found = acc[1];
                    Value d = subi(b, indexConst(b, 255), i);
                    Value inBin = binCount(b, hist, chunks, d);
                    Value newCum = addi(b, cum, inBin);
                    Value hit =
                        andi(b, notI1(b, found),
                             cmpi(b, CmpIPredicate::sge, newCum, remaining));
                    return SmallVector<Value>{
                        newCum, ori(b, found, hit),
                        select(b, hit, indexToI32(b, d), acc[2]),
                        select(b, hit, subi(b, remaining, cum), acc[3]),
                        select(b, hit, inBin, acc[4])};
                  });
  return {scan[2], scan[3], scan[4]};
}

/// Selects, in place, the `count` best elements of a set by a 4-pass radix
/// select over the 32-bit keys (8 bits a pass): O(set size), no sort.
/// Afterwards every element with key > K is selected, plus the first
/// `remaining` elements with key == K in visiting order (ties by index).
/// Two passes read the whole set: the first counts top bytes; the second
/// lists the keys in the chosen top-byte bin (key and position, in visiting
/// order), and the last three digits and the tie cut read only that list
/// (a bin holds 1-40% of router scores, the fewer the more experts). The
/// final pass then needs no running count: it takes the keys above K and
/// the ties up to the last one to take.
///
/// The passes over the whole set run on `chunks` (an index, 1 to
/// kMaxChunks) consecutive token ranges in parallel, each counting into
/// its own histograms and listing at its own offset: the list stays in
/// visiting order. Nothing in the passes branches on a key: a key is
/// listed by writing it at the list's end whether it belongs or not and
/// moving the end only if it does (a bin of 20-40% of the keys, at random,
/// defeats branch prediction), and a digit is counted by adding whether it
/// counts.
static void emitRadixSelect(LoopBuilder &b, Value gates, Value mask, Value hist,
                            Value count, Value chunks,
                            const ModelOptions &model, const SetWalk &walk) {
  Value zero = indexConst(b, 0), one = i32Const(b, 1);
  Value chunkBins = indexConst(b, kChunkBins);
  Value chunkTokens = arith::CeilDivUIOp::create(b, walk.tokens, chunks);
  Value parallelWork =
      select(b, cmpi(b, CmpIPredicate::ugt, chunks, indexConst(b, 1)),
             muli(b, walk.tokens, indexConst(b, walk.perToken)), zero);
  // body(chunk, first token, last token, position of the first element).
  auto forEachChunk =
      [&](function_ref<void(LoopBuilder &, Value, Value, Value, Value)> body) {
        forParallel2D(b, indexConst(b, 1), chunks, parallelWork,
                      [&](LoopBuilder &b, Value, Value c) {
                        Value first = arith::MinUIOp::create(
                            b, muli(b, c, chunkTokens), walk.tokens);
                        Value last = arith::MinUIOp::create(
                            b, addi(b, first, chunkTokens), walk.tokens);
                        Value position = indexToI32(
                            b, muli(b, first, indexConst(b, walk.perToken)));
                        body(b, c, first, last, position);
                      });
      };

  forEachChunk(
      [&](LoopBuilder &b, Value c, Value first, Value last, Value position) {
        Value base = muli(b, c, chunkBins);
        clearHistogram(b, hist, base);
        walk.range(b, first, last, {position},
                   [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
                     Value key = scoreKey(b, load(b, gates, idx));
                     countDigit(b, hist, base, key, 24, acc[0]);
                     return SmallVector<Value>{addi(b, acc[0], one)};
                   });
      });
  DigitChoice top = chooseDigit(b, hist, chunks, indexToI32(b, count));

  // Chunk c lists its keys of the chosen bin from starts[c]: the keys of
  // the chunks before it plus one spare entry each, which takes the last
  // unconditional write past a chunk's keys. Spare entries hold a key of
  // another top byte (written or preset), which no later pass matches.
  auto listType = MemRefType::get({ShapedType::kDynamic}, b.getI32Type());
  Value starts = alloc(b, listType, {chunks});
  Value listed = i32ToIndex(b, top.population);
  Value listSize = addi(b, listed, chunks);
  Value listKeys = alloc(b, listType, {listSize});
  Value listPositions = alloc(b, listType, {listSize});
  Value topByte = i32Const(b, int64_t(0xFF000000));
  Value otherTopByte = arith::XOrIOp::create(
      b, arith::ShLIOp::create(b, top.digit, i32Const(b, 24)), topByte);
  forRangeAcc(b, zero, chunks, {i32Const(b, 0)},
              [&](LoopBuilder &b, Value c, ValueRange acc) {
                store(b, acc[0], starts, {c});
                Value inBin = binCount(
                    b, hist, indexConst(b, 1),
                    addi(b, muli(b, c, chunkBins), i32ToIndex(b, top.digit)));
                Value spare = addi(b, acc[0], inBin);
                store(b, otherTopByte, listKeys, {i32ToIndex(b, spare)});
                return SmallVector<Value>{addi(b, spare, one)};
              });
  forEachChunk([&](LoopBuilder &b, Value c, Value first, Value last,
                   Value position) {
    walk.range(
        b, first, last, {position, i32ToIndex(b, load(b, starts, {c}))},
        [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
          Value key = scoreKey(b, load(b, gates, idx));
          Value inBin =
              cmpi(b, CmpIPredicate::eq,
                   arith::ShRUIOp::create(b, key, i32Const(b, 24)), top.digit);
          store(b, key, listKeys, {acc[1]});
          store(b, acc[0], listPositions, {acc[1]});
          Value next =
              addi(b, acc[1],
                   arith::IndexCastUIOp::create(b, b.getIndexType(), inBin));
          return SmallVector<Value>{addi(b, acc[0], one), next};
        });
  });
  Value prefix = arith::ShLIOp::create(b, top.digit, i32Const(b, 24));
  Value prefixMask = topByte;
  Value remaining = top.remaining;
  for (int shift = 16; shift >= 0; shift -= 8) {
    clearHistogram(b, hist, zero);
    forRange(b, zero, listSize, [&](LoopBuilder &b, Value i) {
      Value key = load(b, listKeys, {i});
      Value match =
          cmpi(b, CmpIPredicate::eq, andi(b, key, prefixMask), prefix);
      countDigit(b, hist, zero, key, shift, indexToI32(b, i), match);
    });
    DigitChoice next = chooseDigit(b, hist, indexConst(b, 1), remaining);
    prefix = ori(b, prefix,
                 arith::ShLIOp::create(b, next.digit, i32Const(b, shift)));
    prefixMask = ori(b, prefixMask, i32Const(b, int64_t(0xFF) << shift));
    remaining = next.remaining;
  }
  Value threshold = prefix;
  // The position of the remaining-th key equal to K (-1: take none).
  Value lastTie = forRangeAcc(
      b, zero, listSize, {i32Const(b, 0), i32Const(b, -1)},
      [&](LoopBuilder &b, Value i, ValueRange acc) {
        Value tie =
            cmpi(b, CmpIPredicate::eq, load(b, listKeys, {i}), threshold);
        Value seen =
            addi(b, acc[0], arith::ExtUIOp::create(b, b.getI32Type(), tie));
        Value last = andi(b, tie, cmpi(b, CmpIPredicate::eq, seen, remaining));
        return SmallVector<Value>{
            seen, select(b, last, load(b, listPositions, {i}), acc[1])};
      })[1];
  forEachChunk(
      [&](LoopBuilder &b, Value, Value first, Value last, Value position) {
        walk.range(b, first, last, {position},
                   [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
                     Value gate = load(b, gates, idx);
                     Value key = scoreKey(b, gate);
                     Value on =
                         rankedAtOrBefore(b, key, acc[0], threshold, lastTie);
                     storeSelection(b, gates, mask, idx, gate, on, model);
                     return SmallVector<Value>{addi(b, acc[0], one)};
                   });
      });
}

/// Selects, in place, the `count` best elements of a small set by ranks:
/// element i is taken when fewer than `count` elements rank before it (a
/// greater key, or an equal key earlier in visiting order), the radix
/// select's rule. O(set size^2) but no histogram: four 256-bin passes cost
/// more than that below kSmallSetSelect elements (Expert Choice on short
/// sequences, where every (sequence, expert) column is such a set).
static void emitRankSelect(LoopBuilder &b, Value gates, Value mask, Value ranks,
                           Value count, const ModelOptions &model,
                           SetVisitor visit) {
  Value limit = indexToI32(b, count), one = i32Const(b, 1);
  auto extend = [&](LoopBuilder &b, Value flag) {
    return arith::ExtUIOp::create(b, b.getI32Type(), flag);
  };
  // Ranks first (gates still hold scores), then one pass that writes.
  visit(b, {i32Const(b, 0)},
        [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
          Value key = scoreKey(b, load(b, gates, idx));
          Value position = acc[0];
          SmallVector<Value> before = visit(
              b, {i32Const(b, 0), i32Const(b, 0)},
              [&](LoopBuilder &b, ValueRange other, ValueRange inner) {
                Value otherKey = scoreKey(b, load(b, gates, other));
                Value ahead =
                    ori(b, cmpi(b, CmpIPredicate::ugt, otherKey, key),
                        andi(b, cmpi(b, CmpIPredicate::eq, otherKey, key),
                             cmpi(b, CmpIPredicate::slt, inner[0], position)));
                return SmallVector<Value>{addi(b, inner[0], one),
                                          addi(b, inner[1], extend(b, ahead))};
              });
          store(b, before[1], ranks, {i32ToIndex(b, position)});
          return SmallVector<Value>{addi(b, position, one)};
        });
  visit(b, {i32Const(b, 0)},
        [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
          Value gate = load(b, gates, idx);
          Value on = cmpi(b, CmpIPredicate::slt,
                          load(b, ranks, {i32ToIndex(b, acc[0])}), limit);
          storeSelection(b, gates, mask, idx, gate, on, model);
          return SmallVector<Value>{addi(b, acc[0], one)};
        });
}

/// Selects, in place, the `count` (at most kInsertionSelect) best elements
/// of a set: one pass keeps the kInsertionSelect best (key, position in
/// visiting order) sorted, the count-th of them is the threshold, and a
/// second pass takes every element ranked at or before it (a greater key,
/// or the same key no later in visiting order): the radix select's rule in
/// two passes, whatever the set's size.
static void emitInsertionSelect(LoopBuilder &b, Value gates, Value mask,
                                Value count, int64_t k,
                                const ModelOptions &model, SetVisitor visit) {
  Value one = i32Const(b, 1);
  SmallVector<Value> init = {i32Const(b, 0)};
  init.append(emptyBestK(b, k));
  SmallVector<Value> best =
      visit(b, init, [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
        Value key = scoreKey(b, load(b, gates, idx));
        SmallVector<Value> next = {addi(b, acc[0], one)};
        next.append(insertIntoBestK(b, acc.drop_front(), key, acc[0],
                                    i1Const(b, true)));
        return next;
      });
  // The threshold: entry count - 1 of the sorted best (none for count 0).
  Value last = subi(b, indexToI32(b, count), one);
  Value thresholdKey = i32Const(b, 0), thresholdAt = i32Const(b, -1);
  for (int64_t j = 0; j < k; ++j) {
    Value here = cmpi(b, CmpIPredicate::eq, last, i32Const(b, j));
    thresholdKey = select(b, here, best[1 + j], thresholdKey);
    thresholdAt = select(b, here, best[1 + k + j], thresholdAt);
  }
  visit(b, {i32Const(b, 0)},
        [&](LoopBuilder &b, ValueRange idx, ValueRange acc) {
          Value gate = load(b, gates, idx);
          Value key = scoreKey(b, gate);
          Value on =
              andi(b, cmpi(b, CmpIPredicate::sge, thresholdAt, i32Const(b, 0)),
                   rankedAtOrBefore(b, key, acc[0], thresholdKey, thresholdAt));
          storeSelection(b, gates, mask, idx, gate, on, model);
          return SmallVector<Value>{addi(b, acc[0], one)};
        });
}

/// The `count` best of a set: by insertion for a small count, by ranks for
/// a small set, by the radix select otherwise (the same selection every
/// way; the radix passes over `chunks` token ranges).
static void emitSetSelect(LoopBuilder &b, Value gates, Value mask, Value hist,
                          Value ranks, Value count, Value chunks,
                          const ModelOptions &model, const SetWalk &walk) {
  Value size = muli(b, walk.tokens, indexConst(b, walk.perToken));
  auto visit = [&](LoopBuilder &b, ValueRange init, ElementBody body) {
    return walk.range(b, indexConst(b, 0), walk.tokens, init, body);
  };
  // A fixed count (moe.unified<n = N>) takes its way statically.
  std::optional<int64_t> fixed = getConstantIntValue(count);
  // A running top-k as small as the count allows (Expert Choice of short
  // sequences often has C = 1): each slot more costs every insertion.
  std::function<void(LoopBuilder &, int64_t)> byInsertion = [&](LoopBuilder &b,
                                                                int64_t slots) {
    if (slots == kInsertionSelect || (fixed && *fixed <= slots))
      return emitInsertionSelect(b, gates, mask, count, slots, model, visit);
    if (fixed)
      return byInsertion(b, 2 * slots);
    ifThenElse(
        b, cmpi(b, CmpIPredicate::ule, count, indexConst(b, slots)),
        [&](LoopBuilder &b) {
          emitInsertionSelect(b, gates, mask, count, slots, model, visit);
        },
        [&](LoopBuilder &b) { byInsertion(b, 2 * slots); });
  };
  auto bySize = [&](LoopBuilder &b) {
    ifThenElse(
        b, cmpi(b, CmpIPredicate::ule, size, indexConst(b, kSmallSetSelect)),
        [&](LoopBuilder &b) {
          emitRankSelect(b, gates, mask, ranks, count, model, visit);
        },
        [&](LoopBuilder &b) {
          emitRadixSelect(b, gates, mask, hist, count, chunks, model, walk);
        });
  };
  if (fixed)
    return *fixed <= kInsertionSelect ? byInsertion(b, 1) : bySize(b);
  ifThenElse(
      b, cmpi(b, CmpIPredicate::ule, count, indexConst(b, kInsertionSelect)),
      [&](LoopBuilder &b) { byInsertion(b, 1); }, bySize);
}

/// Per-set scratch for `sets` selections running in parallel: histograms
/// [sets, kChunkBins * chunks] and, for selects that may rank a small set,
/// ranks [sets, kSmallSetSelect] (i32; null otherwise).
struct SelectScratch {
  Value hist, ranks;

  static SelectScratch alloc(LoopBuilder &b, Value sets, int64_t chunks,
                             bool ranked) {
    auto type = [&](int64_t width) {
      return MemRefType::get({ShapedType::kDynamic, width}, b.getI32Type());
    };
    return {loops::alloc(b, type(kChunkBins * chunks), {sets}),
            ranked ? loops::alloc(b, type(kSmallSetSelect), {sets}) : Value()};
  }

  /// Row `set` of `buffer` as a 1-D view.
  static Value row(LoopBuilder &b, Value buffer, Value set) {
    int64_t width = cast<MemRefType>(buffer.getType()).getDimSize(1);
    auto viewType = MemRefType::get(
        {width}, b.getI32Type(),
        StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic, {1}));
    SmallVector<OpFoldResult> offsets = {set, b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1),
                                       b.getIndexAttr(width)};
    SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
    return memref::SubViewOp::create(b, viewType, buffer, offsets, sizes,
                                     strides);
  }
};

/// Sequences with at least this many scores (T * E) select their Expert
/// Choice columns from a transposed copy: a column read in place touches a
/// cache line per token (stride E), once per radix pass, and such a
/// sequence no longer fits in the L2 cache that would keep those lines.
constexpr int64_t kTransposedColumnsWork = int64_t(1) << 18;

/// Rows of [B, T, E] per block of the transposes: the block's lines of the
/// [B, E, T] side stay in cache while its rows are walked.
constexpr int64_t kTransposeRows = 64;

/// Elements (64 bytes of f32) added to each row of the transposed copies.
constexpr int64_t kTransposePadding = 16;

/// for each (b, t, e) of `like` [B, T, E], in blocks of rows in parallel:
/// body(b, t, e).
static void forEachPairByRowBlocks(
    LoopBuilder &b, Value like,
    function_ref<void(LoopBuilder &, Value, Value, Value)> body) {
  Value zero = indexConst(b, 0), tokens = dim(b, like, 1);
  Value sequences = dim(b, like, 0), experts = indexConst(b, numExperts(like));
  Value rows = indexConst(b, kTransposeRows);
  Value blocks = arith::CeilDivUIOp::create(b, tokens, rows);
  forParallel2D(
      b, sequences, blocks, muli(b, muli(b, sequences, tokens), experts),
      [&](LoopBuilder &b, Value bi, Value block) {
        Value first = muli(b, block, rows);
        Value last = arith::MinUIOp::create(b, addi(b, first, rows), tokens);
        forRange(b, first, last, [&](LoopBuilder &b, Value ti) {
          forRange(b, zero, experts,
                   [&](LoopBuilder &b, Value ei) { body(b, bi, ti, ei); });
        });
      });
}

static_assert(kRowWiseCapacity >= kInsertionSelect &&
                  kRowWiseCapacity >= kSmallSetSelect,
              "columns take the radix select only");

/// Expert Choice column by column for capacities above kRowWiseCapacity:
/// each (sequence, expert) column is a set of T scores for the radix select
/// (neither a running top-k nor ranks could serve: the count exceeds both,
/// and the set holds at least the count).
static void emitExpertChoiceByColumns(LoopBuilder &b, Value gates, Value mask,
                                      Value capacity,
                                      const ModelOptions &model) {
  Value zero = indexConst(b, 0);
  Value tokens = dim(b, gates, 1), sequences = dim(b, gates, 0);
  int64_t numExpertsStatic = numExperts(gates);
  Value experts = indexConst(b, numExpertsStatic);
  // Experts are the parallel loop, the sequences run inside it: one region
  // for the whole batch (B short sequences are as parallel as one long
  // one), and an expert's sets reuse its scratch row one after the other.
  // Columns hold more than kRowWiseCapacity picks: the radix select alone.
  SelectScratch scratch =
      SelectScratch::alloc(b, experts, /*chunks=*/1, /*ranked=*/false);
  auto selectColumns = [&](LoopBuilder &b, Value scores, Value selected,
                           bool transposed) {
    forParallel2D(b, indexConst(b, 1), experts,
                  muli(b, muli(b, sequences, experts), tokens),
                  [&](LoopBuilder &b, Value, Value ei) {
                    Value hist = SelectScratch::row(b, scratch.hist, ei);
                    forRange(b, zero, sequences, [&](LoopBuilder &b, Value bi) {
                      auto column = [&](LoopBuilder &b, Value first, Value last,
                                        ValueRange init, ElementBody body) {
                        return forRangeAcc(
                            b, first, last, init,
                            [&](LoopBuilder &b, Value t, ValueRange acc) {
                              return body(b,
                                          transposed
                                              ? SmallVector<Value>{bi, ei, t}
                                              : SmallVector<Value>{bi, t, ei},
                                          acc);
                            });
                      };
                      emitRadixSelect(b, scores, selected, hist, capacity,
                                      indexConst(b, 1), model,
                                      SetWalk{tokens, /*perToken=*/1, column});
                    });
                  });
  };
  Value long_ = cmpi(b, CmpIPredicate::uge, muli(b, tokens, experts),
                     indexConst(b, kTransposedColumnsWork));
  ifThenElse(
      b, long_,
      [&](LoopBuilder &b) {
        // Columns as rows of [B, E, T] copies; selected there, copied back.
        auto columnsType = [&](Type element) {
          return MemRefType::get(
              {ShapedType::kDynamic, numExpertsStatic, ShapedType::kDynamic},
              element);
        };
        // Rows padded by a cache line: with T a power of two, the
        // transposes' E accesses of one token would map to one L1 set.
        Value padded = addi(b, tokens, indexConst(b, kTransposePadding));
        Value scores =
            alloc(b, columnsType(b.getF32Type()), {sequences, padded});
        Value selected =
            alloc(b, columnsType(b.getI1Type()), {sequences, padded});
        forEachPairByRowBlocks(
            b, gates, [&](LoopBuilder &b, Value bi, Value ti, Value ei) {
              store(b, load(b, gates, {bi, ti, ei}), scores, {bi, ei, ti});
            });
        selectColumns(b, scores, selected, /*transposed=*/true);
        forEachPairByRowBlocks(
            b, gates, [&](LoopBuilder &b, Value bi, Value ti, Value ei) {
              store(b, load(b, scores, {bi, ei, ti}), gates, {bi, ti, ei});
              store(b, load(b, selected, {bi, ei, ti}), mask, {bi, ti, ei});
            });
      },
      [&](LoopBuilder &b) {
        selectColumns(b, gates, mask, /*transposed=*/false);
      });
}

void loops::emitExpertChoice(LoopBuilder &b, Value gates, Value mask,
                             Value capacity, const ModelOptions &model) {
  // A fixed capacity (moe.expert<capacity = C>) takes one way, statically.
  if (std::optional<int64_t> fixed = getConstantIntValue(capacity)) {
    if (*fixed <= kRowWiseCapacity)
      return emitExpertChoiceByRows(b, gates, mask, capacity, model);
    return emitExpertChoiceByColumns(b, gates, mask, capacity, model);
  }
  ifThenElse(
      b, cmpi(b, CmpIPredicate::ule, capacity, indexConst(b, kRowWiseCapacity)),
      [&](LoopBuilder &b) {
        emitExpertChoiceByRows(b, gates, mask, capacity, model);
      },
      [&](LoopBuilder &b) {
        emitExpertChoiceByColumns(b, gates, mask, capacity, model);
      });
}

void loops::emitGlobalTopN(LoopBuilder &b, Value gates, Value mask,
                           Value budget, const ModelOptions &model) {
  Value zero = indexConst(b, 0), one = indexConst(b, 1);
  Value tokens = dim(b, gates, 1), sequences = dim(b, gates, 0);
  int64_t numExpertsStatic = numExperts(gates);
  Value experts = indexConst(b, numExpertsStatic);
  // Sequences in parallel, each with its own scratch row; one sequence
  // (B = 1) of at least kChunkedSetSize pairs runs its radix passes on
  // kMaxChunks token ranges in parallel instead.
  Value size = muli(b, tokens, experts);
  Value alone = cmpi(b, CmpIPredicate::eq, sequences, one);
  Value chunks = select(
      b,
      andi(b, alone,
           cmpi(b, CmpIPredicate::uge, size, indexConst(b, kChunkedSetSize))),
      indexConst(b, kMaxChunks), one);
  SelectScratch scratch =
      SelectScratch::alloc(b, sequences, kMaxChunks, /*ranked=*/true);
  forParallel2D(
      b, one, sequences, select(b, alone, zero, muli(b, sequences, size)),
      [&](LoopBuilder &b, Value, Value bi) {
        auto pairs = [&](LoopBuilder &b, Value first, Value last,
                         ValueRange init, ElementBody body) {
          return forRangeAcc(
              b, first, last, init,
              [&](LoopBuilder &b, Value t, ValueRange acc) {
                return forRangeAcc(
                    b, zero, experts, acc,
                    [&](LoopBuilder &b, Value e, ValueRange acc) {
                      return body(b, {bi, t, e}, acc);
                    });
              });
        };
        emitSetSelect(b, gates, mask, SelectScratch::row(b, scratch.hist, bi),
                      SelectScratch::row(b, scratch.ranks, bi), budget, chunks,
                      model, SetWalk{tokens, numExpertsStatic, pairs});
      });
}
