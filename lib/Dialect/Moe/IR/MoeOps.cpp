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

#include <cmath>
#include <cstdio>

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

/// Prints a parameter the way users wrote it ("1.5", "-0.25", "inf", "nan"):
/// the diagnostic stream's own double formatting is not stable across values.
static std::string formatParam(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

//===----------------------------------------------------------------------===//
// Budget rules shared with the canonicalizer and the lowerings
//===----------------------------------------------------------------------===//

int64_t mlir::moe::unifiedBudget(double expertsPerToken, int64_t numTokens) {
  return static_cast<int64_t>(
      std::floor(expertsPerToken * static_cast<double>(numTokens)));
}

int64_t mlir::moe::expertChoiceCapacity(double capacityFactor,
                                        int64_t expertsPerToken,
                                        int64_t numTokens, int64_t numExperts) {
  double c = std::ceil(capacityFactor * static_cast<double>(numTokens) *
                       static_cast<double>(expertsPerToken) /
                       static_cast<double>(numExperts));
  int64_t capacity = static_cast<int64_t>(c);
  return std::max<int64_t>(1, std::min<int64_t>(capacity, numTokens));
}

//===----------------------------------------------------------------------===//
// Parameter checks shared by the selection ops and moe.route
//===----------------------------------------------------------------------===//

static LogicalResult verifyTopK(Operation *op, int64_t k, int64_t numExperts) {
  if (k < 1 || k > numExperts)
    return op->emitOpError() << "expects k in [1, " << numExperts
                             << "] (the number of experts), got " << k;
  return success();
}

static LogicalResult verifyAlpha(Operation *op, double alpha) {
  if (!(alpha >= 0.0 && alpha <= 1.0))
    return op->emitOpError()
           << "expects alpha in [0, 1], got " << formatParam(alpha);
  return success();
}

/// Expert Choice: `capacity` alone, or `capacity_factor` with `k`.
static LogicalResult verifyCapacity(Operation *op, ShapedType scores,
                                    std::optional<int64_t> capacity,
                                    std::optional<double> factor,
                                    std::optional<int64_t> k) {
  int64_t numExperts = scores.getDimSize(2);
  if (capacity.has_value() == factor.has_value())
    return op->emitOpError(
        "expects exactly one of 'capacity' and 'capacity_factor'");
  if (capacity) {
    if (k)
      return op->emitOpError("expects 'k' only together with "
                             "'capacity_factor'");
    if (*capacity < 1)
      return op->emitOpError() << "expects capacity >= 1, got " << *capacity;
    if (auto tokens = staticTokens(scores); tokens && *capacity > *tokens)
      return op->emitOpError()
             << "expects capacity <= " << *tokens
             << " (the number of tokens per sequence), got " << *capacity;
    return success();
  }
  if (!(std::isfinite(*factor) && *factor > 0.0))
    return op->emitOpError() << "expects a finite capacity_factor > 0, got "
                             << formatParam(*factor);
  if (!k)
    return op->emitOpError("expects 'k' (experts per token) with "
                           "'capacity_factor'");
  return verifyTopK(op, *k, numExperts);
}

/// Unified: a budget `n`, or `k` experts per token on average.
static LogicalResult verifyBudget(Operation *op, ShapedType scores,
                                  std::optional<int64_t> n,
                                  std::optional<double> k) {
  int64_t numExperts = scores.getDimSize(2);
  if (n.has_value() == k.has_value())
    return op->emitOpError("expects exactly one of 'n' and 'k'");
  if (n) {
    if (*n < 0)
      return op->emitOpError() << "expects n >= 0, got " << *n;
    if (auto tokens = staticTokens(scores); tokens && *n > *tokens * numExperts)
      return op->emitOpError()
             << "expects n <= T * E = " << *tokens * numExperts << ", got "
             << *n;
    return success();
  }
  if (!(std::isfinite(*k) && *k >= 0.0 && *k <= double(numExperts)))
    return op->emitOpError()
           << "expects k in [0, " << numExperts << "] (experts per token), got "
           << formatParam(*k);
  return success();
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
  return verifyAlpha(*this, getAlpha().convertToDouble());
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
  return verifyTopK(*this, getK(), type.getDimSize(2));
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
  std::optional<double> factor;
  if (auto attr = getCapacityFactorAttr())
    factor = attr.getValueAsDouble();
  return verifyCapacity(*this, type, getCapacity(), factor, getK());
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
  std::optional<double> k;
  if (auto attr = getKAttr())
    k = attr.getValueAsDouble();
  return verifyBudget(*this, type, getN(), k);
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
  StringRef mode = stringifyRoutingMode(getMode());

  // Names the parameters a mode does not take, so that a typo in a pipeline
  // (say, alpha on a Token Choice router) is an error, not a silent no-op.
  auto forbid = [&](bool present, StringRef name) -> LogicalResult {
    if (present)
      return emitOpError() << "'" << name << "' does not apply to " << mode
                           << " routing";
    return success();
  };

  std::optional<double> k;
  if (auto attr = getKAttr())
    k = attr.getValueAsDouble();

  switch (getMode()) {
  case RoutingMode::token: {
    if (Value bias = getBias()) {
      int64_t size = cast<ShapedType>(bias.getType()).getDimSize(0);
      if (!ShapedType::isDynamic(size) && size != numExperts)
        return emitOpError() << "expects one bias per expert (" << numExperts
                             << "), got " << size;
    }
    if (failed(forbid(getN().has_value(), "n")) ||
        failed(forbid(getCapacity().has_value(), "capacity")) ||
        failed(forbid(getCapacityFactor().has_value(), "capacity_factor")) ||
        failed(forbid(getAlpha().has_value(), "alpha")) ||
        failed(forbid(getExpertScore().has_value(), "expert_score")))
      return failure();
    if (!k)
      return emitOpError("token routing expects 'k'");
    if (*k != std::floor(*k))
      return emitOpError() << "token routing expects an integer k, got "
                           << formatParam(*k);
    return verifyTopK(*this, static_cast<int64_t>(*k), numExperts);
  }
  case RoutingMode::expert: {
    if (failed(forbid(bool(getBias()), "bias")) ||
        failed(forbid(getN().has_value(), "n")) ||
        failed(forbid(getAlpha().has_value(), "alpha")) ||
        failed(forbid(getExpertScore().has_value(), "expert_score")) ||
        failed(forbid(getRenormalize(), "renormalize")))
      return failure();
    std::optional<int64_t> intK;
    if (k) {
      if (*k != std::floor(*k))
        return emitOpError() << "expert routing expects an integer k, got "
                             << formatParam(*k);
      intK = static_cast<int64_t>(*k);
    }
    std::optional<double> factor;
    if (auto attr = getCapacityFactorAttr())
      factor = attr.getValueAsDouble();
    return verifyCapacity(*this, type, getCapacity(), factor, intK);
  }
  case RoutingMode::unified: {
    if (failed(forbid(bool(getBias()), "bias")) ||
        failed(forbid(getCapacity().has_value(), "capacity")) ||
        failed(forbid(getCapacityFactor().has_value(), "capacity_factor")) ||
        failed(forbid(getRenormalize(), "renormalize")))
      return failure();
    if (failed(verifyAlpha(*this, getAlphaOrDefault())))
      return failure();
    return verifyBudget(*this, type, getN(), k);
  }
  }
  llvm_unreachable("unknown routing mode");
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
  int64_t offsets =
      gates.isDynamicDim(2) ? ShapedType::kDynamic : gates.getDimSize(2) + 1;
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
  if (!gates.isDynamicDim(0) && !gates.isDynamicDim(1))
    rows = gates.getDimSize(0) * gates.getDimSize(1);
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
  return verifyTopK(*this, getK(), gates.getDimSize(2));
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

LogicalResult ExpertFfnOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &inferred) {
  inferred.push_back(adaptor.getInput().getType());
  return success();
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
  if (w1.getShape() != w3.getShape())
    return emitOpError() << "expects w1 and w3 of the same shape [E, D, F], "
                         << "got " << w1 << " and " << w3;
  // w1: [E, D, F], w2: [E, F, D], x: [M, D], offsets: [E + 1].
  if (!dimsCompatible(w1.getDimSize(0), w2.getDimSize(0)) ||
      !dimsCompatible(w1.getDimSize(1), w2.getDimSize(2)) ||
      !dimsCompatible(w1.getDimSize(2), w2.getDimSize(1)))
    return emitOpError() << "expects w2 of shape [E, F, D] for w1 of shape "
                         << "[E, D, F], got " << w2 << " and " << w1;
  if (!dimsCompatible(x.getDimSize(1), w1.getDimSize(1)))
    return emitOpError() << "expects input rows of size D = "
                         << w1.getDimSize(1) << ", got " << x;
  if (!w1.isDynamicDim(0) &&
      !dimsCompatible(offsets.getDimSize(0), w1.getDimSize(0) + 1))
    return emitOpError() << "expects " << w1.getDimSize(0) + 1
                         << " expert offsets (E + 1), got " << offsets;
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
  if (out.getElementType() != init.getElementType())
    return emitOpError() << "expects expert outputs and init of the same "
                         << "element type, got " << out << " and " << init;
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
