//===- RouterRules.h - the one definition of a router's rules ---*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Which options each router takes, their ranges, and the budgets they imply
// (N for Unified, C for Expert Choice, M pairs per batch), in plain C++ with
// no MLIR: the op verifiers and the canonicalizer use it, the Python
// extension binds it (so Python rejects exactly what the verifier rejects,
// with the verifier's words), and libusmoe_cuda_runtime.so exports the
// budgets for launchers without MLIR. Budget arithmetic saturates instead of
// overflowing.
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_ROUTING_ROUTERRULES_H
#define USMOE_ROUTING_ROUTERRULES_H

#include <cstdint>
#include <optional>
#include <string>

namespace mlir::usmoe::routing {

enum class Mode { Token, Expert, Unified };
/// The expert-side score F of the unified router.
enum class ExpertScore { Sigmoid, SoftmaxTokens };

/// A router's options as an op or a caller gives them: only those given are
/// set, so that an option that does not belong to the mode is an error.
struct RouterOptions {
  Mode mode = Mode::Unified;
  std::optional<double> k;
  std::optional<int64_t> n;
  std::optional<int64_t> capacity;
  std::optional<double> capacityFactor;
  std::optional<double> alpha;
  std::optional<ExpertScore> expertScore;
  bool renormalize = false;
  bool bias = false; ///< a bias vector was given
  /// Options of real models, all modes (spec "Options of real models"):
  /// selected gates times `routedScalingFactor` (DeepSeek-V3), logits
  /// soft-capped to `softcap * tanh(L / softcap)` before any score.
  std::optional<double> routedScalingFactor;
  std::optional<double> softcap;
  /// DeepSeek-V3 group-limited Token Choice: E experts in `nGroup` groups
  /// of E / nGroup, top-k only inside the `topkGroup` best groups.
  std::optional<int64_t> nGroup;
  std::optional<int64_t> topkGroup;
};

/// The mode's name in IR and Python ("token", "expert", "unified").
const char *modeName(Mode mode);
/// The expert score's name in IR and Python ("sigmoid", "softmax_tokens").
const char *expertScoreName(ExpertScore score);

/// The router as the `moe` dialect writes it, `#moe.token<k = 2,
/// renormalize>`: the router attribute's printer prints the part between
/// the brackets, and callers without MLIR (Python) embed the whole text in
/// the IR they compile, so that there is one writer of router IR. Numbers
/// are written so that they parse back to the same bits. A bias operand is
/// not part of the attribute.
std::string formatRouterParameters(const RouterOptions &options);
std::string formatRouterAttribute(const RouterOptions &options);

/// The first rule `options` breaks, worded as the verifier reports it
/// ("expects k in [1, 8] (the number of experts), got 9"), or "" when none.
/// Rules that need E or T are checked only when they are given.
std::string checkRouter(const RouterOptions &options,
                        std::optional<int64_t> numExperts,
                        std::optional<int64_t> numTokens);

/// The rules of the separate selection and scoring ops (and of moe.route).
std::string checkTopK(int64_t k, std::optional<int64_t> numExperts);
/// A k that counts experts (Token / Expert Choice), finite and integral as
/// checkRouter requires, as an int64: values beyond its range saturate
/// (a double cast to int64 out of range is undefined behaviour), so the
/// range rules that know E or T name them.
int64_t countOfK(double k);
/// countOfK of an optional k (Expert Choice's k is optional).
std::optional<int64_t> countOfK(std::optional<double> k);
std::string checkAlpha(double alpha);
std::string checkCapacity(std::optional<int64_t> capacity,
                          std::optional<double> factor,
                          std::optional<int64_t> k,
                          std::optional<int64_t> numExperts,
                          std::optional<int64_t> numTokens);
std::string checkBudget(std::optional<int64_t> n, std::optional<double> k,
                        std::optional<int64_t> numExperts,
                        std::optional<int64_t> numTokens);

/// N = floor(k * T), the Unified budget per sequence (0 <= k <= E).
int64_t unifiedBudget(double expertsPerToken, int64_t numTokens);
/// C = clamp(ceil(factor * T * k / E), 1, T), the Expert Choice capacity;
/// a product beyond int64 clamps to T.
int64_t expertCapacity(double capacityFactor, int64_t expertsPerToken,
                       int64_t numTokens, int64_t numExperts);
/// What one select set gets: N per sequence (unified), C per expert
/// (expert), k per token (token).
int64_t setBudget(const RouterOptions &options, int64_t numTokens,
                  int64_t numExperts);
/// M, the (token, expert) pairs a valid router selects in a [B, T, E] batch:
/// B*T*k, B*E*C or B*N (saturating at INT64_MAX).
int64_t selectedPairs(const RouterOptions &options, int64_t batch,
                      int64_t numTokens, int64_t numExperts);

} // namespace mlir::usmoe::routing

#endif // USMOE_ROUTING_ROUTERRULES_H
