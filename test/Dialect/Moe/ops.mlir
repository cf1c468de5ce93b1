// RUN: usmoe-opt %s | usmoe-opt | FileCheck %s
// RUN: usmoe-opt %s --mlir-print-op-generic | usmoe-opt | FileCheck %s
// RUN: usmoe-opt %s --verify-roundtrip -o /dev/null

// Every moe op, in custom and generic form, with dynamic and static shapes.

// CHECK-LABEL: func.func @scores
// CHECK-SAME: (%[[L:.*]]: tensor<2x?x8xbf16>)
func.func @scores(%l: tensor<2x?x8xbf16>)
    -> (tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>) {
  // CHECK: moe.token_softmax %[[L]] : tensor<2x?x8xbf16>
  %p = moe.token_softmax %l : tensor<2x?x8xbf16>
  // CHECK: moe.expert_score sigmoid %[[L]] : tensor<2x?x8xbf16>
  %f = moe.expert_score sigmoid %l : tensor<2x?x8xbf16>
  // CHECK: moe.expert_score softmax_tokens %[[L]] : tensor<2x?x8xbf16>
  %f2 = moe.expert_score softmax_tokens %l : tensor<2x?x8xbf16>
  // CHECK: moe.unified_score %[[L]] alpha = 2.500000e-01 expert_score = softmax_tokens : tensor<2x?x8xbf16>
  %u = moe.unified_score %l alpha = 0.25 expert_score = softmax_tokens : tensor<2x?x8xbf16>
  return %p, %f, %f2, %u : tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>, tensor<2x?x8xf32>
}

// CHECK-LABEL: func.func @selections
// CHECK-SAME: (%[[S:.*]]: tensor<?x?x6xf32>)
func.func @selections(%s: tensor<?x?x6xf32>)
    -> (tensor<?x?x6xf32>, tensor<?x?x6xi1>, tensor<?x?x6xf32>, tensor<?x?x6xi1>) {
  // CHECK: moe.select_topk %[[S]] k = 2 : tensor<?x?x6xf32>
  %g0, %m0 = moe.select_topk %s k = 2 : tensor<?x?x6xf32>
  // CHECK: moe.select_topk %[[S]] k = 6 renormalize : tensor<?x?x6xf32>
  %g1, %m1 = moe.select_topk %s k = 6 renormalize : tensor<?x?x6xf32>
  // CHECK: moe.select_expert_choice %[[S]] capacity = 3 : tensor<?x?x6xf32>
  %g2, %m2 = moe.select_expert_choice %s capacity = 3 : tensor<?x?x6xf32>
  // CHECK: moe.select_expert_choice %[[S]] capacity_factor = 1.250000e+00 k = 2 : tensor<?x?x6xf32>
  %g3, %m3 = moe.select_expert_choice %s k = 2 capacity_factor = 1.25 : tensor<?x?x6xf32>
  // CHECK: moe.select_global %[[S]] n = 0 : tensor<?x?x6xf32>
  %g4, %m4 = moe.select_global %s n = 0 : tensor<?x?x6xf32>
  // CHECK: %[[G:.*]], %[[M:.*]] = moe.select_global %[[S]] k = 1.500000e+00 : tensor<?x?x6xf32>
  %g5, %m5 = moe.select_global %s k = 1.5 : tensor<?x?x6xf32>
  // CHECK: return %[[G]], %[[M]]
  return %g5, %m5, %g0, %m0 : tensor<?x?x6xf32>, tensor<?x?x6xi1>, tensor<?x?x6xf32>, tensor<?x?x6xi1>
}

// CHECK-LABEL: func.func @routes
// CHECK-SAME: (%[[L:.*]]: tensor<1x?x64xf16>, %[[L32:.*]]: tensor<4x16x60xf32>)
func.func @routes(%l: tensor<1x?x64xf16>, %l32: tensor<4x16x60xf32>) {
  // CHECK: moe.route #moe.token<k = 2, renormalize> %[[L]] : tensor<1x?x64xf16>
  %g0, %m0 = moe.route #moe.token<k = 2, renormalize> %l : tensor<1x?x64xf16>
  // CHECK: moe.route #moe.token<k = 8, renormalize> %[[L]] bias %{{.*}} : tensor<1x?x64xf16>, tensor<64xf32>
  %bias = arith.constant dense<0.0> : tensor<64xf32>
  %gb, %mb = moe.route #moe.token<k = 8, renormalize> %l bias %bias : tensor<1x?x64xf16>, tensor<64xf32>
  // CHECK: moe.route #moe.expert<capacity = 4> %[[L]] : tensor<1x?x64xf16>
  %g1, %m1 = moe.route #moe.expert<capacity = 4> %l : tensor<1x?x64xf16>
  // CHECK: moe.route #moe.expert<k = 2, capacity_factor = 1.0> %[[L32]] : tensor<4x16x60xf32>
  %g2, %m2 = moe.route #moe.expert<capacity_factor = 1.0, k = 2> %l32 : tensor<4x16x60xf32>
  // CHECK: moe.route #moe.unified<k = 1.5, alpha = 0.5, expert_score = sigmoid> %[[L]] : tensor<1x?x64xf16>
  %g3, %m3 = moe.route #moe.unified<k = 1.5> %l : tensor<1x?x64xf16>
  // CHECK: moe.route #moe.unified<n = 64, alpha = 0.0, expert_score = softmax_tokens> %[[L32]] : tensor<4x16x60xf32>
  %g4, %m4 = moe.route #moe.unified<n = 64, alpha = 0.0, expert_score = softmax_tokens> %l32 : tensor<4x16x60xf32>
  return
}

