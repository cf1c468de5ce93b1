//===- MoeAttrs.cpp - router attributes: syntax, rules, conversions -------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// The router attributes are views of usmoe::routing::RouterOptions: the
// parser reads options into that struct and the printer writes it with
// routing::formatRouterParameters (the same text the Python package
// embeds), so a router reads, prints and verifies the same way everywhere.
//
//===----------------------------------------------------------------------===//

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "usmoe/Dialect/Moe/IR/MoeOps.h"
#include "llvm/ADT/StringSet.h"

using namespace mlir;
using namespace mlir::moe;
using routing::Mode;
using routing::RouterOptions;

//===----------------------------------------------------------------------===//
// Conversions between the attributes and RouterOptions
//===----------------------------------------------------------------------===//

static std::optional<double> valueOf(FloatAttr attr) {
  if (!attr)
    return std::nullopt;
  return attr.getValueAsDouble();
}

static FloatAttr f64Attr(MLIRContext *context, std::optional<double> value) {
  if (!value)
    return nullptr;
  return FloatAttr::get(Float64Type::get(context), *value);
}

ExpertScoreKind mlir::moe::toScoreKind(routing::ExpertScore score) {
  return score == routing::ExpertScore::Sigmoid
             ? ExpertScoreKind::sigmoid
             : ExpertScoreKind::softmax_tokens;
}

routing::ExpertScore mlir::moe::toRoutingScore(ExpertScoreKind kind) {
  return kind == ExpertScoreKind::sigmoid ? routing::ExpertScore::Sigmoid
                                          : routing::ExpertScore::SoftmaxTokens;
}

static void setModelOptions(RouterOptions &options, FloatAttr scale,
                            FloatAttr softcap) {
  options.routedScalingFactor = valueOf(scale);
  options.softcap = valueOf(softcap);
}

/// The options of each router attribute's parameters, for its getter and
/// its verifier alike.
static RouterOptions tokenOptions(int64_t k, bool renormalize,
                                  std::optional<int64_t> nGroup,
                                  std::optional<int64_t> topkGroup,
                                  FloatAttr scale, FloatAttr softcap) {
  RouterOptions options;
  options.mode = Mode::Token;
  options.k = static_cast<double>(k);
  options.renormalize = renormalize;
  options.nGroup = nGroup;
  options.topkGroup = topkGroup;
  setModelOptions(options, scale, softcap);
  return options;
}

static RouterOptions expertOptions(std::optional<int64_t> capacity,
                                   FloatAttr capacityFactor,
                                   std::optional<int64_t> k, FloatAttr scale,
                                   FloatAttr softcap) {
  RouterOptions options;
  options.mode = Mode::Expert;
  options.capacity = capacity;
  options.capacityFactor = valueOf(capacityFactor);
  if (k)
    options.k = static_cast<double>(*k);
  setModelOptions(options, scale, softcap);
  return options;
}

static RouterOptions unifiedOptions(std::optional<int64_t> n, FloatAttr k,
                                    FloatAttr alpha,
                                    ExpertScoreKind expertScore,
                                    FloatAttr scale, FloatAttr softcap) {
  RouterOptions options;
  options.mode = Mode::Unified;
  options.n = n;
  options.k = valueOf(k);
  options.alpha = valueOf(alpha);
  options.expertScore = toRoutingScore(expertScore);
  setModelOptions(options, scale, softcap);
  return options;
}

RouterOptions TokenRouterAttr::getRouterOptions() const {
  return tokenOptions(getK(), getRenormalize(), getNGroup(), getTopkGroup(),
                      getRoutedScalingFactor(), getSoftcap());
}

RouterOptions ExpertRouterAttr::getRouterOptions() const {
  return expertOptions(getCapacity(), getCapacityFactor(), getK(),
                       getRoutedScalingFactor(), getSoftcap());
}

RouterOptions UnifiedRouterAttr::getRouterOptions() const {
  return unifiedOptions(getN(), getK(), getAlpha(), getExpertScore(),
                        getRoutedScalingFactor(), getSoftcap());
}

