//===- MoeToGPU.cpp - the convert-moe-to-gpu pass -------------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "usmoe/Conversion/MoeToGPU/MoeToGPU.h"
#include "Conversion/Common/LoopBuilder.h"
#include "KernelTable.h"
#include "Kernels.h"
#include "WarpReduce.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "usmoe/Dialect/Moe/IR/MoeOps.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"

namespace mlir::usmoe {
#define GEN_PASS_DEF_CONVERTMOETOGPUPASS
#include "usmoe/Conversion/Passes.h.inc"
} // namespace mlir::usmoe

using namespace mlir;
using namespace mlir::usmoe;
using namespace mlir::usmoe::loops;

static MemRefType memrefOf(Type tensorType) {
  auto t = cast<RankedTensorType>(tensorType);
  return MemRefType::get(t.getShape(), t.getElementType());
}

/// The cost table's expressions of a plan's PlanCountLayout: its tiles
/// (the grid of its tile kernels, at least 1), chunks, and words of tile
/// and chunk counts (the done counter aside).
static std::string planTilesExpr() {
  return llvm::formatv("max(ceildiv(B * T, {0}), 1)",
                       gpu_kernels::kPlanTileRows);
}
static std::string planChunksExpr() {
  return llvm::formatv("ceildiv({0}, {1})", planTilesExpr(),
                       gpu_kernels::kPlanChunkTiles);
}
static std::string planCountWordsExpr() {
  return "(" + planTilesExpr() + " + " + planChunksExpr() + ") * E";
}