// Router parameters print so that they parse back to the same bits, and
// integer literals are accepted where a float is expected.
// CHECK-LABEL: func.func @router_numbers
func.func @router_numbers(%l: tensor<1x?x64xf16>) {
  // CHECK: moe.route #moe.unified<k = 0.1, alpha = 0.3333333333333333, expert_score = sigmoid>
  %g0, %m0 = moe.route #moe.unified<k = 0.1, alpha = 0.33333333333333331> %l : tensor<1x?x64xf16>
  // CHECK: moe.route #moe.unified<k = 2.0, alpha = 1.0, expert_score = softmax_tokens>
  %g1, %m1 = moe.route #moe.unified<expert_score = softmax_tokens, alpha = 1, k = 2> %l : tensor<1x?x64xf16>
  // CHECK: moe.route #moe.expert<k = 2, capacity_factor = 1.0e-300>
  %g2, %m2 = moe.route #moe.expert<capacity_factor = 1.0e-300, k = 2.0> %l : tensor<1x?x64xf16>
  // CHECK: moe.route #moe.unified<n = 9223372036854775807, alpha = 0.5, expert_score = sigmoid>
  %g3, %m3 = moe.route #moe.unified<n = 9223372036854775807> %l : tensor<1x?x64xf16>
  return
}

// The options of real models, on every mode.
// CHECK-LABEL: func.func @model_options
func.func @model_options(%l: tensor<1x?x64xf16>, %b: tensor<64xf32>) {
  // CHECK: moe.route #moe.token<k = 8, renormalize, routed_scaling_factor = 2.5, softcap = 30.0> %{{.*}} bias
  %g0, %m0 = moe.route #moe.token<softcap = 30, routed_scaling_factor = 2.5, k = 8, renormalize> %l bias %b : tensor<1x?x64xf16>, tensor<64xf32>
  // CHECK: moe.route #moe.token<k = 8, n_group = 8, topk_group = 4, renormalize, routed_scaling_factor = 2.5> %{{.*}} bias
  %gg, %mg = moe.route #moe.token<topk_group = 4, renormalize, n_group = 8, k = 8, routed_scaling_factor = 2.5> %l bias %b : tensor<1x?x64xf16>, tensor<64xf32>
  // CHECK: moe.route #moe.expert<capacity = 4, routed_scaling_factor = 0.5>
  %g1, %m1 = moe.route #moe.expert<capacity = 4, routed_scaling_factor = 0.5> %l : tensor<1x?x64xf16>
  // CHECK: moe.route #moe.unified<k = 1.5, alpha = 0.5, expert_score = sigmoid, softcap = 0.001>
  %g2, %m2 = moe.route #moe.unified<k = 1.5, softcap = 0.001> %l : tensor<1x?x64xf16>
  return
}

// One packed batch of sequences with offsets (cu_seqlens).
// CHECK-LABEL: func.func @packed
// CHECK: moe.route #moe.unified<k = 1.5, alpha = 0.5, expert_score = sigmoid> %{{.*}} seqlens %{{.*}} : tensor<?xi32> : tensor<1x?x64xf16>
// CHECK: moe.route #moe.token<k = 2> %{{.*}} bias %{{.*}} seqlens %{{.*}} : tensor<5xi32> : tensor<1x?x64xf16>, tensor<64xf32>
func.func @packed(%l: tensor<1x?x64xf16>, %cu: tensor<?xi32>, %cu5: tensor<5xi32>, %b: tensor<64xf32>) {
  %g, %m = moe.route #moe.unified<k = 1.5> %l seqlens %cu : tensor<?xi32> : tensor<1x?x64xf16>
  %g2, %m2 = moe.route #moe.token<k = 2> %l bias %b seqlens %cu5 : tensor<5xi32> : tensor<1x?x64xf16>, tensor<64xf32>
  return
}

// A selection made elsewhere: [R, k] ids and weights -> a [1, R, E] selection.
// CHECK-LABEL: func.func @select_given
// CHECK: %{{.*}}, %{{.*}} = moe.select_given %{{.*}}, %{{.*}} experts = 64 : tensor<?x8xi32>, tensor<?x8xf32>
// CHECK: moe.plan %{{.*}}, %{{.*}} : tensor<1x?x64xf32>
func.func @select_given(%ids: tensor<?x8xi32>, %w: tensor<?x8xf32>) -> tensor<65xi32> {
  %g, %m = moe.select_given %ids, %w experts = 64 : tensor<?x8xi32>, tensor<?x8xf32>
  %o, %i, %pw = moe.plan %g, %m : tensor<1x?x64xf32>
  return %o : tensor<65xi32>
}

