//===- RouterRules.cpp - the one definition of a router's rules -----------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "usmoe/Routing/RouterRules.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

using namespace mlir::usmoe::routing;

namespace {
/// A double as the MLIR parser reads it back bit for bit: the shortest
/// %g form that round-trips, always with a '.' (MLIR's float literal).
std::string formatExact(double value) {
  char buffer[40];
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", digits, value);
    if (std::strtod(buffer, nullptr) == value)
      break;
  }
  std::string text = buffer;
  if (text.find_first_of(".ni") == std::string::npos) {
    size_t exponent = text.find('e');
    text.insert(exponent == std::string::npos ? text.size() : exponent, ".0");
  }
  return text;
}

constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();

/// A parameter as users write it ("1.5", "-0.25", "inf", "nan").
std::string format(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

std::string format(int64_t value) { return std::to_string(value); }

/// a * b, saturating at INT64_MAX (both non-negative).
int64_t saturatingMul(int64_t a, int64_t b) {
  int64_t product;
  if (__builtin_mul_overflow(a, b, &product))
    return kMaxInt64;
  return product;
}

/// A non-negative double as int64, saturating.
int64_t saturatingCast(double value) {
  if (!(value < 9.2233720368547758e18))
    return kMaxInt64;
  return static_cast<int64_t>(value);
}

std::string notForMode(const char *option, Mode mode) {
  return std::string("'") + option + "' does not apply to " + modeName(mode) +
         " routing";
}

/// An integer k for the modes whose k counts experts per token.
std::string integerK(double k, Mode mode, int64_t &out) {
  if (!std::isfinite(k) || k != std::floor(k))
    return std::string(modeName(mode)) + " routing expects an integer k, got " +
           format(k);
  out = mlir::usmoe::routing::countOfK(k);
  return "";
}
} // namespace

int64_t mlir::usmoe::routing::countOfK(double k) {
  if (std::fabs(k) > 9.0e18)
    return k > 0 ? kMaxInt64 : std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(k);
}

std::optional<int64_t> mlir::usmoe::routing::countOfK(std::optional<double> k) {
  if (!k)
    return std::nullopt;
  return countOfK(*k);
}

const char *mlir::usmoe::routing::expertScoreName(ExpertScore score) {
  return score == ExpertScore::Sigmoid ? "sigmoid" : "softmax_tokens";
}

const char *mlir::usmoe::routing::modeName(Mode mode) {
  switch (mode) {
  case Mode::Token:
    return "token";
  case Mode::Expert:
    return "expert";
  case Mode::Unified:
    return "unified";
  }
  return "unknown";
}

std::string mlir::usmoe::routing::checkTopK(int64_t k,
                                            std::optional<int64_t> numExperts) {
  if (numExperts && (k < 1 || k > *numExperts))
    return "expects k in [1, " + format(*numExperts) +
           "] (the number of experts), got " + format(k);
  if (!numExperts && k < 1)
    return "expects k >= 1, got " + format(k);
  return "";
}

std::string mlir::usmoe::routing::checkAlpha(double alpha) {
  if (!(alpha >= 0.0 && alpha <= 1.0))
    return "expects alpha in [0, 1], got " + format(alpha);
  return "";
}

std::string mlir::usmoe::routing::checkCapacity(
    std::optional<int64_t> capacity, std::optional<double> factor,
    std::optional<int64_t> k, std::optional<int64_t> numExperts,
    std::optional<int64_t> numTokens) {
  if (capacity.has_value() == factor.has_value())
    return "expects exactly one of 'capacity' and 'capacity_factor'";
  if (capacity) {
    if (k)
      return "expects 'k' only together with 'capacity_factor'";
    if (*capacity < 1)
      return "expects capacity >= 1, got " + format(*capacity);
    if (numTokens && *capacity > *numTokens)
      return "expects capacity <= " + format(*numTokens) +
             " (the number of tokens per sequence), got " + format(*capacity);
    return "";
  }
  if (!(std::isfinite(*factor) && *factor > 0.0))
    return "expects a finite capacity_factor > 0, got " + format(*factor);
  if (!k)
    return "expects 'k' (experts per token) with 'capacity_factor'";
  return checkTopK(*k, numExperts);
}