RouterAttrInterface
RouterAttrInterface::get(MLIRContext *context, const RouterOptions &options,
                         function_ref<InFlightDiagnostic()> emitError) {
  std::string rule = routing::checkRouter(options, std::nullopt, std::nullopt);
  if (!rule.empty()) {
    emitError() << rule;
    return nullptr;
  }
  FloatAttr scale = f64Attr(context, options.routedScalingFactor);
  FloatAttr softcap = f64Attr(context, options.softcap);
  switch (options.mode) {
  case Mode::Token:
    return TokenRouterAttr::get(context, routing::countOfK(*options.k),
                                options.renormalize, options.nGroup,
                                options.topkGroup, scale, softcap);
  case Mode::Expert:
    return ExpertRouterAttr::get(context, options.capacity,
                                 f64Attr(context, options.capacityFactor),
                                 routing::countOfK(options.k), scale, softcap);
  case Mode::Unified:
    return UnifiedRouterAttr::get(context, options.n,
                                  f64Attr(context, options.k),
                                  f64Attr(context, options.alpha.value_or(0.5)),
                                  toScoreKind(options.expertScore.value_or(
                                      routing::ExpertScore::Sigmoid)),
                                  scale, softcap);
  }
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Verification and the interface's shared methods
//===----------------------------------------------------------------------===//

static LogicalResult verifyOptions(function_ref<InFlightDiagnostic()> emitError,
                                   const RouterOptions &options) {
  std::string rule = routing::checkRouter(options, std::nullopt, std::nullopt);
  if (rule.empty())
    return success();
  return emitError() << rule;
}

LogicalResult
TokenRouterAttr::verify(function_ref<InFlightDiagnostic()> emitError, int64_t k,
                        bool renormalize, std::optional<int64_t> nGroup,
                        std::optional<int64_t> topkGroup, FloatAttr scale,
                        FloatAttr softcap) {
  return verifyOptions(emitError, tokenOptions(k, renormalize, nGroup,
                                               topkGroup, scale, softcap));
}

LogicalResult
ExpertRouterAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                         std::optional<int64_t> capacity,
                         FloatAttr capacityFactor, std::optional<int64_t> k,
                         FloatAttr scale, FloatAttr softcap) {
  return verifyOptions(
      emitError, expertOptions(capacity, capacityFactor, k, scale, softcap));
}

LogicalResult
UnifiedRouterAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                          std::optional<int64_t> n, FloatAttr k,
                          FloatAttr alpha, ExpertScoreKind expertScore,
                          FloatAttr scale, FloatAttr softcap) {
  if (!alpha)
    return emitError() << "expects alpha";
  return verifyOptions(
      emitError, unifiedOptions(n, k, alpha, expertScore, scale, softcap));
}

std::string RouterAttrInterface::check(std::optional<int64_t> numExperts,
                                       std::optional<int64_t> numTokens,
                                       bool hasBias) {
  RouterOptions options = getRouterOptions();
  options.bias = hasBias;
  return routing::checkRouter(options, numExperts, numTokens);
}

RouterAttrInterface
RouterAttrInterface::withExplicitBudget(int64_t numTokens, int64_t numExperts) {
  RouterOptions options = getRouterOptions();
  if (options.mode == Mode::Expert && options.capacityFactor && numTokens > 0) {
    options.capacity = routing::setBudget(options, numTokens, numExperts);
    options.capacityFactor.reset();
    options.k.reset();
  } else if (options.mode == Mode::Unified && options.k) {
    options.n = routing::setBudget(options, numTokens, numExperts);
    options.k.reset();
  } else {
    return nullptr;
  }
  MLIRContext *context = getContext();
  return get(context, options, [context] {
    return emitError(UnknownLoc::get(context), "moe: ");
  });
}

//===----------------------------------------------------------------------===//
// Syntax: `<key = value, ...>`
//===----------------------------------------------------------------------===//

