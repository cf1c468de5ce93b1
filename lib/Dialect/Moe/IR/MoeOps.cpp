//===- MoeOps.cpp - moe dialect operations: types and verifiers -----------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Result types are inferred from the operands (InferTypeOpAdaptor), so the
// verifiers only check what inference cannot: a static expert count, the
// parameter ranges of each router, and the agreement of plan operands.
// Diagnostics name the rule and the offending value, in lower case.
//
//===----------------------------------------------------------------------===//

#include "usmoe/Dialect/Moe/IR/MoeOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/Support/CheckedArithmetic.h"

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// Shared shape helpers
//===----------------------------------------------------------------------===//

static bool dimsCompatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// The static number of tokens per sequence, if known.
static std::optional<int64_t> staticTokens(ShapedType type) {
  if (type.isDynamicDim(1))
    return std::nullopt;
  return type.getDimSize(1);
}

/// Every routing tensor must have a static expert dimension: E fixes the
/// size of `expert_offsets`, the parameter bounds and the GPU launch shapes.
static LogicalResult verifyExpertDim(Operation *op, ShapedType type,
                                     StringRef what) {
  if (type.isDynamicDim(2))
    return op->emitOpError() << "expects a static number of experts (dim 2 of "
                             << what << "), got " << type;
  if (type.getDimSize(2) < 1)
    return op->emitOpError() << "expects at least one expert, got " << type;
  return success();
}

/// [B, T, E] of `like`, with element type `elementType`.
static LogicalResult inferRoutingShaped(std::optional<Location> loc, Type like,
                                        Type elementType,
                                        SmallVectorImpl<Type> &inferred,
                                        unsigned count = 1) {
  auto type = dyn_cast<RankedTensorType>(like);
  if (!type || type.getRank() != 3)
    return emitOptionalError(loc, "expects a rank-3 [B, T, E] tensor, got ",
                             like);
  Type score = RankedTensorType::get(type.getShape(),
                                     Float32Type::get(like.getContext()));
  inferred.push_back(score);
  if (count == 2)
    inferred.push_back(RankedTensorType::get(type.getShape(), elementType));
  return success();
}

static LogicalResult inferScores(std::optional<Location> loc, Value logits,
                                 SmallVectorImpl<Type> &inferred) {
  return inferRoutingShaped(loc, logits.getType(), Type(), inferred);
}

static LogicalResult inferSelection(std::optional<Location> loc, Value scores,
                                    SmallVectorImpl<Type> &inferred) {
  return inferRoutingShaped(loc, scores.getType(),
                            IntegerType::get(scores.getContext(), 1), inferred,
                            /*count=*/2);
}

/// Emits `rule` (a message of usmoe::routing, "" when the rule holds) as an
/// error of `op`: the words are the same in usmoe-opt and in Python.
static LogicalResult check(Operation *op, const std::string &rule) {
  if (rule.empty())
    return success();
  return op->emitOpError() << rule;
}

//===----------------------------------------------------------------------===//
// Scoring ops
//===----------------------------------------------------------------------===//

LogicalResult
TokenSoftmaxOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                 Adaptor adaptor,
                                 SmallVectorImpl<Type> &inferred) {
  return inferScores(loc, adaptor.getLogits(), inferred);
}

LogicalResult TokenSoftmaxOp::verify() {
  return verifyExpertDim(*this, getLogits().getType(), "logits");
}

LogicalResult ExpertScoreOp::inferReturnTypes(MLIRContext *,
                                              std::optional<Location> loc,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &inferred) {
  return inferScores(loc, adaptor.getLogits(), inferred);
}

LogicalResult ExpertScoreOp::verify() {
  return verifyExpertDim(*this, getLogits().getType(), "logits");
}

LogicalResult
UnifiedScoreOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                 Adaptor adaptor,
                                 SmallVectorImpl<Type> &inferred) {
  return inferScores(loc, adaptor.getLogits(), inferred);
}

LogicalResult UnifiedScoreOp::verify() {
  if (failed(verifyExpertDim(*this, getLogits().getType(), "logits")))
    return failure();
  return check(*this, routing::checkAlpha(getAlpha().convertToDouble()));
}

//===----------------------------------------------------------------------===//
// Selection ops
//===----------------------------------------------------------------------===//