std::string mlir::usmoe::routing::checkBudget(
    std::optional<int64_t> n, std::optional<double> k,
    std::optional<int64_t> numExperts, std::optional<int64_t> numTokens) {
  if (n.has_value() == k.has_value())
    return "expects exactly one of 'n' and 'k'";
  if (n) {
    if (*n < 0)
      return "expects n >= 0, got " + format(*n);
    if (numTokens && numExperts) {
      int64_t pairs = saturatingMul(*numTokens, *numExperts);
      if (*n > pairs)
        return "expects n <= T * E = " + format(pairs) + ", got " + format(*n);
    }
    return "";
  }
  if (numExperts &&
      !(std::isfinite(*k) && *k >= 0.0 && *k <= double(*numExperts)))
    return "expects k in [0, " + format(*numExperts) +
           "] (experts per token), got " + format(*k);
  if (!numExperts && !(std::isfinite(*k) && *k >= 0.0))
    return "expects a finite k >= 0 (experts per token), got " + format(*k);
  return "";
}

/// DeepSeek-V3 group-limited selection: both options or neither, groups
/// that split E evenly, enough experts in the kept groups for k.
static std::string checkGroups(const RouterOptions &o, int64_t k,
                               std::optional<int64_t> numExperts) {
  if (o.nGroup.has_value() != o.topkGroup.has_value())
    return "expects 'n_group' and 'topk_group' together";
  if (!o.nGroup)
    return "";
  if (*o.nGroup < 1)
    return "expects n_group >= 1, got " + format(*o.nGroup);
  if (*o.topkGroup < 1 || *o.topkGroup > *o.nGroup)
    return "expects topk_group in [1, " + format(*o.nGroup) +
           "] (n_group), got " + format(*o.topkGroup);
  if (!numExperts)
    return "";
  if (*numExperts % *o.nGroup != 0)
    return "expects the number of experts (" + format(*numExperts) +
           ") to be a multiple of n_group (" + format(*o.nGroup) + ")";
  int64_t kept = *o.topkGroup * (*numExperts / *o.nGroup);
  if (k > kept)
    return "expects k <= topk_group * E / n_group = " + format(kept) +
           ", got " + format(k);
  return "";
}

/// The options every mode takes: finite and positive when given.
static std::string checkModelOptions(const RouterOptions &o) {
  if (o.routedScalingFactor &&
      !(std::isfinite(*o.routedScalingFactor) && *o.routedScalingFactor > 0))
    return "expects a finite routed_scaling_factor > 0, got " +
           format(*o.routedScalingFactor);
  if (o.softcap && !(std::isfinite(*o.softcap) && *o.softcap > 0))
    return "expects a finite softcap > 0, got " + format(*o.softcap);
  return "";
}

std::string
mlir::usmoe::routing::checkRouter(const RouterOptions &o,
                                  std::optional<int64_t> numExperts,
                                  std::optional<int64_t> numTokens) {
  if (std::string error = checkModelOptions(o); !error.empty())
    return error;
  // Names the options a mode does not take, so that a typo (alpha on a
  // Token Choice router) is an error, not a silent no-op.
  struct Present {
    bool given;
    const char *name;
  };
  auto forbid = [&](std::initializer_list<Present> options) -> std::string {
    for (const Present &p : options)
      if (p.given)
        return notForMode(p.name, o.mode);
    return "";
  };
  switch (o.mode) {
  case Mode::Token: {
    std::string error =
        forbid({{o.n.has_value(), "n"},
                {o.capacity.has_value(), "capacity"},
                {o.capacityFactor.has_value(), "capacity_factor"},
                {o.alpha.has_value(), "alpha"},
                {o.expertScore.has_value(), "expert_score"}});
    if (!error.empty())
      return error;
    if (!o.k)
      return "token routing expects 'k'";
    int64_t k;
    if (error = integerK(*o.k, o.mode, k); !error.empty())
      return error;
    if (error = checkTopK(k, numExperts); !error.empty())
      return error;
    return checkGroups(o, k, numExperts);
  }
  case Mode::Expert: {
    std::string error = forbid({{o.bias, "bias"},
                                {o.nGroup.has_value(), "n_group"},
                                {o.topkGroup.has_value(), "topk_group"},
                                {o.n.has_value(), "n"},
                                {o.alpha.has_value(), "alpha"},
                                {o.expertScore.has_value(), "expert_score"},
                                {o.renormalize, "renormalize"}});
    if (!error.empty())
      return error;
    std::optional<int64_t> k;
    if (o.k) {
      int64_t value;
      if (error = integerK(*o.k, o.mode, value); !error.empty())
        return error;
      k = value;
    }
    return checkCapacity(o.capacity, o.capacityFactor, k, numExperts,
                         numTokens);
  }
  case Mode::Unified: {
    std::string error =
        forbid({{o.bias, "bias"},
                {o.nGroup.has_value(), "n_group"},
                {o.topkGroup.has_value(), "topk_group"},
                {o.capacity.has_value(), "capacity"},
                {o.capacityFactor.has_value(), "capacity_factor"},
                {o.renormalize, "renormalize"}});
    if (!error.empty())
      return error;
    if (error = checkAlpha(o.alpha.value_or(0.5)); !error.empty())
      return error;
    return checkBudget(o.n, o.k, numExperts, numTokens);
  }
  }
  return "unknown routing mode";
}

