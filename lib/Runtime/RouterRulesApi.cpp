//===- RouterRulesApi.cpp - the router rules behind the runtime's C API ---===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "usmoe/Routing/RouterRules.h"
#include "usmoe/Runtime/UsmoeRuntime.h"

#include <cstring>

using namespace mlir::usmoe::routing;

namespace {
RouterOptions fromC(const UsmoeRouterOptions &c) {
  RouterOptions o;
  o.mode = c.mode == 0   ? Mode::Token
           : c.mode == 1 ? Mode::Expert
                         : Mode::Unified;
  if (c.has_k)
    o.k = c.k;
  if (c.has_n)
    o.n = c.n;
  if (c.has_capacity)
    o.capacity = c.capacity;
  if (c.has_capacity_factor)
    o.capacityFactor = c.capacity_factor;
  if (c.has_alpha)
    o.alpha = c.alpha;
  if (c.expert_score)
    o.expertScore =
        c.expert_score == 1 ? ExpertScore::Sigmoid : ExpertScore::SoftmaxTokens;
  o.renormalize = c.renormalize;
  if (c.has_routed_scaling_factor)
    o.routedScalingFactor = c.routed_scaling_factor;
  if (c.has_softcap)
    o.softcap = c.softcap;
  if (c.has_n_group)
    o.nGroup = c.n_group;
  if (c.has_topk_group)
    o.topkGroup = c.topk_group;
  o.bias = c.bias;
  return o;
}

std::optional<int64_t> known(int64_t value) {
  if (value < 0)
    return std::nullopt;
  return value;
}
} // namespace

extern "C" {

int usmoe_rt_router_check(const UsmoeRouterOptions *options, int64_t experts,
                          int64_t tokens, char *message, size_t size) {
  std::string error =
      checkRouter(fromC(*options), known(experts), known(tokens));
  if (message && size) {
    std::strncpy(message, error.c_str(), size - 1);
    message[size - 1] = 0;
  }
  return error.empty() ? 0 : 1;
}

size_t usmoe_rt_router_format(const UsmoeRouterOptions *options, char *text,
                              size_t size) {
  std::string attribute = formatRouterAttribute(fromC(*options));
  if (text && size) {
    std::strncpy(text, attribute.c_str(), size - 1);
    text[size - 1] = 0;
  }
  return attribute.size();
}

int64_t usmoe_rt_router_pairs(const UsmoeRouterOptions *options, int64_t batch,
                              int64_t tokens, int64_t experts) {
  return selectedPairs(fromC(*options), batch, tokens, experts);
}

int64_t usmoe_rt_router_budget(const UsmoeRouterOptions *options,
                               int64_t tokens, int64_t experts) {
  return setBudget(fromC(*options), tokens, experts);
}

} // extern "C"
