// RUN: usmoe-opt %s -convert-moe-to-gpu | FileCheck %s

// A given selection: one thread per row, ids outside [0, E) skipped.
// CHECK-LABEL: func.func @select_given
// CHECK: gpu.launch_func @usmoe_kernels::@select_given_0
// CHECK: gpu.func @select_given_0
// CHECK: arith.cmpi sge
// CHECK: arith.cmpi slt
// CHECK: scf.if
// CHECK: gpu.return
func.func @select_given(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<1x?x8xf32> {
  %g, %m = moe.select_given %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  return %g : tensor<1x?x8xf32>
}