LogicalResult SelectTopKOp::inferReturnTypes(MLIRContext *,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &inferred) {
  return inferSelection(loc, adaptor.getScores(), inferred);
}

LogicalResult SelectTopKOp::verify() {
  ShapedType type = getScores().getType();
  if (failed(verifyExpertDim(*this, type, "scores")))
    return failure();
  return check(*this, routing::checkTopK(getK(), type.getDimSize(2)));
}

LogicalResult SelectExpertChoiceOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &inferred) {
  return inferSelection(loc, adaptor.getScores(), inferred);
}

LogicalResult SelectExpertChoiceOp::verify() {
  ShapedType type = getScores().getType();
  if (failed(verifyExpertDim(*this, type, "scores")))
    return failure();
  routing::RouterOptions options = getRouterOptions();
  return check(*this,
               routing::checkCapacity(options.capacity, options.capacityFactor,
                                      routing::countOfK(options.k),
                                      type.getDimSize(2), staticTokens(type)));
}

routing::RouterOptions SelectExpertChoiceOp::getRouterOptions() {
  routing::RouterOptions options;
  options.mode = routing::Mode::Expert;
  options.capacity = getCapacity();
  if (auto factor = getCapacityFactorAttr())
    options.capacityFactor = factor.getValueAsDouble();
  if (std::optional<int64_t> k = getK())
    options.k = static_cast<double>(*k);
  return options;
}

LogicalResult
SelectGlobalOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                 Adaptor adaptor,
                                 SmallVectorImpl<Type> &inferred) {
  return inferSelection(loc, adaptor.getScores(), inferred);
}

LogicalResult SelectGlobalOp::verify() {
  ShapedType type = getScores().getType();
  if (failed(verifyExpertDim(*this, type, "scores")))
    return failure();
  routing::RouterOptions options = getRouterOptions();
  return check(*this,
               routing::checkBudget(options.n, options.k, type.getDimSize(2),
                                    staticTokens(type)));
}

routing::RouterOptions SelectGlobalOp::getRouterOptions() {
  routing::RouterOptions options;
  options.mode = routing::Mode::Unified;
  options.n = getN();
  if (auto k = getKAttr())
    options.k = k.getValueAsDouble();
  return options;
}

LogicalResult SelectGivenOp::inferReturnTypes(MLIRContext *ctx,
                                              std::optional<Location> loc,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &inferred) {
  auto ids = dyn_cast<RankedTensorType>(adaptor.getExpertIds().getType());
  if (!ids || ids.getRank() != 2)
    return emitOptionalError(loc, "expects [R, k] expert ids");
  SmallVector<int64_t> shape = {1, ids.getDimSize(0),
                                static_cast<int64_t>(adaptor.getExperts())};
  inferred.push_back(RankedTensorType::get(shape, Float32Type::get(ctx)));
  inferred.push_back(RankedTensorType::get(shape, IntegerType::get(ctx, 1)));
  return success();
}

LogicalResult SelectGivenOp::verify() {
  ShapedType ids = getExpertIds().getType(), weights = getWeights().getType();
  if (!dimsCompatible(ids.getDimSize(0), weights.getDimSize(0)) ||
      !dimsCompatible(ids.getDimSize(1), weights.getDimSize(1)))
    return emitOpError() << "expects one weight per expert id, got " << ids
                         << " and " << weights;
  int64_t experts = static_cast<int64_t>(getExperts());
  if (!ids.isDynamicDim(1) && ids.getDimSize(1) > experts)
    return emitOpError() << "expects at most " << experts
                         << " experts per row (no expert twice), got "
                         << ids.getDimSize(1);
  return success();
}

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

LogicalResult RouteOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &inferred) {
  return inferSelection(loc, adaptor.getLogits(), inferred);
}

