// RUN: usmoe-opt %s -convert-moe-to-gpu -split-input-file -verify-diagnostics | FileCheck %s

// The Token Choice kernel soft-caps each logit as it loads the row and
// scales the gate it writes; the launch sequence does not change.
// CHECK-LABEL: func.func @token
// CHECK: gpu.launch_func @usmoe_kernels::@route_token_0
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.func @route_token_0
// CHECK: math.tanh
// CHECK: arith.constant 2.500000e+00 : f32
// CHECK: gpu.return
func.func @token(%l: tensor<?x?x64xbf16>, %b: tensor<64xf32>) -> tensor<?x?x64xf32> {
  %g, %m = moe.route #moe.token<k = 8, renormalize, routed_scaling_factor = 2.5, softcap = 30.0> %l bias %b : tensor<?x?x64xbf16>, tensor<64xf32>
  return %g : tensor<?x?x64xf32>
}

// -----

// Unified: the score kernels read capped logits (row and column kernels),
// the select kernel scales what it keeps.
// CHECK-LABEL: func.func @unified
// CHECK: gpu.func @route_unified_0_scores
// CHECK: math.tanh
// CHECK: gpu.return
// CHECK: gpu.func @route_unified_0_mix
// CHECK: math.tanh
// CHECK: gpu.return
// CHECK: gpu.func @route_unified_0_select
// CHECK-NOT: math.tanh
// CHECK: arith.constant 7.500000e-01 : f32
// CHECK: gpu.return
func.func @unified(%l: tensor<?x?x60xf16>) -> tensor<?x?x60xf32> {
  %g, %m = moe.route #moe.unified<k = 2.0, expert_score = softmax_tokens, routed_scaling_factor = 0.75, softcap = 8.0> %l : tensor<?x?x60xf16>
  return %g : tensor<?x?x60xf32>
}

// -----

// Group-limited Token Choice: each group's (largest, second) pair is
// all-reduced over the warp by 5 butterfly steps of two shuffles each.
// CHECK-LABEL: func.func @token_groups
// CHECK: gpu.func @route_token_0
// CHECK-COUNT-10: gpu.shuffle xor
// CHECK: arith.shli %{{.*}} : i64
// CHECK: arith.shrui %{{.*}} : i64
func.func @token_groups(%l: tensor<?x?x64xf32>) -> tensor<?x?x64xf32> {
  %g, %m = moe.route #moe.token<k = 8, n_group = 2, topk_group = 1> %l : tensor<?x?x64xf32>
  return %g : tensor<?x?x64xf32>
}

// -----

func.func @token_too_many_groups(%l: tensor<?x?x128xf32>) -> tensor<?x?x128xf32> {
  // expected-error @+1 {{group-limited routing on the GPU supports up to 64 groups, got 128}}
  %g, %m = moe.route #moe.token<k = 8, n_group = 128, topk_group = 8> %l : tensor<?x?x128xf32>
  return %g : tensor<?x?x128xf32>
}