/// Reads the options of a router of `mode`. Every option name of every mode
/// parses, so that the rules (not the parser) say which ones the mode takes.
static std::optional<RouterOptions> parseRouterOptions(AsmParser &parser,
                                                       Mode mode) {
  RouterOptions options;
  options.mode = mode;
  llvm::StringSet<> seen;
  auto parseOption = [&]() -> ParseResult {
    SMLoc loc = parser.getCurrentLocation();
    StringRef key;
    if (parser.parseKeyword(&key))
      return failure();
    if (!seen.insert(key).second)
      return parser.emitError(loc)
             << "router option '" << key << "' is given twice";
    if (key == "renormalize") {
      options.renormalize = true;
      return success();
    }
    if (parser.parseEqual())
      return failure();
    if (key == "n" || key == "capacity" || key == "n_group" ||
        key == "topk_group") {
      int64_t value;
      if (parser.parseInteger(value))
        return failure();
      (key == "n"          ? options.n
       : key == "capacity" ? options.capacity
       : key == "n_group"  ? options.nGroup
                           : options.topkGroup) = value;
      return success();
    }
    if (key == "k" || key == "capacity_factor" || key == "alpha" ||
        key == "routed_scaling_factor" || key == "softcap") {
      // Integer or float literal: `k = 2` for Token Choice, `k = 1.5`.
      SMLoc valueLoc = parser.getCurrentLocation();
      Attribute number;
      if (parser.parseAttribute(number))
        return failure();
      std::optional<double> value;
      // (`true` parses as an i1 integer; it is not a number here.)
      auto integer = dyn_cast<IntegerAttr>(number);
      if (integer && !integer.getType().isInteger(1))
        value = static_cast<double>(integer.getValue().getSExtValue());
      else if (auto real = dyn_cast<FloatAttr>(number))
        value = real.getValueAsDouble();
      if (!value)
        return parser.emitError(valueLoc)
               << "expects a number for '" << key << "', got " << number;
      (key == "k"                       ? options.k
       : key == "capacity_factor"       ? options.capacityFactor
       : key == "alpha"                 ? options.alpha
       : key == "routed_scaling_factor" ? options.routedScalingFactor
                                        : options.softcap) = *value;
      return success();
    }
    if (key == "expert_score") {
      StringRef name;
      if (parser.parseKeyword(&name))
        return failure();
      std::optional<ExpertScoreKind> kind = symbolizeExpertScoreKind(name);
      if (!kind)
        return parser.emitError(loc)
               << "expects expert_score sigmoid or softmax_tokens, got '"
               << name << "'";
      options.expertScore = toRoutingScore(*kind);
      return success();
    }
    return parser.emitError(loc) << "unknown router option '" << key << "'";
  };
  if (parser.parseLess())
    return std::nullopt;
  if (failed(parser.parseOptionalGreater()) &&
      (parser.parseCommaSeparatedList(parseOption) || parser.parseGreater()))
    return std::nullopt;
  return options;
}

static Attribute parseRouter(AsmParser &parser, Mode mode) {
  SMLoc loc = parser.getCurrentLocation();
  std::optional<RouterOptions> options = parseRouterOptions(parser, mode);
  if (!options)
    return {};
  return RouterAttrInterface::get(parser.getContext(), *options,
                                  [&] { return parser.emitError(loc); });
}

static void printRouter(AsmPrinter &printer, const RouterOptions &options) {
  printer << "<" << routing::formatRouterParameters(options) << ">";
}

Attribute TokenRouterAttr::parse(AsmParser &parser, Type) {
  return parseRouter(parser, Mode::Token);
}
Attribute ExpertRouterAttr::parse(AsmParser &parser, Type) {
  return parseRouter(parser, Mode::Expert);
}
Attribute UnifiedRouterAttr::parse(AsmParser &parser, Type) {
  return parseRouter(parser, Mode::Unified);
}
void TokenRouterAttr::print(AsmPrinter &printer) const {
  printRouter(printer, getRouterOptions());
}
void ExpertRouterAttr::print(AsmPrinter &printer) const {
  printRouter(printer, getRouterOptions());
}
void UnifiedRouterAttr::print(AsmPrinter &printer) const {
  printRouter(printer, getRouterOptions());
}

#include "usmoe/Dialect/Moe/IR/MoeAttrInterfaces.cpp.inc"