LogicalResult RouteOp::verify() {
  ShapedType type = getLogits().getType();
  if (failed(verifyExpertDim(*this, type, "logits")))
    return failure();
  int64_t numExperts = type.getDimSize(2);
  if (Value bias = getBias()) {
    int64_t size = cast<ShapedType>(bias.getType()).getDimSize(0);
    if (getMode() == routing::Mode::Token && !ShapedType::isDynamic(size) &&
        size != numExperts)
      return emitOpError() << "expects one bias per expert (" << numExperts
                           << "), got " << size;
  }
  // Packed sequences: T is per sequence, known at run time only.
  std::optional<int64_t> tokens = staticTokens(type);
  if (getSeqlens()) {
    if (type.getDimSize(0) != 1)
      return emitOpError() << "expects one packed batch [1, N, E] of logits "
                           << "with seqlens, got " << type;
    tokens.reset();
  }
  return check(*this, getRouter().check(numExperts, tokens,
                                        static_cast<bool>(getBias())));
}

//===----------------------------------------------------------------------===//
// PlanOp and TopKListOp
//===----------------------------------------------------------------------===//

LogicalResult PlanOp::inferReturnTypes(MLIRContext *ctx,
                                       std::optional<Location> loc,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &inferred) {
  auto gates = dyn_cast<RankedTensorType>(adaptor.getGates().getType());
  if (!gates || gates.getRank() != 3)
    return emitOptionalError(loc, "expects rank-3 [B, T, E] gates");
  int64_t offsets = ShapedType::kDynamic;
  if (!gates.isDynamicDim(2)) {
    std::optional<int64_t> count =
        llvm::checkedAdd(gates.getDimSize(2), int64_t(1));
    if (!count)
      return emitOptionalError(loc,
                               "expects E + 1 expert offsets to fit in "
                               "int64, got E = ",
                               gates.getDimSize(2));
    offsets = *count;
  }
  auto i32 = IntegerType::get(ctx, 32);
  inferred.push_back(RankedTensorType::get({offsets}, i32));
  inferred.push_back(RankedTensorType::get({ShapedType::kDynamic}, i32));
  inferred.push_back(
      RankedTensorType::get({ShapedType::kDynamic}, Float32Type::get(ctx)));
  return success();
}

LogicalResult PlanOp::verify() {
  return verifyExpertDim(*this, getGates().getType(), "gates");
}

LogicalResult TopKListOp::inferReturnTypes(MLIRContext *ctx,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &inferred) {
  auto gates = dyn_cast<RankedTensorType>(adaptor.getGates().getType());
  if (!gates || gates.getRank() != 3)
    return emitOptionalError(loc, "expects rank-3 [B, T, E] gates");
  int64_t rows = ShapedType::kDynamic;
  if (!gates.isDynamicDim(0) && !gates.isDynamicDim(1)) {
    std::optional<int64_t> product =
        llvm::checkedMul(gates.getDimSize(0), gates.getDimSize(1));
    if (!product)
      return emitOptionalError(loc, "expects B * T to fit in int64, got ",
                               gates);
    rows = *product;
  }
  int64_t k = adaptor.getK();
  inferred.push_back(
      RankedTensorType::get({rows, k}, IntegerType::get(ctx, 32)));
  inferred.push_back(RankedTensorType::get({rows, k}, Float32Type::get(ctx)));
  return success();
}

LogicalResult TopKListOp::verify() {
  ShapedType gates = getGates().getType();
  if (failed(verifyExpertDim(*this, gates, "gates")))
    return failure();
  return check(*this, routing::checkTopK(getK(), gates.getDimSize(2)));
}

RouteOp PlanOp::getRoute() {
  auto route = getMask().getDefiningOp<RouteOp>();
  return route && getGates() == route.getGates() ? route : nullptr;
}

RouteOp TopKListOp::getPicksOfTokenRoute() {
  auto route = getMask().getDefiningOp<RouteOp>();
  if (!route || route.getMode() != routing::Mode::Token ||
      getGates() != route.getGates())
    return nullptr;
  std::optional<double> k = route.getRouterOptions().k;
  return k && int64_t(*k) == int64_t(getK()) ? route : nullptr;
}

//===----------------------------------------------------------------------===//
// Dispatch, expert compute and combine
//===----------------------------------------------------------------------===//

LogicalResult DispatchOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &inferred) {
  auto hidden = dyn_cast<RankedTensorType>(adaptor.getHidden().getType());
  auto ids = dyn_cast<RankedTensorType>(adaptor.getTokenIds().getType());
  if (!hidden || hidden.getRank() != 2 || !ids || ids.getRank() != 1)
    return emitOptionalError(loc, "expects [tokens, D] activations and [M] "
                                  "token ids");
  inferred.push_back(RankedTensorType::get(
      {ids.getDimSize(0), hidden.getDimSize(1)}, hidden.getElementType()));
  return success();
}

