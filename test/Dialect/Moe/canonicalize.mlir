// RUN: usmoe-opt %s -canonicalize -split-input-file | FileCheck %s

// alpha = 0: the unified score is the row softmax.
// CHECK-LABEL: func.func @unified_alpha_zero
// CHECK-SAME: (%[[L:.*]]: tensor<?x?x8xf32>)
// CHECK-NEXT: %[[P:.*]] = moe.token_softmax %[[L]] : tensor<?x?x8xf32>
// CHECK-NEXT: return %[[P]]
func.func @unified_alpha_zero(%l: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %u = moe.unified_score %l alpha = 0.0 expert_score = sigmoid : tensor<?x?x8xf32>
  return %u : tensor<?x?x8xf32>
}

// -----

// alpha = 1: the unified score is the expert score of the same kind.
// CHECK-LABEL: func.func @unified_alpha_one
// CHECK-NEXT: %[[F:.*]] = moe.expert_score softmax_tokens %{{.*}} : tensor<?x?x8xbf16>
// CHECK-NEXT: return %[[F]]
func.func @unified_alpha_one(%l: tensor<?x?x8xbf16>) -> tensor<?x?x8xf32> {
  %u = moe.unified_score %l alpha = 1.0 expert_score = softmax_tokens : tensor<?x?x8xbf16>
  return %u : tensor<?x?x8xf32>
}

// -----

// Strictly inside (0, 1) nothing changes.
// CHECK-LABEL: func.func @unified_mixed
// CHECK: moe.unified_score %{{.*}} alpha = 5.000000e-01
func.func @unified_mixed(%l: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  %u = moe.unified_score %l alpha = 0.5 expert_score = sigmoid : tensor<?x?x8xf32>
  return %u : tensor<?x?x8xf32>
}

// -----

// A capacity factor over a static T becomes an explicit capacity:
// ceil(1.25 * 16 * 2 / 8) = 5.
// CHECK-LABEL: func.func @expert_capacity
// CHECK: moe.select_expert_choice %{{.*}} capacity = 5 : tensor<2x16x8xf32>
func.func @expert_capacity(%s: tensor<2x16x8xf32>) -> tensor<2x16x8xi1> {
  %g, %m = moe.select_expert_choice %s capacity_factor = 1.25 k = 2 : tensor<2x16x8xf32>
  return %m : tensor<2x16x8xi1>
}

// -----

// The capacity is clamped to [1, T]: ceil(8 * 4 * 2 / 4) = 16 > T = 4.
// CHECK-LABEL: func.func @expert_capacity_clamped
// CHECK: moe.select_expert_choice %{{.*}} capacity = 4 : tensor<1x4x4xf32>
func.func @expert_capacity_clamped(%s: tensor<1x4x4xf32>) -> tensor<1x4x4xi1> {
  %g, %m = moe.select_expert_choice %s capacity_factor = 8.0 k = 2 : tensor<1x4x4xf32>
  return %m : tensor<1x4x4xi1>
}

// -----

// With a dynamic T the factor stays.
// CHECK-LABEL: func.func @expert_capacity_dynamic
// CHECK: moe.select_expert_choice %{{.*}} capacity_factor = 1.250000e+00 k = 2
func.func @expert_capacity_dynamic(%s: tensor<2x?x8xf32>) -> tensor<2x?x8xi1> {
  %g, %m = moe.select_expert_choice %s capacity_factor = 1.25 k = 2 : tensor<2x?x8xf32>
  return %m : tensor<2x?x8xi1>
}

// -----

// A fractional budget over a static T becomes N = floor(1.5 * 5) = 7.
// CHECK-LABEL: func.func @global_budget
// CHECK: moe.select_global %{{.*}} n = 7 : tensor<3x5x8xf32>
func.func @global_budget(%s: tensor<3x5x8xf32>) -> tensor<3x5x8xi1> {
  %g, %m = moe.select_global %s k = 1.5 : tensor<3x5x8xf32>
  return %m : tensor<3x5x8xi1>
}

// -----

// One token per sequence: the global top-N is the token's top-k (both gates
// are the scores, not renormalized).
// CHECK-LABEL: func.func @global_single_token
// CHECK-NOT: moe.select_global
// CHECK: %[[G:.*]], %[[M:.*]] = moe.select_topk %{{.*}} k = 2 : tensor<?x1x8xf32>
// CHECK: return %[[G]], %[[M]]
func.func @global_single_token(%s: tensor<?x1x8xf32>) -> (tensor<?x1x8xf32>, tensor<?x1x8xi1>) {
  %g, %m = moe.select_global %s k = 2.0 : tensor<?x1x8xf32>
  return %g, %m : tensor<?x1x8xf32>, tensor<?x1x8xi1>
}

// -----

