// The CPU pipeline leaves nothing but the LLVM dialect.
// RUN: usmoe-opt %s -usmoe-to-cpu | FileCheck %s
// RUN: usmoe-opt %s -usmoe-to-cpu=fuse-routing=false | FileCheck %s

// CHECK-NOT: moe.
// CHECK-NOT: memref.
// CHECK-NOT: scf.
// CHECK-NOT: bufferization.
// CHECK: llvm.func @router
// CHECK: llvm.call @free
func.func @router(%l: tensor<2x?x16xf16>) -> (tensor<17xi32>, tensor<?xi32>, tensor<?xf32>) {
  %u = moe.unified_score %l alpha = 0.5 expert_score = softmax_tokens : tensor<2x?x16xf16>
  %g, %m = moe.select_global %u k = 1.25 : tensor<2x?x16xf32>
  %o, %i, %w = moe.plan %g, %m : tensor<2x?x16xf32>
  return %o, %i, %w : tensor<17xi32>, tensor<?xi32>, tensor<?xf32>
}