namespace {

struct ConvertMoeToGPUPass
    : usmoe::impl::ConvertMoeToGPUPassBase<ConvertMoeToGPUPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (selectChunk < 1 || selectSpread < 1) {
      module.emitError() << "convert-moe-to-gpu: select-chunk and "
                            "select-spread must be at least 1, got "
                         << selectChunk << " and " << selectSpread;
      return signalPassFailure();
    }
    SmallVector<Operation *> lowerable;
    WalkResult unsupported = module.walk([&](Operation *op) {
      if (isa<moe::RouteOp, moe::SelectGivenOp, moe::PlanOp, moe::TopKListOp,
              moe::DispatchOp, moe::CombineOp, moe::ExpertFfnOp>(op)) {
        lowerable.push_back(op);
        return WalkResult::advance();
      }
      if (isa_and_nonnull<moe::MoeDialect>(op->getDialect())) {
        op->emitOpError("is not supported on the GPU path yet (usmoe-to-cpu "
                        "supports every moe op)");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (unsupported.wasInterrupted())
      return signalPassFailure();
    if (lowerable.empty())
      return;

    gpu::GPUModuleOp kernels = getOrCreateKernelModule(module);
    unsigned counter = 0;
    // Plans of a route's selection: M follows from the router's budget, so
    // the host sizes the plan without reading the device's count back.
    // The route's first kernel clears their count workspace.
    DenseMap<Operation *, routing::RouterOptions> budgetedPlans;
    for (Operation *op : lowerable)
      if (auto plan = dyn_cast<moe::PlanOp>(op))
        if (moe::RouteOp route = plan.getRoute())
          if (!route.getSeqlens()) {
            budgetedPlans[plan] = route.getRouterOptions();
            plansOfRoute[route].push_back(plan);
          }
    // Top-k lists of a Token Choice route (no bias: its picks come in gate
    // order; k <= 32: a pick per lane) are written by the route's kernel.
    for (Operation *op : lowerable)
      if (auto list = dyn_cast<moe::TopKListOp>(op))
        if (moe::RouteOp route = list.getPicksOfTokenRoute())
          if (!route.getBias() &&
              int64_t(list.getK()) <= gpu_kernels::kMaxFusedListK &&
              !fusedLists.count(route))
            fusedLists[route] = list;
    // The rows of an f16/bf16 expert_ffn's only dispatch are gathered by
    // its first GEMM: no dispatch copy.
    for (Operation *op : lowerable)
      if (auto ffn = dyn_cast<moe::ExpertFfnOp>(op))
        if (auto dispatch = ffn.getInput().getDefiningOp<moe::DispatchOp>())
          if (usesTensorCores(ffn) && dispatch->hasOneUse())
            fusedAway.insert(dispatch);
    for (Operation *op : lowerable) {
      if (fusedAway.contains(op))
        continue; // done by a consumer's kernel (erased with it)
      LogicalResult lowered =
          TypeSwitch<Operation *, LogicalResult>(op)
              .Case([&](moe::RouteOp route) {
                return route.getMode() == routing::Mode::Token
                           ? lowerTokenChoice(route, kernels, counter++)
                           : lowerSelectingRoute(route, kernels, counter++);
              })
              .Case([&](moe::SelectGivenOp given) {
                return lowerSelectGiven(given, kernels, counter++);
              })
              .Case([&](moe::PlanOp plan) {
                auto source = budgetedPlans.find(plan);
                return lowerPlan(plan, kernels, counter++,
                                 source == budgetedPlans.end()
                                     ? std::nullopt
                                     : std::optional(source->second));
              })
              .Case([&](moe::TopKListOp list) {
                return lowerTopKList(list, kernels, counter++);
              })
              .Case([&](moe::DispatchOp dispatch) {
                return lowerDispatch(dispatch, kernels, counter++);
              })
              .Case([&](moe::CombineOp combine) {
                return lowerCombine(combine, kernels, counter++);
              })
              .Case([&](moe::ExpertFfnOp ffn) {
                return lowerExpertFfn(ffn, kernels, counter++);
              });
      if (failed(lowered))
        return signalPassFailure();
    }
    if (failed(verifyKernelTable(module, kKernelModule)))
      return signalPassFailure();
  }

  gpu::GPUModuleOp getOrCreateKernelModule(ModuleOp module) {
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(module.getContext()));
    if (auto existing = module.lookupSymbol<gpu::GPUModuleOp>(kKernelModule))
      return existing;
    OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
    return gpu::GPUModuleOp::create(b, module.getLoc(), kKernelModule);
  }

  /// Replaces every result of `op` by the tensor of the matching buffer, in
  /// order, and erases `op`.
  static void replaceWithBuffers(LoopBuilder &b, Operation *op,
                                 ArrayRef<Value> buffers) {
    for (auto [result, buffer] : llvm::zip_equal(op->getResults(), buffers))
      result.replaceAllUsesWith(toTensor(b, buffer, result.getType()));
    op->erase();
  }

  /// The warp-per-row kernels hold a row in registers: E is bounded.
  static LogicalResult checkExpertLimit(Operation *op, int64_t experts,
                                        StringRef what) {
    if (experts <= gpu_kernels::kMaxExperts)
      return success();
    return op->emitOpError()
           << what << " on the GPU supports up to " << gpu_kernels::kMaxExperts
           << " experts, got " << experts;
  }

  /// gpu.launch_func of `kernel` on a 1-D grid of `blocks`, skipped when the
  /// grid is empty (an empty grid is a launch error in CUDA).
  static void launch(LoopBuilder &b, gpu::GPUFuncOp kernel, Value blocks,
                     ValueRange args) {
    int32_t threads = kernel.getKnownBlockSizeAttr().asArrayRef()[0];
    Value one = indexConst(b, 1);
    Value threadCount = indexConst(b, threads);
    ifThen(b, cmpi(b, arith::CmpIPredicate::ugt, blocks, indexConst(b, 0)),
           [&](LoopBuilder &b) {
             gpu::LaunchFuncOp::create(
                 b, kernel, gpu::KernelDim3{blocks, one, one},
                 gpu::KernelDim3{threadCount, one, one},
                 /*dynamicSharedMemorySize=*/Value(), args);
           });
  }

  /// Budgeted plans of each route, and the buffers the route lowering
  /// allocated for each: the counts (and done counter) its first kernel
  /// zeroes, the tiles' starts, the plan's offsets.
  struct PlanWorkspace {
    Value counts, starts, offsets;
  };
  DenseMap<Operation *, SmallVector<Operation *>> plansOfRoute;
  DenseMap<Operation *, PlanWorkspace> planWorkspaces;
  /// Plans whose counts the route's select kernels take (so the plan only
  /// fills).
  DenseSet<Operation *> countedBySelection;

  /// The workspaces of `route`'s budgeted plans; returns their counts (for
  /// the route's first kernel to zero).
  SmallVector<Value> allocPlanWorkspaces(LoopBuilder &b, Operation *route,
                                         Value rows, int64_t experts) {
    SmallVector<Value> counts;
    if (plansOfRoute.lookup(route).empty())
      return counts;
    gpu_kernels::PlanCountLayout layout(
        b,
        arith::CeilDivUIOp::create(b, rows,
                                   indexConst(b, gpu_kernels::kPlanTileRows)),
        experts);
    for (Operation *plan : plansOfRoute.lookup(route)) {
      PlanWorkspace ws;
      ws.counts = alloc(b, gpu_kernels::wordBufferType(b.getContext()),
                        {layout.countWords(b)});
      ws.starts = alloc(b, gpu_kernels::wordBufferType(b.getContext()),
                        {layout.startWords(b)});
      ws.offsets = alloc(
          b, memrefOf(cast<moe::PlanOp>(plan).getExpertOffsets().getType()));
      planWorkspaces[plan] = ws;
      counts.push_back(ws.counts);
    }
    return counts;
  }
  /// Bytes the route's first kernel zeroes for its plans (cost table).
  std::string planCountBytes(Operation *route) {
    size_t plans = plansOfRoute.lookup(route).size();
    if (plans == 0)
      return "";
    return llvm::formatv(" + {0} * ({1} + 1) * 4", plans, planCountWordsExpr())
        .str();
  }

  /// Token Choice routes whose kernel writes a topk_list's lists, and the
  /// list ops so replaced.
  DenseMap<Operation *, moe::TopKListOp> fusedLists;
  DenseSet<Operation *> fusedAway;

  /// A run-time check (cf.assert) that `count` fits the kernels' i32
  /// counters and ids.
  static void checkCountFitsI32(LoopBuilder &b, Value count,
                                StringRef message) {
    cf::AssertOp::create(
        b,
        cmpi(b, arith::CmpIPredicate::ule, count,
             indexConst(b, std::numeric_limits<int32_t>::max())),
        message);
  }

  /// Whether the select of dense [B, T, E] gates spreads over every SM
  /// (few large sets), and the multi-block select's workspace (one word
  /// when not), to be zeroed by the route's score kernel.
  struct SpreadSelect {
    Value chunks, spread, workspace, candidates;
  };
  SpreadSelect allocSelectWorkspace(LoopBuilder &b, Value sets, Value setSize) {
    using Words = gpu_kernels::SelectWorkspace;
    Value chunks =
        arith::CeilDivUIOp::create(b, setSize, indexConst(b, selectChunk));
    Value spread = andi(
        b,
        andi(b, cmpi(b, arith::CmpIPredicate::ugt, chunks, indexConst(b, 1)),
             cmpi(b, arith::CmpIPredicate::ugt, setSize,
                  indexConst(b, selectSpread))),
        cmpi(b, arith::CmpIPredicate::ult, sets,
             indexConst(b, kSelectSpreadMaxSets)));
    // Allocated unconditionally (host buffers are freed at the function's
    // end), one word when unused.
    Value words = select(b, spread, muli(b, sets, indexConst(b, Words::kWords)),
                         indexConst(b, 1));
    Value candidateWords = select(
        b, spread, muli(b, sets, gpu_kernels::candidateCapacity(b, setSize)),
        indexConst(b, 1));
    MemRefType wordsType = gpu_kernels::wordBufferType(b.getContext());
    return {chunks, spread, alloc(b, wordsType, {words}),
            alloc(b, wordsType, {candidateWords})};
  }

  /// The select launches: a block per set (all four digits in one launch),
  /// or, for few large sets, every SM: a histogram launch per digit, mark.
  /// `planArgs`: the counted plan's workspace (see PlanCountTypes).
  /// `sourceArgs`: (logits, stats) when the multi-block kernels recompute
  /// the scores (see RecomputedScores), else empty.
  void launchSelect(LoopBuilder &b, gpu::GPUFuncOp single,
                    const gpu_kernels::MultiBlockSelectKernels &multi,
                    const SpreadSelect &spread, Value sets, Value setSize,
                    Value gates, Value mask, Value budget, ValueRange planArgs,
                    ValueRange sourceArgs) {
    ifThenElse(
        b, spread.spread,
        [&](LoopBuilder &b) {
          Value grid = muli(b, sets, spread.chunks);
          for (int64_t pass = 0; pass < gpu_kernels::kRadixPasses; ++pass) {
            SmallVector<Value> args(sourceArgs);
            if (sourceArgs.empty())
              args.push_back(gates);
            args.append({spread.workspace, spread.candidates, budget,
                         indexConst(b, pass)});
            launch(b, multi.histogram, grid, args);
          }
          SmallVector<Value> markArgs(sourceArgs);
          markArgs.append({gates, mask, spread.workspace});
          llvm::append_range(markArgs, planArgs);
          launch(b, multi.mark, grid, markArgs);
        },
        [&](LoopBuilder &b) {
          // Empty sets (T = 0) select nothing: no launch.
          Value nonEmpty =
              cmpi(b, arith::CmpIPredicate::ugt, setSize, indexConst(b, 0));
          SmallVector<Value> args(sourceArgs);
          args.append({gates, mask, budget});
          llvm::append_range(args, planArgs);
          launch(b, single, select(b, nonEmpty, sets, indexConst(b, 0)), args);
        });
  }

  /// route expert / unified -> scores into the gate buffer (row kernel, plus
  /// the column kernel for softmax_tokens), then one select block per set.
  LogicalResult lowerSelectingRoute(moe::RouteOp op, gpu::GPUModuleOp kernels,
                                    unsigned index) {
    auto logitsType = memrefOf(op.getLogits().getType());
    int64_t experts = logitsType.getDimSize(2);
    if (failed(checkExpertLimit(op, experts, "routing")))
      return failure();
    auto gatesType = memrefOf(op.getGates().getType());
    auto maskType = memrefOf(op.getMask().getType());
    routing::RouterOptions options = op.getRouterOptions();
    bool unified = options.mode == routing::Mode::Unified;
    bool columnMix =
        unified && options.expertScore == routing::ExpertScore::SoftmaxTokens;
    std::optional<double> rowAlpha;
    if (unified && !columnMix)
      rowAlpha = *options.alpha;
    // A unified sequence of one token selects its top N by U: Token
    // Choice's selection (the spec), N = the budget at T = 1.
    std::optional<int64_t> decodeBudget;
    if (rowAlpha && !op.getSeqlens()) {
      int64_t n = routing::setBudget(options, /*numTokens=*/1, experts);
      if (n >= 1 && n <= experts)
        decodeBudget = n;
    }
    loops::ModelOptions model{options.softcap, options.routedScalingFactor};

    OpBuilder kb = OpBuilder::atBlockEnd(&kernels.getBodyRegion().front());
    std::string base =
        std::string(unified ? "route_unified_" : "route_expert_") +
        std::to_string(index);
    // The score kernel zeroes the plans' counts and the multi-block
    // select's workspace (packed sequences select on one block per set).
    SmallVector<MemRefType> zeroedTypes(
        plansOfRoute.lookup(op).size() + (op.getSeqlens() ? 0 : 1),
        gpu_kernels::wordBufferType(op.getContext()));
    // The select kernels recompute the row scores from the logits and the
    // rows' softmax statistics, which is all the score kernel writes (not
    // after a softmax_tokens mix, whose column kernel needs the scores).
    std::optional<gpu_kernels::RecomputedScores> recompute;
    if (!columnMix)
      recompute = gpu_kernels::RecomputedScores{logitsType, rowAlpha};
    gpu::GPUFuncOp scoreKernel = gpu_kernels::buildRowScoreKernel(
        kb, op.getLoc(), base + "_scores", logitsType, gatesType, rowAlpha,
        model, zeroedTypes, /*statsOnly=*/recompute.has_value());
    // Packed sequences: the column and select kernels read the offsets and
    // compute each sequence's budget from its T_i themselves.
    MemRefType seqlensType =
        op.getSeqlens() ? memrefOf(op.getSeqlens().getType()) : MemRefType();
    gpu::GPUFuncOp mixKernel;
    if (columnMix)
      mixKernel = gpu_kernels::buildTokenSoftmaxMixKernel(
          kb, op.getLoc(), base + "_mix", logitsType, gatesType, *options.alpha,
          model, seqlensType);
    // The first budgeted plan is counted by the select kernels.
    Operation *countedPlan = nullptr;
    std::optional<gpu_kernels::PlanCountTypes> planCount;
    if (!seqlensType && !plansOfRoute.lookup(op).empty()) {
      countedPlan = plansOfRoute.lookup(op).front();
      countedBySelection.insert(countedPlan);
      planCount = gpu_kernels::PlanCountTypes{
          gpu_kernels::wordBufferType(op.getContext()),
          gpu_kernels::wordBufferType(op.getContext()),
          memrefOf(
              cast<moe::PlanOp>(countedPlan).getExpertOffsets().getType())};
    }
    gpu::GPUFuncOp selectKernel = gpu_kernels::buildSelectKernel(
        kb, op.getLoc(), base + "_select", gatesType, maskType,
        unified ? gpu_kernels::SelectionSet::Sequence
                : gpu_kernels::SelectionSet::Column,
        model, seqlensType,
        [&](LoopBuilder &b, Value tokens) {
          return moe::buildSetBudget(b, b.getLoc(), options, tokens, experts,
                                     /*checked=*/false);
        },
        planCount, recompute);

    OpBuilder rewriter(op);
    LoopBuilder b(op.getLoc(), rewriter);
    Value logits = toBuffer(b, op.getLogits());
    Value gates = allocResult(b, op.getGates().getType(), logits);
    Value mask = allocResult(b, op.getMask().getType(), logits);
    Value seqlens = op.getSeqlens() ? toBuffer(b, op.getSeqlens()) : Value();
    // Sequences: the batch's, or the packed ones (S + 1 offsets).
    Value batch = seqlens ? subi(b,
                                 arith::MaxUIOp::create(b, dim(b, seqlens, 0),
                                                        indexConst(b, 1)),
                                 indexConst(b, 1))
                          : dim(b, logits, 0);
    Value rows = muli(b, dim(b, logits, 0), dim(b, logits, 1));
    Value sets = unified ? batch : muli(b, batch, indexConst(b, experts));
    Value tokens = dim(b, logits, 1);
    Value setSize = unified ? muli(b, tokens, indexConst(b, experts)) : tokens;
    checkCountFitsI32(b, setSize,
                      "a selection set (T * E pairs for unified, T tokens for "
                      "expert) on the GPU has at most 2^31 - 1 elements");
    SmallVector<Value> zeroed = allocPlanWorkspaces(b, op, rows, experts);
    std::optional<SpreadSelect> spreadSelect;
    if (!seqlens) {
      spreadSelect = allocSelectWorkspace(b, sets, setSize);
      zeroed.push_back(spreadSelect->workspace);
    }
    SmallVector<Value> scoreArgs = {logits, gates};
    SmallVector<Value> sourceArgs;
    if (recompute) {
      Value stats = alloc(b, gpu_kernels::statsBufferType(op.getContext()),
                          {muli(b, rows, indexConst(b, 2))});
      sourceArgs = {logits, stats};
      scoreArgs = {logits, stats};
    }
    llvm::append_range(scoreArgs, zeroed);
    std::optional<gpu_kernels::MultiBlockSelectKernels> multi;
    Value budget;
    SmallVector<Value> planArgs;
    if (!seqlens) {
      multi = gpu_kernels::buildMultiBlockSelectKernels(
          kb, op.getLoc(), base + "_select", gatesType, maskType,
          unified ? gpu_kernels::SelectionSet::Sequence
                  : gpu_kernels::SelectionSet::Column,
          model, selectChunk, planCount, recompute);
      budget = op.getRouter().buildSetBudget(b, op.getLoc(), tokens, experts);
      if (countedPlan) {
        const PlanWorkspace &ws = planWorkspaces[countedPlan];
        planArgs = {ws.counts, ws.starts, ws.offsets};
      }
    }
    auto scoreAndSelect = [&](LoopBuilder &b) {
      launch(b, scoreKernel,
             arith::CeilDivUIOp::create(
                 b, rows, indexConst(b, gpu_kernels::kRowsPerScoreBlock)),
             scoreArgs);
      if (mixKernel)
        launch(b, mixKernel, muli(b, batch, indexConst(b, experts)),
               seqlens ? SmallVector<Value>{logits, gates, seqlens}
                       : SmallVector<Value>{logits, gates});
      if (seqlens) {
        SmallVector<Value> args(sourceArgs);
        args.append({gates, mask, seqlens});
        launch(b, selectKernel, sets, args);
      } else
        launchSelect(b, selectKernel, *multi, *spreadSelect, sets, setSize,
                     gates, mask, budget, planArgs, sourceArgs);
    };
    // Decode: sequences of one token, at most one plan tile of them (the
    // plan then needs no counts from the select), take the Token Choice
    // kernel ranking U: one launch instead of two.
    gpu::GPUFuncOp decodeKernel;
    if (decodeBudget) {
      decodeKernel = gpu_kernels::buildTokenChoiceKernel(
          kb, op.getLoc(), base + "_decode", logitsType, gatesType, maskType,
          *decodeBudget, /*renormalize=*/false, /*bias=*/nullptr,
          /*groupLimit=*/std::nullopt, model, /*listIds=*/nullptr,
          /*listWeights=*/nullptr, /*zeroed=*/{}, rowAlpha);
      Value decode =
          andi(b, cmpi(b, arith::CmpIPredicate::eq, tokens, indexConst(b, 1)),
               cmpi(b, arith::CmpIPredicate::ule, rows,
                    indexConst(b, gpu_kernels::kPlanTileRows)));
      ifThenElse(
          b, decode,
          [&](LoopBuilder &b) {
            launch(b, decodeKernel,
                   arith::CeilDivUIOp::create(
                       b, rows,
                       indexConst(b, gpu_kernels::tokenChoiceRowsPerBlock(
                                         experts, /*groupLimited=*/false))),
                   {logits, gates, mask});
          },
          scoreAndSelect);
    } else {
      scoreAndSelect(b);
    }

    Builder attrs(op.getContext());
    SmallVector<NamedAttribute> common = {
        {attrs.getStringAttr("experts"), attrs.getI64IntegerAttr(experts)}};
    // With the decode kernel, the others run when it does not.
    std::string decodeExpr =
        llvm::formatv("gt(T, 0) * (1 - gt(T, 1)) * (1 - gt(B, {0}))",
                      gpu_kernels::kPlanTileRows);
    auto describe = [&](gpu::GPUFuncOp kernel, StringRef kind, StringRef grid,
                        KernelCost cost) {
      if (decodeKernel) {
        auto unlessDecode = [&](std::string &field) {
          if (!field.empty())
            field = "(1 - " + decodeExpr + ") * (" + field + ")";
        };
        for (std::string *field :
             {&cost.launches, &cost.bytesRead, &cost.bytesWritten,
              &cost.tailBytes, &cost.instructions})
          unlessDecode(*field);
      }
      recordKernel(op->getParentOfType<ModuleOp>(), kernel, kind, grid, common,
                   cost);
    };
    if (decodeKernel)
      recordKernel(
          op->getParentOfType<ModuleOp>(), decodeKernel, "route_unified_decode",
          llvm::formatv("ceildiv(B * T, {0})",
                        gpu_kernels::tokenChoiceRowsPerBlock(experts, false))
              .str(),
          {{"experts", attrs.getI64IntegerAttr(experts)},
           {"k", attrs.getI64IntegerAttr(*decodeBudget)},
           {"rows_per_block",
            attrs.getI64IntegerAttr(gpu_kernels::tokenChoiceRowsPerBlock(
                experts, /*groupLimited=*/false))}},
          {decodeExpr,
           llvm::formatv("{0} * B * T * E * {1}", decodeExpr,
                         elementBytes(logitsType.getElementType())),
           decodeExpr + " * B * T * E * 5"});
    // Scores: logits in, f32 scores out; the op's floor: logits in, gates
    // (f32) and mask out.
    int64_t logitBytes = elementBytes(logitsType.getElementType());
    std::string pairs = "B * T * E";
    std::string selectKind = unified ? "select_sequence" : "select_column";
    StringRef setGrid = unified ? "B" : "B * E";
    StringRef setSizeExpr = unified ? "T * E" : "T";
    std::string spread =
        seqlens ? "0"
                : llvm::formatv("gt(ceildiv({0}, {1}), 1) * gt({0}, {2}) * "
                                "gt({3}, {4})",
                                setSizeExpr, selectChunk, selectSpread,
                                kSelectSpreadMaxSets, unified ? "B" : "B * E")
                      .str();
    // It also zeroes the plans' counts and the select's workspace.
    std::string zeroedBytes = planCountBytes(op);
    if (!seqlens)
      zeroedBytes +=
          llvm::formatv(" + ({0} * {1} * {2} + 1 - {0}) * 4", spread, setGrid,
                        gpu_kernels::SelectWorkspace::kWords);
    // With recomputed scores: the rows' statistics out instead of the
    // scores; the select's passes read the logits and the statistics.
    std::string scoresWritten = pairs + " * 4";
    std::string scoreRead = pairs + " * 4";
    if (recompute) {
      scoresWritten = "B * T * 8";
      scoreRead = llvm::formatv("({0} * {1} + B * T * 8)", pairs, logitBytes);
    }
    describe(scoreKernel,
             rowAlpha ? "scores_unified_sigmoid" : "scores_softmax",
             "ceildiv(B * T, 4)",
             {"1", llvm::formatv("{0} * {1}", pairs, logitBytes),
              scoresWritten + zeroedBytes,
              llvm::formatv("{0} * {1}", pairs, logitBytes + 5)});
    if (mixKernel)
      // Each block reads its column's logits three times (max, sum, mix).
      describe(mixKernel, "mix_softmax_tokens", "B * E",
               {"1", llvm::formatv("{0} * {1}", pairs, 3 * logitBytes + 4),
                pairs + " * 4"});
    if (multi) {
      // The single-block kernel runs sets of at most `chunk` elements.
      common.push_back(
          {attrs.getStringAttr("chunk"), attrs.getI64IntegerAttr(selectChunk)});
      common.push_back({attrs.getStringAttr("spread"),
                        attrs.getI64IntegerAttr(selectSpread)});
      common.push_back({attrs.getStringAttr("spread_max_sets"),
                        attrs.getI64IntegerAttr(kSelectSpreadMaxSets)});
      common.push_back(
          {attrs.getStringAttr("workspace_words"),
           attrs.getI64IntegerAttr(gpu_kernels::SelectWorkspace::kWords)});
      common.push_back({attrs.getStringAttr("passes"),
                        attrs.getI64IntegerAttr(gpu_kernels::kRadixPasses)});
    }
    // One block per set: the scores read once per digit and once to mark.
    // Counting for the plan (several tiles): two atomics per selected pair
    // (its tile's and chunk's counts), and the last block reads the chunk
    // counts and writes starts and offsets.
    std::string countRead, countWritten, scanTail;
    if (countedPlan) {
      std::string several = "gt(" + planTilesExpr() + ", 1)";
      std::string chunkWords = planChunksExpr() + " * E * 4";
      countRead = llvm::formatv(" + {0} * {1}", several, chunkWords);
      countWritten = llvm::formatv(" + {0} * (M * 8 + {1} + (E + 1) * 4)",
                                   several, chunkWords);
      scanTail =
          llvm::formatv("{0} * ({1} * 2 + (E + 1) * 4)", several, chunkWords);
    }
    auto tailOf = [&](StringRef launched) {
      return scanTail.empty() ? std::string()
                              : (launched + " * " + scanTail).str();
    };
    // The arithmetic of recomputing the scores, `passes` times over the
    // pairs (none when the passes read written scores).
    auto recomputing = [&](StringRef launched,
                           const std::string &passes) -> std::string {
      if (!recompute)
        return "";
      return llvm::formatv("{0} * {1} * {2} * {3}", launched, passes, pairs,
                           recompute->instructionsPerElement());
    };
    if (recompute)
      common.push_back(
          {attrs.getStringAttr("score_instructions"),
           attrs.getI64IntegerAttr(recompute->instructionsPerElement())});
    // The one-block select computes the scores in three passes of five
    // (the first digit's, the second's, which keeps the keys matching the
    // prefix in shared memory, and the marking one), or, for a set whose
    // keys all fit there, in one and again for the selected pairs' gates
    // (counted as a whole pass: a bound). Its shared-memory passes: 14
    // instructions a key.
    std::string oneBlockPasses = llvm::formatv(
        "(3 - (1 - gt({0}, {1})))", setSizeExpr, gpu_kernels::kSharedKeys);
    std::string oneBlockInstructions;
    if (recompute)
      oneBlockInstructions =
          llvm::formatv("{0} + (1 - {1}) * {2} * {3} * {4}",
                        recomputing("(1 - " + spread + ")", oneBlockPasses),
                        spread, gpu_kernels::kRadixPasses - 1, pairs,
                        gpu_kernels::kCandidateKeyInstructions);
    describe(
        selectKernel, selectKind, setGrid,
        {"1 - " + spread,
         llvm::formatv("(1 - {0}) * ({1} * {2}{3})", spread, scoreRead,
                       oneBlockPasses, countRead),
         llvm::formatv("(1 - {0}) * ({1} * 5{2})", spread, pairs, countWritten),
         "", "", tailOf("(1 - " + spread + ")"), oneBlockInstructions});
    if (multi) {
      std::string chunks = (Twine("ceildiv(") + (unified ? "T * E" : "T") +
                            ", " + Twine(selectChunk) + ")")
                               .str();
      std::string grid = (Twine(setGrid) + " * " + chunks).str();
      // Per digit: a block's histogram added to the set's. The scores are
      // read by the first two passes; the second compacts the keys under
      // the first digit of the threshold and the last two read those: at
      // most the candidate buffer each (typically 1-8% of the set, not the
      // buffer's quarter; 3 full passes when they do not fit, which
      // random unified scores at E >= 64 and k = 1.5 never hit).
      std::string candidates =
          llvm::formatv("{0} * ceildiv({1}, {2})", setGrid, setSizeExpr,
                        gpu_kernels::kCandidateShare);
      std::string candidateBytes = candidates + " * 4";
      int64_t fullPasses = 2;
      std::string histogramInstructions;
      if (recompute)
        histogramInstructions =
            llvm::formatv("{0} + {1} * {2} * {3} * {4}",
                          recomputing(spread, std::to_string(fullPasses)),
                          spread, gpu_kernels::kRadixPasses - fullPasses,
                          candidates, gpu_kernels::kCandidateKeyInstructions);
      describe(
          multi->histogram, selectKind + "_histogram", grid,
          {llvm::formatv("{0} * {1}", gpu_kernels::kRadixPasses, spread),
           llvm::formatv("{0} * ({1} * {2} + {3} * {4})", spread, fullPasses,
                         scoreRead, gpu_kernels::kRadixPasses - fullPasses,
                         candidateBytes),
           llvm::formatv("{0} * ({1} * {2} * {3} * 4 + {4})", spread,
                         gpu_kernels::kRadixPasses, grid,
                         gpu_kernels::kRadixBins, candidateBytes),
           "", "", "", histogramInstructions});
      describe(
          multi->mark, selectKind + "_mark", grid,
          {spread,
           llvm::formatv("{0} * ({1}{2})", spread, scoreRead, countRead),
           llvm::formatv("{0} * ({1} * 5{2})", spread, pairs, countWritten), "",
           "", tailOf(spread), recomputing(spread, "1")});
    }

    replaceWithBuffers(b, op, {gates, mask});
    return success();
  }

  /// M, the selected pairs of a route's [B, T, E] selection: every set
  /// takes exactly its budget (the spec's tie rule), none when T = 0.
  static Value selectedPairs(LoopBuilder &b, const routing::RouterOptions &opts,
                             Value mask) {
    Value batch = dim(b, mask, 0), tokens = dim(b, mask, 1);
    int64_t experts = cast<MemRefType>(mask.getType()).getDimSize(2);
    Value budget = moe::buildSetBudget(b, b.getLoc(), opts, tokens, experts,
                                       /*checked=*/false);
    Value sets = batch;
    if (opts.mode == routing::Mode::Token)
      sets = muli(b, batch, tokens);
    else if (opts.mode == routing::Mode::Expert)
      sets = muli(b, batch, indexConst(b, experts));
    Value empty = cmpi(b, arith::CmpIPredicate::eq, tokens, indexConst(b, 0));
    return select(b, empty, indexConst(b, 0), muli(b, sets, budget));
  }

  /// plan of a route's selection (`router`): M from the budget, and the
  /// counts workspace the route's first kernel zeroed: count_scan and fill
  /// (a block per tile of rows), or one single-block launch when the rows
  /// fit one tile. Any other plan: count, scan (one block), the M read back
  /// on the host, fill.
  LogicalResult lowerPlan(moe::PlanOp op, gpu::GPUModuleOp kernels,
                          unsigned index,
                          std::optional<routing::RouterOptions> router) {
    auto workspace = planWorkspaces.find(op);
    if (router && workspace == planWorkspaces.end())
      return op->emitOpError("internal: the route of a budgeted plan was not "
                             "lowered before it");
    // The tile kernels keep a bitset of kPlanTileRows bits per expert in
    // shared memory (20 bytes an expert with the first rows).
    if (failed(checkExpertLimit(
            op, memrefOf(op.getGates().getType()).getDimSize(2), "moe.plan")))
      return failure();
    bool counted = countedBySelection.contains(op);
    OpBuilder kb = OpBuilder::atBlockEnd(&kernels.getBodyRegion().front());
    std::string name = "plan_" + std::to_string(index);
    auto offsetsType = memrefOf(op.getExpertOffsets().getType());
    auto idsType = memrefOf(op.getTokenIds().getType());
    auto weightsType = memrefOf(op.getWeights().getType());
    gpu_kernels::PlanKernels plan = gpu_kernels::buildPlanKernels(
        kb, op.getLoc(), name, memrefOf(op.getGates().getType()),
        memrefOf(op.getMask().getType()), offsetsType, idsType, weightsType,
        !router   ? gpu_kernels::PlanSource::Mask
        : counted ? gpu_kernels::PlanSource::CountedBySelection
                  : gpu_kernels::PlanSource::Budgeted);

    OpBuilder rewriter(op);
    LoopBuilder b(op.getLoc(), rewriter);
    Value gates = toBuffer(b, op.getGates());
    Value mask = toBuffer(b, op.getMask());
    int64_t experts = offsetsType.getDimSize(0) - 1;
    Value expertsV = indexConst(b, experts);
    Value tokenRows = muli(b, dim(b, mask, 0), dim(b, mask, 1));
    checkCountFitsI32(b, muli(b, tokenRows, expertsV),
                      "moe.plan on the GPU takes at most 2^31 - 1 (token, "
                      "expert) pairs (i32 token ids and offsets)");
    Value numTiles = arith::CeilDivUIOp::create(
        b, tokenRows, indexConst(b, gpu_kernels::kPlanTileRows));
    Value counts, starts, offsets, ids, weights;
    if (router) {
      // M from the budget: the buffers exist before any launch.
      counts = workspace->second.counts;
      starts = workspace->second.starts;
      offsets = workspace->second.offsets;
      Value rows = selectedPairs(b, *router, mask);
      ids = alloc(b, idsType, {rows});
      weights = alloc(b, weightsType, {rows});
      ifThenElse(
          b, cmpi(b, arith::CmpIPredicate::ule, numTiles, indexConst(b, 1)),
          [&](LoopBuilder &b) {
            launch(b, plan.single, indexConst(b, 1),
                   {gates, mask, counts, starts, offsets, ids, weights});
          },
          [&](LoopBuilder &b) {
            if (!counted)
              launch(b, plan.countScan, numTiles,
                     {mask, counts, starts, offsets});
            launch(b, plan.fill, numTiles,
                   {gates, mask, counts, starts, ids, weights});
          });
    } else {
      gpu_kernels::PlanCountLayout layout(b, numTiles, experts);
      counts = alloc(b, gpu_kernels::wordBufferType(op.getContext()),
                     {layout.chunkBase});
      starts = alloc(b, gpu_kernels::wordBufferType(op.getContext()),
                     {layout.startWords(b)});
      offsets = alloc(b, offsetsType);
      launch(b, plan.count, numTiles, {mask, counts});
      launch(b, plan.scan, indexConst(b, 1),
             {counts, starts, offsets, numTiles});
      op->getParentOfType<ModuleOp>()->setAttr(kHostReadsDeviceAttr,
                                               UnitAttr::get(op.getContext()));
      Value rows = i32ToIndex(b, load(b, offsets, {expertsV}));
      ids = alloc(b, idsType, {rows});
      weights = alloc(b, weightsType, {rows});
      launch(b, plan.fill, numTiles,
             {gates, mask, counts, starts, ids, weights});
    }
    Builder attrs(op.getContext());
    ModuleOp module = op->getParentOfType<ModuleOp>();
    SmallVector<NamedAttribute> info = {
        {attrs.getStringAttr("experts"), attrs.getI64IntegerAttr(experts)},
        {attrs.getStringAttr("tile_rows"),
         attrs.getI64IntegerAttr(gpu_kernels::kPlanTileRows)}};
    std::string tileGrid =
        "ceildiv(B * T, " + std::to_string(gpu_kernels::kPlanTileRows) + ")";
    info.push_back({attrs.getStringAttr("chunk_tiles"),
                    attrs.getI64IntegerAttr(gpu_kernels::kPlanChunkTiles)});
    std::string tileWords = tileGrid + " * E * 4";
    std::string chunkWords = planChunksExpr() + " * E * 4";
    // Each tile's start per expert: its chunk's, plus the counts of the
    // chunk's earlier tiles (on average (min(tiles, chunk) - 1) / 2).
    std::string startReads =
        llvm::formatv("{0} + {1} * (min({1}, {2}) - 1) * E * 2", chunkWords,
                      tileGrid, gpu_kernels::kPlanChunkTiles);
    // With a router, rows of one tile take the single kernel instead.
    std::string multi = router ? "gt(" + tileGrid + ", 1)" : "1";
    auto times = [&](StringRef bytes) {
      return (multi + " * (" + bytes + ")").str();
    };
    // The op's floor: the mask read, the offsets and M (id, weight) rows
    // written (the weights are gates of selected pairs: M * 4 more read).
    recordKernel(module, plan.fill, "plan_fill", tileGrid, info,
                 {multi, times("B * T * E + " + startReads + " + M * 4"),
                  times("M * 8"), "B * T * E + M * 4 + (E + 1) * 4 + M * 8"});
    if (!router) {
      recordKernel(module, plan.count, "plan_count", tileGrid, info,
                   {"1", "B * T * E", tileWords});
      recordKernel(module, plan.scan, "plan_scan", "1", info,
                   {"1", tileWords + " + " + chunkWords,
                    chunkWords + " * 2 + (E + 1) * 4"});
    } else {
      // The mask once; the tile counts out and added to their chunks', the
      // chunk counts read again by the last tile, which writes the starts
      // and offsets.
      if (!counted)
        recordKernel(
            module, plan.countScan, "plan_count_scan", tileGrid, info,
            {multi, times("B * T * E + " + chunkWords),
             times(tileWords + " + " + chunkWords + " * 2 + (E + 1) * 4"), "",
             "", times(chunkWords + " * 2 + (E + 1) * 4")});
      // The mask twice (count, fill), the E counts written, scanned, read.
      recordKernel(module, plan.single, "plan_single", "1", info,
                   {"1 - " + multi,
                    "(1 - " + multi + ") * (B * T * E * 2 + E * 8 + M * 4)",
                    "(1 - " + multi + ") * (E * 8 + (E + 1) * 4 + M * 8)"});
    }
    replaceWithBuffers(b, op, {offsets, ids, weights});
    return success();
  }

  /// select_given -> one thread per row.
  LogicalResult lowerSelectGiven(moe::SelectGivenOp op,
                                 gpu::GPUModuleOp kernels, unsigned index) {
    auto gatesType = memrefOf(op.getGates().getType());
    auto maskType = memrefOf(op.getMask().getType());
    OpBuilder kb = OpBuilder::atBlockEnd(&kernels.getBodyRegion().front());
    gpu::GPUFuncOp kernel = gpu_kernels::buildSelectGivenKernel(
        kb, op.getLoc(), "select_given_" + std::to_string(index),
        memrefOf(op.getExpertIds().getType()),
        memrefOf(op.getWeights().getType()), gatesType, maskType);
    OpBuilder rewriter(op);
    LoopBuilder b(op.getLoc(), rewriter);
    Value ids = toBuffer(b, op.getExpertIds());
    Value weights = toBuffer(b, op.getWeights());
    Value rows = dim(b, ids, 0);
    SmallVector<Value> dynRows;
    if (gatesType.isDynamicDim(1))
      dynRows.push_back(rows);
    Value gates = alloc(b, gatesType, dynRows);
    Value mask = alloc(b, maskType, dynRows);
    launch(b, kernel,
           arith::CeilDivUIOp::create(b, rows,
                                      indexConst(b, gpu_kernels::kColumnBlock)),
           {ids, weights, gates, mask});
    Builder attrs(op.getContext());
    recordKernel(op->getParentOfType<ModuleOp>(), kernel, "select_given",
                 "ceildiv(T, 128)",
                 {{attrs.getStringAttr("experts"),
                   attrs.getI64IntegerAttr(gatesType.getDimSize(2))}},
                 {"1", "T * K * 8", "T * E * 5", "T * K * 8 + T * E * 5"});
    replaceWithBuffers(b, op, {gates, mask});
    return success();
  }

  /// topk_list -> one warp per token, Token Choice's launch shape.
  LogicalResult lowerTopKList(moe::TopKListOp op, gpu::GPUModuleOp kernels,
                              unsigned index) {
    auto gatesType = memrefOf(op.getGates().getType());
    int64_t experts = gatesType.getDimSize(2);
    if (failed(checkExpertLimit(op, experts, "listing top-k experts")))
      return failure();
    auto idsType = memrefOf(op.getExpertIds().getType());
    auto weightsType = memrefOf(op.getWeights().getType());
    OpBuilder kb = OpBuilder::atBlockEnd(&kernels.getBodyRegion().front());
    gpu::GPUFuncOp kernel = gpu_kernels::buildTopKListKernel(
        kb, op.getLoc(), "topk_list_" + std::to_string(index), gatesType,
        memrefOf(op.getMask().getType()), idsType, weightsType);

    OpBuilder rewriter(op);
    LoopBuilder b(op.getLoc(), rewriter);
    Value gates = toBuffer(b, op.getGates());
    Value mask = toBuffer(b, op.getMask());
    Value rows = muli(b, dim(b, gates, 0), dim(b, gates, 1));
    SmallVector<Value> dynRows;
    if (idsType.isDynamicDim(0))
      dynRows.push_back(rows);
    Value ids = alloc(b, idsType, dynRows);
    Value weights = alloc(b, weightsType, dynRows);
    launch(b, kernel,
           arith::CeilDivUIOp::create(
               b, rows, indexConst(b, gpu_kernels::kTokenChoiceWarpsPerBlock)),
           {gates, mask, ids, weights});
    Builder attrs(op.getContext());
    recordKernel(
        op->getParentOfType<ModuleOp>(), kernel, "topk_list",
        "ceildiv(B * T, 4)",
        {{attrs.getStringAttr("experts"), attrs.getI64IntegerAttr(experts)},
         {attrs.getStringAttr("k"), attrs.getI64IntegerAttr(op.getK())}},
        {"1", "B * T * E * 5", "B * T * K * 8", "B * T * K * 8"});
    replaceWithBuffers(b, op, {ids, weights});
    return success();
  }

  /// The static sizes among E (experts), D (hidden) and F (ffn) as kernel
  /// table info, which the cost report takes as the symbols' defaults.
  static SmallVector<NamedAttribute> shapeInfo(Builder &attrs, int64_t experts,
                                               int64_t hidden, int64_t ffn) {
    SmallVector<NamedAttribute> info;
    for (auto [key, size] :
         {std::pair{"experts", experts}, {"hidden", hidden}, {"ffn", ffn}})
      if (!ShapedType::isDynamic(size))
        info.emplace_back(attrs.getStringAttr(key),
                          attrs.getI64IntegerAttr(size));
    return info;
  }

  /// dispatch -> one block per plan row.
  LogicalResult lowerDispatch(moe::DispatchOp op, gpu::GPUModuleOp kernels,
                              unsigned index) {
    OpBuilder kb = OpBuilder::atBlockEnd(&kernels.getBodyRegion().front());
    auto outType = memrefOf(op.getType());
    gpu::GPUFuncOp kernel = gpu_kernels::buildDispatchKernel(
        kb, op.getLoc(), "dispatch_" + std::to_string(index),
        memrefOf(op.getHidden().getType()),
        memrefOf(op.getTokenIds().getType()), outType);
    OpBuilder rewriter(op);
    LoopBuilder b(op.getLoc(), rewriter);
    Value hidden = toBuffer(b, op.getHidden());
    Value ids = toBuffer(b, op.getTokenIds());
    SmallVector<Value> dynSizes;
    if (outType.isDynamicDim(0))
      dynSizes.push_back(dim(b, ids, 0));
    if (outType.isDynamicDim(1))
      dynSizes.push_back(dim(b, hidden, 1));
    Value out = alloc(b, outType, dynSizes);
    launch(b, kernel, dim(b, ids, 0), {hidden, ids, out});
    int64_t rowBytes = elementBytes(outType.getElementType());
    Builder attrs(op.getContext());
    recordKernel(op->getParentOfType<ModuleOp>(), kernel, "dispatch", "M",
                 shapeInfo(attrs, ShapedType::kDynamic, outType.getDimSize(1),
                           ShapedType::kDynamic),
                 {"1", llvm::formatv("M * 4 + M * D * {0}", rowBytes),
                  llvm::formatv("M * D * {0}", rowBytes),
                  llvm::formatv("B * T * D * {0}", rowBytes)});
    replaceWithBuffers(b, op, {out});
    return success();
  }

  /// combine -> one block per token, its rows found once by a binary search
  /// per expert (a thread each), then summed over d in expert order.
  LogicalResult lowerCombine(moe::CombineOp op, gpu::GPUModuleOp kernels,
                             unsigned index) {
    if (!op.getExpertOffsets())
      return op.emitOpError(
          "needs the expert_offsets operand on the GPU path (the first "
          "result of moe.plan): it finds each token's rows without atomics");
    auto offsetsType = memrefOf(op.getExpertOffsets().getType());
    if (offsetsType.isDynamicDim(0))
      return op.emitOpError("needs expert_offsets of a static size (E + 1) "
                            "on the GPU path");
    OpBuilder kb = OpBuilder::atBlockEnd(&kernels.getBodyRegion().front());
    auto resultType = memrefOf(op.getType());
    gpu::GPUFuncOp kernel = gpu_kernels::buildCombineKernel(
        kb, op.getLoc(), "combine_" + std::to_string(index),
        memrefOf(op.getExpertOut().getType()),
        memrefOf(op.getTokenIds().getType()),
        memrefOf(op.getWeights().getType()), offsetsType,
        memrefOf(op.getInit().getType()), resultType);
    OpBuilder rewriter(op);
    LoopBuilder b(op.getLoc(), rewriter);
    Value out = toBuffer(b, op.getExpertOut());
    Value ids = toBuffer(b, op.getTokenIds());
    Value weights = toBuffer(b, op.getWeights());
    Value offsets = toBuffer(b, op.getExpertOffsets());
    Value init = toBuffer(b, op.getInit());
    Value result = allocResult(b, op.getType(), init);
    launch(b, kernel, dim(b, init, 0),
           {out, ids, weights, offsets, init, result});
    // Per token and expert a binary search in the expert's ids (up to 32
    // reads of 4 bytes: 128 bytes), once per token; then its rows.
    int64_t outBytes = elementBytes(resultType.getElementType());
    int64_t rowBytes =
        elementBytes(memrefOf(op.getExpertOut().getType()).getElementType());
    Builder attrs(op.getContext());
    recordKernel(op->getParentOfType<ModuleOp>(), kernel, "combine", "B * T",
                 shapeInfo(attrs, offsetsType.getDimSize(0) - 1,
                           resultType.getDimSize(1), ShapedType::kDynamic),
                 {"1",
                  llvm::formatv(
                      "B * T * E * 128 + M * D * {0} + M * 4 + B * T * D * {1}",
                      rowBytes, outBytes),
                  llvm::formatv("B * T * D * {0}", outBytes),
                  llvm::formatv("B * T * D * {0}", outBytes)});
    replaceWithBuffers(b, op, {result});
    return success();
  }

  /// Whether expert_ffn runs on tensor cores (f16/bf16 operands).
  static bool usesTensorCores(moe::ExpertFfnOp op) {
    Type element = getElementTypeOrSelf(op.getInput().getType());
    return element.isF16() || element.isBF16();
  }

  /// f16/bf16 expert_ffn -> two tensor-core grouped GEMMs: gate/up with
  /// the SwiGLU epilogue into h ([M, F], the input's type), then down into
  /// the f32 rows. The weights are strided views (a fused gate/up tensor's
  /// halves, either layout) so that slices reach the kernels without copies.
  /// When the input is a moe.dispatch of this op alone, the first GEMM
  /// gathers the token rows itself (hidden[token_ids[m]]) and the dispatch
  /// goes.
  LogicalResult lowerExpertFfnOnTensorCores(moe::ExpertFfnOp op,
                                            gpu::GPUModuleOp kernels,
                                            unsigned index) {
    using gpu_kernels::ExpertGemmEpilogue;
    OpBuilder kb = OpBuilder::atBlockEnd(&kernels.getBodyRegion().front());
    auto dispatch = op.getInput().getDefiningOp<moe::DispatchOp>();
    if (dispatch && !fusedAway.contains(dispatch))
      dispatch = nullptr;
    Value rowsSource = dispatch ? dispatch.getHidden() : op.getInput();
    auto inType = memrefOf(rowsSource.getType());
    MemRefType gatherType =
        dispatch ? memrefOf(dispatch.getTokenIds().getType()) : MemRefType();
    auto offsetsType = memrefOf(op.getExpertOffsets().getType());
    auto outType = memrefOf(op.getType());
    Type element = inType.getElementType();
    auto weightType = [](Value w) {
      return stridedViewType(cast<RankedTensorType>(w.getType()));
    };
    auto hiddenType =
        MemRefType::get({ShapedType::kDynamic, op.getExpertDims()[2]}, element);
    std::string suffix = std::to_string(index);
    gpu::GPUFuncOp gateUp = gpu_kernels::buildExpertGemmKernel(
        kb, op.getLoc(), "expert_gate_up_" + suffix, inType, gatherType,
        offsetsType, {weightType(op.getW1()), weightType(op.getW3())},
        hiddenType, op.getLayout(), ExpertGemmEpilogue::SwiGlu);
    gpu::GPUFuncOp down = gpu_kernels::buildExpertGemmKernel(
        kb, op.getLoc(), "expert_down_" + suffix, hiddenType, MemRefType(),
        offsetsType, {weightType(op.getW2())}, outType, op.getLayout(),
        ExpertGemmEpilogue::Store);

    OpBuilder rewriter(op);
    LoopBuilder b(op.getLoc(), rewriter);
    bool inOut = op.getLayout() == moe::WeightLayout::in_out;
    Value x = toBuffer(b, rowsSource);
    SmallVector<Value> gateUpRows = {x};
    Value rows = dim(b, x, 0);
    if (dispatch) {
      Value ids = toBuffer(b, dispatch.getTokenIds());
      gateUpRows.push_back(ids);
      rows = dim(b, ids, 0);
    }
    Value offsets = toBuffer(b, op.getExpertOffsets());
    Value w1 = toStridedBuffer(b, op.getW1()),
          w3 = toStridedBuffer(b, op.getW3()),
          w2 = toStridedBuffer(b, op.getW2());
    Value experts = dim(b, w1, 0);
    Value ffn = dim(b, w1, inOut ? 2 : 1), width = dim(b, x, 1);
    SmallVector<Value> hiddenSizes = {rows};
    if (hiddenType.isDynamicDim(1))
      hiddenSizes.push_back(ffn);
    Value hidden = alloc(b, hiddenType, hiddenSizes);
    SmallVector<Value> outSizes;
    if (outType.isDynamicDim(0))
      outSizes.push_back(rows);
    if (outType.isDynamicDim(1))
      outSizes.push_back(width);
    Value out = alloc(b, outType, outSizes);
    // Every row tile holds at least one row: at most M tiles.
    Value rowTiles = arith::MinUIOp::create(
        b,
        addi(b,
             arith::CeilDivUIOp::create(
                 b, rows, indexConst(b, gpu_kernels::kGemmTileRows)),
             experts),
        rows);
    auto colTiles = [&](Value n) {
      return arith::CeilDivUIOp::create(
          b, n, indexConst(b, gpu_kernels::kGemmTileCols));
    };
    SmallVector<Value> gateUpArgs(gateUpRows);
    gateUpArgs.append({offsets, w1, w3, hidden});
    launch(b, gateUp, muli(b, rowTiles, colTiles(ffn)), gateUpArgs);
    launch(b, down, muli(b, rowTiles, colTiles(width)),
           {hidden, offsets, w2, out});

    Builder attrs(op.getContext());
    int64_t bytes = elementBytes(element);
    auto [e, d, f] = op.getExpertDims();
    SmallVector<NamedAttribute> info = shapeInfo(attrs, e, d, f);
    info.emplace_back(
        attrs.getStringAttr("layout"),
        attrs.getStringAttr(moe::stringifyWeightLayout(op.getLayout())));
    // DRAM traffic with the grouped grid order: the blocks on the chip at
    // once (about kGemmGroupRows row tiles by kGemmWaveCols column tiles)
    // share their row tiles and weight slabs in L2, so rows are read once
    // per wave of column tiles and an expert's weights once per group of
    // row tiles that touches it. The floor reads every weight once.
    using namespace gpu_kernels;
    std::string tiles =
        llvm::formatv("min(ceildiv(M, {0}) + E, M)", kGemmTileRows);
    std::string groups =
        llvm::formatv("min(ceildiv({0}, {1}) + E, {0})", tiles, kGemmGroupRows);
    auto colTilesOf = [](StringRef n) {
      return llvm::formatv("ceildiv({0}, {1})", n, kGemmTileCols).str();
    };
    auto wavesOf = [&](StringRef n) {
      return llvm::formatv("ceildiv({0}, {1})", colTilesOf(n), kGemmWaveCols)
          .str();
    };
    recordKernel(op->getParentOfType<ModuleOp>(), gateUp, "expert_gate_up",
                 llvm::formatv("{0} * {1}", tiles, colTilesOf("F")).str(), info,
                 {"1",
                  llvm::formatv("M * D * {0} * {1} + {2} * 2 * D * F * {0}{3}",
                                bytes, wavesOf("F"), groups,
                                dispatch ? " + M * 4 * " + colTilesOf("F")
                                         : std::string()),
                  llvm::formatv("M * F * {0}", bytes),
                  llvm::formatv(
                      "E * 2 * D * F * {0} + M * D * {0} + M * F * {0}", bytes),
                  "M * 4 * D * F"});
    recordKernel(
        op->getParentOfType<ModuleOp>(), down, "expert_down",
        llvm::formatv("{0} * {1}", tiles, colTilesOf("D")).str(), info,
        {"1",
         llvm::formatv("M * F * {0} * {1} + {2} * D * F * {0}", bytes,
                       wavesOf("D"), groups),
         "M * D * 4",
         llvm::formatv("E * D * F * {0} + M * F * {0} + M * D * 4", bytes),
         "M * 2 * D * F"});
    replaceWithBuffers(b, op, {out});
    if (dispatch)
      dispatch->erase();
    return success();
  }

  /// f32 expert_ffn -> one block per plan row, with an [M, F] f32 scratch
  /// (tensor cores take f16/bf16; tf32 would change the results).
  LogicalResult lowerExpertFfn(moe::ExpertFfnOp op, gpu::GPUModuleOp kernels,
                               unsigned index) {
    if (usesTensorCores(op))
      return lowerExpertFfnOnTensorCores(op, kernels, index);
    OpBuilder kb = OpBuilder::atBlockEnd(&kernels.getBodyRegion().front());
    auto outType = memrefOf(op.getType());
    bool inOut = op.getLayout() == moe::WeightLayout::in_out;
    auto weightType = [](Value w) {
      return stridedViewType(cast<RankedTensorType>(w.getType()));
    };
    auto scratchType =
        MemRefType::get({ShapedType::kDynamic, op.getExpertDims()[2]},
                        Float32Type::get(op.getContext()));
    gpu::GPUFuncOp kernel = gpu_kernels::buildExpertFfnKernel(
        kb, op.getLoc(), "expert_ffn_" + std::to_string(index),
        memrefOf(op.getInput().getType()),
        memrefOf(op.getExpertOffsets().getType()), weightType(op.getW1()),
        weightType(op.getW3()), weightType(op.getW2()), scratchType, outType,
        op.getLayout());
    OpBuilder rewriter(op);
    LoopBuilder b(op.getLoc(), rewriter);
    Value x = toBuffer(b, op.getInput());
    Value offsets = toBuffer(b, op.getExpertOffsets());
    Value w1 = toStridedBuffer(b, op.getW1()),
          w3 = toStridedBuffer(b, op.getW3()),
          w2 = toStridedBuffer(b, op.getW2());
    Value rows = dim(b, x, 0);
    SmallVector<Value> scratchSizes = {rows};
    if (scratchType.isDynamicDim(1))
      scratchSizes.push_back(dim(b, w1, inOut ? 2 : 1));
    Value scratch = alloc(b, scratchType, scratchSizes);
    Value out = allocResult(b, op.getType(), x);
    launch(b, kernel, rows, {x, offsets, w1, w3, w2, scratch, out});
    Builder attrs(op.getContext());
    int64_t inBytes =
        elementBytes(memrefOf(op.getInput().getType()).getElementType());
    int64_t weightBytes =
        elementBytes(cast<ShapedType>(op.getW1().getType()).getElementType());
    int64_t outBytes = elementBytes(outType.getElementType());
    recordKernel(
        op->getParentOfType<ModuleOp>(), kernel, "expert_ffn", "M",
        {{attrs.getStringAttr("layout"),
          attrs.getStringAttr(moe::stringifyWeightLayout(op.getLayout()))}},
        // Each row reads its expert's three matrices (no reuse across rows)
        // and goes through the [M, F] f32 scratch.
        {"1",
         llvm::formatv("M * D * {0} + M * 3 * D * F * {1} + M * F * 4", inBytes,
                       weightBytes),
         llvm::formatv("M * F * 4 + M * D * {0}", outBytes),
         llvm::formatv("E * 3 * D * F * {0}", weightBytes)});
    replaceWithBuffers(b, op, {out});
    return success();
  }

  /// route token -> launch of a warp-per-token kernel over B*T rows.
  LogicalResult lowerTokenChoice(moe::RouteOp op, gpu::GPUModuleOp kernels,
                                 unsigned index) {
    auto logitsType = memrefOf(op.getLogits().getType());
    int64_t experts = logitsType.getDimSize(2);
    if (failed(checkExpertLimit(op, experts, "token routing")))
      return failure();
    auto gatesType = memrefOf(op.getGates().getType());
    auto maskType = memrefOf(op.getMask().getType());
    routing::RouterOptions options = op.getRouterOptions();
    int64_t k = routing::countOfK(*options.k);
    std::optional<gpu_kernels::GroupLimit> groupLimit;
    if (options.nGroup) {
      if (*options.nGroup > gpu_kernels::kMaxGroups)
        return op->emitOpError()
               << "group-limited routing on the GPU supports up to "
               << gpu_kernels::kMaxGroups << " groups, got " << *options.nGroup;
      groupLimit = gpu_kernels::GroupLimit{*options.nGroup, *options.topkGroup};
    }

    OpBuilder kb = OpBuilder::atBlockEnd(&kernels.getBodyRegion().front());
    std::string name = "route_token_" + std::to_string(index);
    MemRefType biasType =
        op.getBias() ? memrefOf(op.getBias().getType()) : MemRefType();
    moe::TopKListOp list = fusedLists.lookup(op);
    MemRefType listIdsType, listWeightsType;
    if (list) {
      listIdsType = memrefOf(list.getExpertIds().getType());
      listWeightsType = memrefOf(list.getWeights().getType());
    }
    gpu::GPUFuncOp kernel = gpu_kernels::buildTokenChoiceKernel(
        kb, op.getLoc(), name, logitsType, gatesType, maskType, k,
        options.renormalize, biasType, groupLimit,
        loops::ModelOptions{options.softcap, options.routedScalingFactor},
        listIdsType, listWeightsType,
        SmallVector<MemRefType>(plansOfRoute.lookup(op).size(),
                                gpu_kernels::wordBufferType(op.getContext())));

    OpBuilder rewriter(op);
    LoopBuilder b(op.getLoc(), rewriter);
    Value logits = toBuffer(b, op.getLogits());
    Value gates = allocResult(b, op.getGates().getType(), logits);
    Value mask = allocResult(b, op.getMask().getType(), logits);
    Value rows = muli(b, dim(b, logits, 0), dim(b, logits, 1));
    SmallVector<Value> args = {logits, gates, mask};
    if (op.getBias())
      args.push_back(toBuffer(b, op.getBias()));
    Value listIds, listWeights;
    if (list) {
      SmallVector<Value> dynRows;
      if (listIdsType.isDynamicDim(0))
        dynRows.push_back(rows);
      listIds = alloc(b, listIdsType, dynRows);
      listWeights = alloc(b, listWeightsType, dynRows);
      args.append({listIds, listWeights});
    }
    llvm::append_range(args, allocPlanWorkspaces(b, op, rows, experts));
    const int64_t rowsPerBlock =
        gpu_kernels::tokenChoiceRowsPerBlock(experts, bool(groupLimit));
    launch(b, kernel,
           arith::CeilDivUIOp::create(b, rows, indexConst(b, rowsPerBlock)),
           args);
    int64_t logitBytes = elementBytes(logitsType.getElementType());
    std::string listBytes = list ? " + B * T * K * 8" : "";
    recordKernel(op->getParentOfType<ModuleOp>(), kernel,
                 op.getBias() ? "route_token_bias" : "route_token",
                 llvm::formatv("ceildiv(B * T, {0})", rowsPerBlock).str(),
                 {{"experts", rewriter.getI64IntegerAttr(experts)},
                  {"k", rewriter.getI64IntegerAttr(k)},
                  {"renormalize", rewriter.getBoolAttr(options.renormalize)},
                  {"rows_per_block", rewriter.getI64IntegerAttr(rowsPerBlock)},
                  {"lists", rewriter.getBoolAttr(bool(list))}},
                 {"1",
                  llvm::formatv("B * T * E * {0}{1}", logitBytes,
                                op.getBias() ? " + E * 4" : ""),
                  "B * T * E * 5" + listBytes + planCountBytes(op),
                  llvm::formatv("B * T * E * {0}{1}{2}", logitBytes + 5,
                                op.getBias() ? " + E * 4" : "", listBytes)});
    if (list) {
      // The list op goes too: its results are the route kernel's lists.
      OpBuilder after(list);
      LoopBuilder lb(list.getLoc(), after);
      fusedAway.insert(list);
      replaceWithBuffers(lb, list, {listIds, listWeights});
    }
    replaceWithBuffers(b, op, {gates, mask});
    return success();
  }
};

} // namespace
