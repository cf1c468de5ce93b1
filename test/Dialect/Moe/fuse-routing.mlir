// RUN: usmoe-opt %s -moe-fuse-routing -split-input-file | FileCheck %s

// CHECK-LABEL: func.func @token_choice
// CHECK-SAME: (%[[L:.*]]: tensor<?x?x8xbf16>)
// CHECK-NOT: moe.token_softmax
// CHECK: %[[G:.*]], %[[M:.*]] = moe.route #moe.token<k = 2, renormalize> %[[L]] : tensor<?x?x8xbf16>
// CHECK: return %[[G]], %[[M]]
func.func @token_choice(%l: tensor<?x?x8xbf16>) -> (tensor<?x?x8xf32>, tensor<?x?x8xi1>) {
  %p = moe.token_softmax %l : tensor<?x?x8xbf16>
  %g, %m = moe.select_topk %p k = 2 renormalize : tensor<?x?x8xf32>
  return %g, %m : tensor<?x?x8xf32>, tensor<?x?x8xi1>
}

// -----

// CHECK-LABEL: func.func @expert_choice
// CHECK: moe.route #moe.expert<k = 2, capacity_factor = 1.25> %{{.*}} : tensor<1x?x8xf32>
// CHECK: moe.route #moe.expert<capacity = 3> %{{.*}} : tensor<1x?x8xf32>
func.func @expert_choice(%l: tensor<1x?x8xf32>) -> (tensor<1x?x8xi1>, tensor<1x?x8xi1>) {
  %p = moe.token_softmax %l : tensor<1x?x8xf32>
  %g, %m = moe.select_expert_choice %p capacity_factor = 1.25 k = 2 : tensor<1x?x8xf32>
  %g2, %m2 = moe.select_expert_choice %p capacity = 3 : tensor<1x?x8xf32>
  return %m, %m2 : tensor<1x?x8xi1>, tensor<1x?x8xi1>
}

// -----

// CHECK-LABEL: func.func @unified
// CHECK-SAME: (%[[L:.*]]: tensor<2x?x64xf16>)
// CHECK-NOT: moe.unified_score
// CHECK: moe.route #moe.unified<k = 1.5, alpha = 0.25, expert_score = softmax_tokens> %[[L]] : tensor<2x?x64xf16>
func.func @unified(%l: tensor<2x?x64xf16>) -> tensor<2x?x64xf32> {
  %u = moe.unified_score %l alpha = 0.25 expert_score = softmax_tokens : tensor<2x?x64xf16>
  %g, %m = moe.select_global %u k = 1.5 : tensor<2x?x64xf32>
  return %g : tensor<2x?x64xf32>
}

// -----

// A global top-N of the row softmax is the unified router with alpha = 0,
// of the expert score the one with alpha = 1.
// CHECK-LABEL: func.func @global_of_single_scores
// CHECK: moe.route #moe.unified<n = 4, alpha = 0.0, expert_score = sigmoid> %{{.*}} : tensor<1x?x8xf32>
// CHECK: moe.route #moe.unified<n = 4, alpha = 1.0, expert_score = sigmoid> %{{.*}} : tensor<1x?x8xf32>
func.func @global_of_single_scores(%l: tensor<1x?x8xf32>) -> (tensor<1x?x8xf32>, tensor<1x?x8xf32>) {
  %p = moe.token_softmax %l : tensor<1x?x8xf32>
  %g, %m = moe.select_global %p n = 4 : tensor<1x?x8xf32>
  %f = moe.expert_score sigmoid %l : tensor<1x?x8xf32>
  %g2, %m2 = moe.select_global %f n = 4 : tensor<1x?x8xf32>
  return %g, %g2 : tensor<1x?x8xf32>, tensor<1x?x8xf32>
}

// -----

// Scores with another user stay; the selection is still fused.
// CHECK-LABEL: func.func @shared_scores
// CHECK: %[[P:.*]] = moe.token_softmax
// CHECK: %[[G:.*]], %{{.*}} = moe.route #moe.token
// CHECK: return %[[P]], %[[G]]
func.func @shared_scores(%l: tensor<1x?x8xf32>) -> (tensor<1x?x8xf32>, tensor<1x?x8xf32>) {
  %p = moe.token_softmax %l : tensor<1x?x8xf32>
  %g, %m = moe.select_topk %p k = 1 : tensor<1x?x8xf32>
  return %p, %g : tensor<1x?x8xf32>, tensor<1x?x8xf32>
}

// -----

// A top-k over the unified score has no fused form: left alone.
// CHECK-LABEL: func.func @not_fusable
// CHECK: moe.unified_score
// CHECK: moe.select_topk
// CHECK-NOT: moe.route
func.func @not_fusable(%l: tensor<1x?x8xf32>, %s: tensor<1x?x8xf32>) -> (tensor<1x?x8xf32>, tensor<1x?x8xf32>) {
  %u = moe.unified_score %l alpha = 0.5 expert_score = sigmoid : tensor<1x?x8xf32>
  %g, %m = moe.select_topk %u k = 2 : tensor<1x?x8xf32>
  // Scores from a function argument: nothing to fuse either.
  %g2, %m2 = moe.select_global %s n = 2 : tensor<1x?x8xf32>
  return %g, %g2 : tensor<1x?x8xf32>, tensor<1x?x8xf32>
}
