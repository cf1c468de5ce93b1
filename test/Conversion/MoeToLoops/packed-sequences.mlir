// RUN: usmoe-opt %s -convert-moe-to-loops | FileCheck %s

// One packed batch: the offsets are checked, then each sequence is routed
// on a [1, T_i, E] view of the logits, gates and mask, with its own budget
// floor(k * T_i).
// CHECK-LABEL: func.func @packed_unified
// CHECK: cf.assert %{{.*}}, "moe: seqlens needs at least one offset"
// CHECK: cf.assert %{{.*}}, "moe: seqlens must start at 0"
// CHECK: cf.assert %{{.*}}, "moe: seqlens must end at the number of tokens"
// CHECK: scf.for
// CHECK: cf.assert %{{.*}}, "moe: seqlens must not decrease"
// CHECK-COUNT-3: memref.subview {{.*}} to memref<1x?x8x{{.*}}strided<[?, 8, 1], offset: ?>>
// CHECK: math.floor
// CHECK: memref.alloc(%{{.*}}) : memref<?x8192xi32>
func.func @packed_unified(%l: tensor<1x?x8xf32>, %cu: tensor<?xi32>) -> tensor<1x?x8xf32> {
  %g, %m = moe.route #moe.unified<k = 1.5> %l seqlens %cu : tensor<?xi32> : tensor<1x?x8xf32>
  return %g : tensor<1x?x8xf32>
}