// A budget of 0 over one token is not a top-k (k >= 1): it stays global.
// CHECK-LABEL: func.func @global_single_token_empty
// CHECK: moe.select_global %{{.*}} n = 0 : tensor<?x1x8xf32>
func.func @global_single_token_empty(%s: tensor<?x1x8xf32>) -> tensor<?x1x8xi1> {
  %g, %m = moe.select_global %s n = 0 : tensor<?x1x8xf32>
  return %m : tensor<?x1x8xi1>
}

// -----

// Unified routing with T = 1 and alpha = 0 is Token Choice (same selection,
// gates = P in both).
// CHECK-LABEL: func.func @route_decode_alpha_zero
// CHECK: moe.route #moe.token<k = 2> %{{.*}} : tensor<4x1x8xbf16>
func.func @route_decode_alpha_zero(%l: tensor<4x1x8xbf16>) -> tensor<4x1x8xf32> {
  %g, %m = moe.route #moe.unified<n = 2, alpha = 0.0> %l : tensor<4x1x8xbf16>
  return %g : tensor<4x1x8xf32>
}

// -----

// With alpha > 0 the gates differ from Token Choice: only the budget folds.
// CHECK-LABEL: func.func @route_decode_mixed
// CHECK: moe.route #moe.unified<n = 2, alpha = 0.5, expert_score = sigmoid> %{{.*}} : tensor<4x1x8xf32>
func.func @route_decode_mixed(%l: tensor<4x1x8xf32>) -> tensor<4x1x8xf32> {
  %g, %m = moe.route #moe.unified<k = 2.0, alpha = 0.5> %l : tensor<4x1x8xf32>
  return %g : tensor<4x1x8xf32>
}

// -----

// CHECK-LABEL: func.func @route_expert_capacity
// CHECK: moe.route #moe.expert<capacity = 2> %{{.*}} : tensor<1x4x4xf32>
func.func @route_expert_capacity(%l: tensor<1x4x4xf32>) -> tensor<1x4x4xf32> {
  %g, %m = moe.route #moe.expert<capacity_factor = 1.0, k = 2> %l : tensor<1x4x4xf32>
  return %g : tensor<1x4x4xf32>
}

// -----

// Unused routing ops are pure and disappear.
// CHECK-LABEL: func.func @dead_routing
// CHECK-NOT: moe.
// CHECK: return
func.func @dead_routing(%l: tensor<?x?x8xf32>) {
  %p = moe.token_softmax %l : tensor<?x?x8xf32>
  %g, %m = moe.select_topk %p k = 2 : tensor<?x?x8xf32>
  %o, %i, %w = moe.plan %g, %m : tensor<?x?x8xf32>
  return
}

// -----

// Folding a derived budget keeps the options of real models.
// CHECK-LABEL: func.func @fold_keeps_model_options
// CHECK: moe.route #moe.unified<n = 6, alpha = 0.5, expert_score = sigmoid, routed_scaling_factor = 2.5, softcap = 30.0>
// CHECK: moe.route #moe.expert<capacity = 4, routed_scaling_factor = 2.5>
func.func @fold_keeps_model_options(%l: tensor<2x4x8xf32>) -> (tensor<2x4x8xf32>, tensor<2x4x8xf32>) {
  %g, %m = moe.route #moe.unified<k = 1.5, routed_scaling_factor = 2.5, softcap = 30.0> %l : tensor<2x4x8xf32>
  %g2, %m2 = moe.route #moe.expert<k = 8, capacity_factor = 1.0e300, routed_scaling_factor = 2.5> %l : tensor<2x4x8xf32>
  return %g, %g2 : tensor<2x4x8xf32>, tensor<2x4x8xf32>
}

// -----

// Packed sequences: T varies by sequence, so the budget stays derived.
// CHECK-LABEL: func.func @packed_keeps_k
// CHECK: moe.route #moe.unified<k = 1.5, alpha = 0.5, expert_score = sigmoid> %{{.*}} seqlens
// CHECK: moe.route #moe.unified<k = 1.0, alpha = 0.0, expert_score = sigmoid> %{{.*}} seqlens
// CHECK-NOT: moe.route #moe.token
// CHECK: return
func.func @packed_keeps_k(%l: tensor<1x1x8xf32>, %cu: tensor<?xi32>) -> (tensor<1x1x8xf32>, tensor<1x1x8xf32>) {
  %g, %m = moe.route #moe.unified<k = 1.5> %l seqlens %cu : tensor<?xi32> : tensor<1x1x8xf32>
  %g2, %m2 = moe.route #moe.unified<k = 1.0, alpha = 0.0> %l seqlens %cu : tensor<?xi32> : tensor<1x1x8xf32>
  return %g, %g2 : tensor<1x1x8xf32>, tensor<1x1x8xf32>
}