LogicalResult ExpertFfnOp::inferReturnTypes(MLIRContext *ctx,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &inferred) {
  // f32 rows whatever the input type: the layer rounds once, at the end.
  auto input = cast<ShapedType>(adaptor.getInput().getType());
  inferred.push_back(
      RankedTensorType::get(input.getShape(), Float32Type::get(ctx)));
  return success();
}

std::array<int64_t, 3> ExpertFfnOp::getExpertDims() {
  ShapedType w1 = getW1().getType();
  bool inOut = getLayout() == WeightLayout::in_out;
  return {w1.getDimSize(0), w1.getDimSize(inOut ? 1 : 2),
          w1.getDimSize(inOut ? 2 : 1)};
}

LogicalResult ExpertFfnOp::verify() {
  ShapedType x = getInput().getType(), w1 = getW1().getType(),
             w3 = getW3().getType(), w2 = getW2().getType(),
             offsets = getExpertOffsets().getType();
  Type element = x.getElementType();
  if (w1.getElementType() != element || w3.getElementType() != element ||
      w2.getElementType() != element)
    return emitOpError() << "expects expert weights of the input's element "
                         << "type " << element;
  bool inOut = getLayout() == WeightLayout::in_out;
  StringRef upShape = inOut ? "[E, D, F]" : "[E, F, D]";
  StringRef downShape = inOut ? "[E, F, D]" : "[E, D, F]";
  if (w1.getShape() != w3.getShape())
    return emitOpError() << "expects w1 and w3 of the same shape " << upShape
                         << ", got " << w1 << " and " << w3;
  // W2 is W1 with its last two dimensions swapped, in either layout.
  if (!dimsCompatible(w1.getDimSize(0), w2.getDimSize(0)) ||
      !dimsCompatible(w1.getDimSize(1), w2.getDimSize(2)) ||
      !dimsCompatible(w1.getDimSize(2), w2.getDimSize(1)))
    return emitOpError() << "expects w2 of shape " << downShape
                         << " for w1 of shape " << upShape << " (layout "
                         << stringifyWeightLayout(getLayout()) << "), got "
                         << w2 << " and " << w1;
  auto [experts, width, ffn] = getExpertDims();
  (void)ffn;
  if (!dimsCompatible(x.getDimSize(1), width))
    return emitOpError() << "expects input rows of size D = " << width
                         << " (layout " << stringifyWeightLayout(getLayout())
                         << "), got " << x;
  if (!ShapedType::isDynamic(experts)) {
    std::optional<int64_t> count = llvm::checkedAdd(experts, int64_t(1));
    if (!count)
      return emitOpError() << "expects E + 1 expert offsets to fit in int64, "
                           << "got E = " << experts;
    if (!dimsCompatible(offsets.getDimSize(0), *count))
      return emitOpError() << "expects " << *count
                           << " expert offsets (E + 1), got " << offsets;
  }
  return success();
}

LogicalResult CombineOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &inferred) {
  inferred.push_back(adaptor.getInit().getType());
  return success();
}

LogicalResult CombineOp::verify() {
  ShapedType out = getExpertOut().getType(), init = getInit().getType();
  int64_t rows = out.getDimSize(0);
  if (!out.getElementType().isF32() &&
      out.getElementType() != init.getElementType())
    return emitOpError() << "expects f32 expert outputs (or init's element "
                         << "type), got " << out << " and " << init;
  if (!dimsCompatible(out.getDimSize(1), init.getDimSize(1)))
    return emitOpError() << "expects expert outputs and init with the same "
                         << "hidden size, got " << out << " and " << init;
  if (!dimsCompatible(rows, getTokenIds().getType().getDimSize(0)) ||
      !dimsCompatible(rows, getWeights().getType().getDimSize(0)))
    return emitOpError() << "expects one token id and one weight per expert "
                         << "output row (" << rows << ")";
  return success();
}

#define GET_OP_CLASSES
#include "usmoe/Dialect/Moe/IR/MoeOps.cpp.inc"