// CHECK-LABEL: func.func @plan_dispatch_combine
// CHECK-SAME: (%[[G:.*]]: tensor<?x?x8xf32>, %[[M:.*]]: tensor<?x?x8xi1>, %[[H:.*]]: tensor<?x32xbf16>, %[[I:.*]]: tensor<?x32xbf16>)
func.func @plan_dispatch_combine(%g: tensor<?x?x8xf32>, %m: tensor<?x?x8xi1>,
                                 %h: tensor<?x32xbf16>, %init: tensor<?x32xbf16>)
    -> (tensor<?x32xbf16>, tensor<?x2xi32>, tensor<?x2xf32>) {
  // CHECK: %[[OFF:.*]], %[[IDS:.*]], %[[W:.*]] = moe.plan %[[G]], %[[M]] : tensor<?x?x8xf32>
  %offsets, %ids, %w = moe.plan %g, %m : tensor<?x?x8xf32>
  // CHECK: %[[EIDS:.*]], %[[EW:.*]] = moe.topk_list %[[G]], %[[M]] k = 2 : tensor<?x?x8xf32>
  %eids, %ew = moe.topk_list %g, %m k = 2 : tensor<?x?x8xf32>
  // CHECK: %[[X:.*]] = moe.dispatch %[[H]], %[[IDS]] : tensor<?x32xbf16>, tensor<?xi32>
  %x = moe.dispatch %h, %ids : tensor<?x32xbf16>, tensor<?xi32>
  // CHECK: %[[Y:.*]] = moe.combine %[[X]], %[[IDS]], %[[W]] into %[[I]] : tensor<?x32xbf16>, tensor<?xi32>, tensor<?xf32> into tensor<?x32xbf16>
  %y = moe.combine %x, %ids, %w into %init
      : tensor<?x32xbf16>, tensor<?xi32>, tensor<?xf32> into tensor<?x32xbf16>
  // CHECK: moe.combine %[[X]], %[[IDS]], %[[W]] into %[[I]] offsets %[[OFF]] : tensor<?x32xbf16>, tensor<?xi32>, tensor<?xf32> into tensor<?x32xbf16>, tensor<9xi32>
  %y2 = moe.combine %x, %ids, %w into %init offsets %offsets
      : tensor<?x32xbf16>, tensor<?xi32>, tensor<?xf32> into tensor<?x32xbf16>, tensor<9xi32>
  // CHECK: return %[[Y]], %[[EIDS]], %[[EW]]
  return %y, %eids, %ew : tensor<?x32xbf16>, tensor<?x2xi32>, tensor<?x2xf32>
}

// CHECK-LABEL: func.func @static_plan
func.func @static_plan(%g: tensor<2x4x4xf32>, %m: tensor<2x4x4xi1>)
    -> (tensor<5xi32>, tensor<8x3xi32>) {
  // CHECK: moe.plan %{{.*}}, %{{.*}} : tensor<2x4x4xf32>
  %offsets, %ids, %w = moe.plan %g, %m : tensor<2x4x4xf32>
  // CHECK: moe.topk_list %{{.*}}, %{{.*}} k = 3 : tensor<2x4x4xf32>
  %eids, %ew = moe.topk_list %g, %m k = 3 : tensor<2x4x4xf32>
  return %offsets, %eids : tensor<5xi32>, tensor<8x3xi32>
}

// CHECK-LABEL: func.func @expert_ffn
func.func @expert_ffn(%x: tensor<?x16xf32>, %offsets: tensor<5xi32>,
                      %w1: tensor<4x16x32xf32>, %w3: tensor<4x16x32xf32>,
                      %w2: tensor<4x32x16xf32>) -> tensor<?x16xf32> {
  // CHECK: moe.expert_ffn %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x16xf32>, tensor<5xi32>, tensor<4x16x32xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  // The default layout (in_out) is not printed.
  // CHECK-NOT: layout
  %y = moe.expert_ffn %x, %offsets, %w1, %w3, %w2
      : tensor<?x16xf32>, tensor<5xi32>, tensor<4x16x32xf32>, tensor<4x16x32xf32>, tensor<4x32x16xf32>
  return %y : tensor<?x16xf32>
}

// nn.Linear's layout: W1/W3 [E, F, D], W2 [E, D, F].
// CHECK-LABEL: func.func @expert_ffn_out_in
func.func @expert_ffn_out_in(%x: tensor<?x16xbf16>, %offsets: tensor<5xi32>,
                             %w1: tensor<4x32x16xbf16>, %w3: tensor<4x32x16xbf16>,
                             %w2: tensor<4x16x32xbf16>) -> tensor<?x16xf32> {
  // CHECK: moe.expert_ffn %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} layout out_in : tensor<?x16xbf16>
  %y = moe.expert_ffn %x, %offsets, %w1, %w3, %w2 layout out_in
      : tensor<?x16xbf16>, tensor<5xi32>, tensor<4x32x16xbf16>, tensor<4x32x16xbf16>, tensor<4x16x32xbf16>
  return %y : tensor<?x16xf32>
}
