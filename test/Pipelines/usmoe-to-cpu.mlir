// The CPU pipeline leaves nothing but the LLVM dialect.
// DEFINE: %{leftovers} = --implicit-check-not=moe. --implicit-check-not=memref. \
// DEFINE:   --implicit-check-not=scf. --implicit-check-not=bufferization.
// RUN: usmoe-opt %s -usmoe-to-cpu | FileCheck %s %{leftovers}
// RUN: usmoe-opt %s -usmoe-to-cpu=fuse-routing=false | FileCheck %s %{leftovers}

// CHECK: llvm.func @router
// CHECK: llvm.call @free
func.func @router(%l: tensor<2x?x16xf16>) -> (tensor<17xi32>, tensor<?xi32>, tensor<?xf32>) {
  %u = moe.unified_score %l alpha = 0.5 expert_score = softmax_tokens : tensor<2x?x16xf16>
  %g, %m = moe.select_global %u k = 1.25 : tensor<2x?x16xf32>
  %o, %i, %w = moe.plan %g, %m : tensor<2x?x16xf32>
  return %o, %i, %w : tensor<17xi32>, tensor<?xi32>, tensor<?xf32>
}
