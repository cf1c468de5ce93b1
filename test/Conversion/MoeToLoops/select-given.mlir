// RUN: usmoe-opt %s -convert-moe-to-loops | FileCheck %s

// A given selection: the row zeroed, then every id checked (range, then
// repeat) before its gate is written.
// CHECK-LABEL: func.func @select_given
// CHECK: memref.alloc(%{{.*}}) : memref<1x?x8xf32>
// CHECK: memref.alloc(%{{.*}}) : memref<1x?x8xi1>
// CHECK: cf.assert %{{.*}}, "moe: select_given: an expert id is outside [0, E)"
// CHECK-NEXT: arith.index_cast
// CHECK: cf.assert %{{.*}}, "moe: select_given: an expert id repeats in a row"
// CHECK: memref.store %true{{.*}}, %{{.*}} : memref<1x?x8xi1>
func.func @select_given(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<1x?x8xf32> {
  %g, %m = moe.select_given %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  return %g : tensor<1x?x8xf32>
}
