// RUN: usmoe-opt %s -convert-moe-to-gpu | FileCheck %s

// One packed batch on the GPU: row scores as before, one select block per
// sequence (S = offsets - 1), the budget computed in the kernel from T_i.
// CHECK-LABEL: func.func @packed_unified
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_scores
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_mix {{.*}} args({{.*}}, %{{.*}} : memref<?xi32>)
// CHECK: gpu.launch_func @usmoe_kernels::@route_unified_0_select {{.*}} args(%{{.*}} : memref<1x?x8xf32>, %{{.*}} : memref<1x?x8xi1>, %{{.*}} : memref<?xi32>)
// CHECK: gpu.func @route_unified_0_select(%{{.*}}: memref<1x?x8xf32>, %{{.*}}: memref<1x?x8xi1>, %{{.*}}: memref<?xi32>)
// CHECK: memref.load %{{.*}} : memref<?xi32>
// CHECK: math.floor %{{.*}} : f64
// CHECK: gpu.return
func.func @packed_unified(%l: tensor<1x?x8xf32>, %cu: tensor<?xi32>) -> tensor<1x?x8xf32> {
  %g, %m = moe.route #moe.unified<k = 1.5, expert_score = softmax_tokens> %l seqlens %cu : tensor<?xi32> : tensor<1x?x8xf32>
  return %g : tensor<1x?x8xf32>
}