int64_t mlir::usmoe::routing::unifiedBudget(double expertsPerToken,
                                            int64_t numTokens) {
  if (!(expertsPerToken > 0.0) || numTokens <= 0)
    return 0;
  return saturatingCast(
      std::floor(expertsPerToken * static_cast<double>(numTokens)));
}

int64_t mlir::usmoe::routing::expertCapacity(double capacityFactor,
                                             int64_t expertsPerToken,
                                             int64_t numTokens,
                                             int64_t numExperts) {
  double c = std::ceil(capacityFactor * static_cast<double>(numTokens) *
                       static_cast<double>(expertsPerToken) /
                       static_cast<double>(numExperts));
  // Compare in double: a product beyond int64 (or inf) is more than T.
  if (!(c < static_cast<double>(numTokens)))
    return std::max<int64_t>(1, numTokens);
  return std::max<int64_t>(1, static_cast<int64_t>(c));
}

int64_t mlir::usmoe::routing::setBudget(const RouterOptions &o,
                                        int64_t numTokens, int64_t numExperts) {
  switch (o.mode) {
  case Mode::Token:
    return saturatingCast(o.k.value_or(0));
  case Mode::Expert:
    if (o.capacity)
      return *o.capacity;
    return expertCapacity(o.capacityFactor.value_or(1.0),
                          saturatingCast(o.k.value_or(1)), numTokens,
                          numExperts);
  case Mode::Unified:
    return o.n ? *o.n : unifiedBudget(o.k.value_or(0), numTokens);
  }
  return 0;
}

int64_t mlir::usmoe::routing::selectedPairs(const RouterOptions &o,
                                            int64_t batch, int64_t numTokens,
                                            int64_t numExperts) {
  if (batch <= 0 || numTokens <= 0)
    return 0;
  int64_t budget = setBudget(o, numTokens, numExperts);
  int64_t perSequence = 0;
  switch (o.mode) {
  case Mode::Token:
    perSequence = saturatingMul(numTokens, budget);
    break;
  case Mode::Expert:
    perSequence = saturatingMul(numExperts, std::min(budget, numTokens));
    break;
  case Mode::Unified:
    perSequence = std::min(budget, saturatingMul(numTokens, numExperts));
    break;
  }
  return saturatingMul(batch, perSequence);
}

std::string
mlir::usmoe::routing::formatRouterParameters(const RouterOptions &o) {
  std::string text;
  auto add = [&](const std::string &item) {
    text += text.empty() ? item : ", " + item;
  };
  bool countsK = o.mode != Mode::Unified; // k counts experts per token
  if (o.k)
    add("k = " +
        (countsK ? format(routing::countOfK(*o.k)) : formatExact(*o.k)));
  if (o.nGroup)
    add("n_group = " + format(*o.nGroup));
  if (o.topkGroup)
    add("topk_group = " + format(*o.topkGroup));
  if (o.n)
    add("n = " + format(*o.n));
  if (o.capacity)
    add("capacity = " + format(*o.capacity));
  if (o.capacityFactor)
    add("capacity_factor = " + formatExact(*o.capacityFactor));
  if (o.alpha)
    add("alpha = " + formatExact(*o.alpha));
  if (o.expertScore)
    add(std::string("expert_score = ") + expertScoreName(*o.expertScore));
  if (o.renormalize)
    add("renormalize");
  if (o.routedScalingFactor)
    add("routed_scaling_factor = " + formatExact(*o.routedScalingFactor));
  if (o.softcap)
    add("softcap = " + formatExact(*o.softcap));
  return text;
}

std::string
mlir::usmoe::routing::formatRouterAttribute(const RouterOptions &o) {
  return std::string("#moe.") + modeName(o.mode) + "<" +
         formatRouterParameters(o) + ">";
}
